// One generation step of a stack of stock cells and its linear head, for `rnnkit.sampler.Sampler`:
// per layer one matrix product (two for layers above the first, whose input and recurrent parts sit
// in one stacked weight) and one element-wise pass that writes the new state in place, then the
// head's product. At batch 1 the step is memory-bound (the weights are read once) and PyTorch's
// per-operation overhead (a dozen element-wise calls per layer) is most of the time this removes.
//
// Shapes: L layers, B batch, H hidden, N = G'*H pre-activation width, V vocabulary.
//   pre0 (B, N): layer 0's input part with its bias (the folded table row of each token); it is
//                used as the scratch buffer of every layer's pre-activations
//   h, c (L, B, H): the state, updated in place (c: an empty tensor for GRU/RNN)
//   w[0] (H, N): layer 0's recurrent part; w[k>0] (I+H, N): [W_ih; W_hh]^T stacked; b[k>0] (N)
//   head_w (H, V), head_b (V)  ->  logits (B, V)
// The weights w and head_w may be bf16 with everything else float32 (`--precision bf16`: half the
// bytes read per step; the products accumulate in fp32, the element-wise pass stays in fp32).
// Column blocks of N: LSTM i, f, g, o; GRU r+z (summed), W_in x + b_in, W_hn h + b_hn; RNN one.
#include "common.h"
#include "kernels.h"

namespace rnnkit {
namespace {

enum Mode : int64_t { kLSTM = 0, kGRU = 1, kTanh = 2, kReLU = 3 };

template <typename T>
void pointwise(int64_t mode, T* pre, T* h, T* c, int64_t B, int64_t H, int64_t N) {
  for (int64_t r = 0; r < B; ++r) {
    T* p = pre + r * N;
    T* hr = h + r * H;
    if (mode == kLSTM) {
      T* cr = c + r * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T i = sigmoid(p[j]), f = sigmoid(p[H + j]), g = std::tanh(p[2 * H + j]);
        const T o = sigmoid(p[3 * H + j]);
        const T cn = f * cr[j] + i * g;
        cr[j] = cn;
        hr[j] = o * std::tanh(cn);
      }
    } else if (mode == kGRU) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T rg = sigmoid(p[j]), z = sigmoid(p[H + j]);
        const T n = std::tanh(p[2 * H + j] + rg * p[3 * H + j]);
        hr[j] = (hr[j] - n) * z + n;
      }
    } else if (mode == kTanh) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) hr[j] = std::tanh(p[j]);
    } else {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) hr[j] = p[j] > T(0) ? p[j] : T(0);
    }
  }
}

// A (rows, k) of the state's type T as the matrix type M: the state itself when they agree, else
// converted into ``buf`` (bf16 weights: the products read bf16 operands and accumulate in fp32)
template <typename T, typename M>
const M* as_operand(const T* a, int64_t n, std::vector<M>& buf) {
  if constexpr (std::is_same_v<T, M>) { return a; }
  else {
    if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
    for (int64_t i = 0; i < n; ++i) buf[i] = static_cast<M>(a[i]);
    return buf.data();
  }
}

// C (rows, n) += bf16(A) (rows, k) · W (k, n), W bf16 row-major, A and C float: for a few rows (generation
// is a matrix-vector product per layer) a streaming pass over W beats MKL's bf16 GEMM, which packs
// its operands on every call (measured: 26x slower than this at one row). Four rows of W per pass
// over C's row, which stays in L1; bf16 -> fp32 is a 16-bit shift, so the loop vectorises.
inline void axpy_rows_bf16(int64_t rows, int64_t n, int64_t k, const float* a, const BFloat16* w,
                           float* c) {
  const uint16_t* wb = reinterpret_cast<const uint16_t*>(w);
  auto widen = [](uint16_t u) {
    const uint32_t bits = static_cast<uint32_t>(u) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  };
  // the activations rounded to bf16 (nearest even) as MKL's bf16 GEMM rounds them for more rows:
  // one rule whatever the batch
  auto round = [](float x) { return static_cast<float>(BFloat16(x)); };
  at::parallel_for(0, n, 512, [&](int64_t j0, int64_t j1) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* ar = a + r * k;
      float* cr = c + r * n;
      int64_t i = 0;
      for (; i + 4 <= k; i += 4) {
        const float a0 = round(ar[i]), a1 = round(ar[i + 1]), a2 = round(ar[i + 2]), a3 = round(ar[i + 3]);
        const uint16_t *w0 = wb + i * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
#pragma omp simd
        for (int64_t j = j0; j < j1; ++j)
          cr[j] += a0 * widen(w0[j]) + a1 * widen(w1[j]) + a2 * widen(w2[j]) + a3 * widen(w3[j]);
      }
      for (; i < k; ++i) {
        const float ai = round(ar[i]);
        const uint16_t* wi = wb + i * n;
#pragma omp simd
        for (int64_t j = j0; j < j1; ++j) cr[j] += ai * widen(wi[j]);
      }
    }
  });
}

// C (rows, n) += A (rows, k) · W (k, n) in the step's types
template <typename T, typename M>
void step_product(int64_t rows, int64_t n, int64_t k, const T* a, const M* w, T* c, std::vector<M>& buf) {
  if constexpr (std::is_same_v<M, BFloat16>) {
    if (rows <= 8) return axpy_rows_bf16(rows, n, k, a, w, c);
  }
  gemm_ab<M, T>(rows, n, k, as_operand<T, M>(a, rows * k, buf), w, c, T(1));
}

// T: the state, biases and results (float32/float64); M: the weights' type (T, or bf16 with T = float)
template <typename T, typename M>
Tensor step_impl(const Tensor& pre0, const Tensor& h, const Tensor& c, const std::vector<Tensor>& w,
                 const std::vector<Tensor>& b, const Tensor& head_w, const Tensor& head_b,
                 int64_t mode) {
  const int64_t L = h.size(0), B = h.size(1), H = h.size(2), N = pre0.size(1);
  const int64_t V = head_w.size(1);
  T* pre = pre0.data_ptr<T>();
  T* hp = h.data_ptr<T>();
  T* cp = mode == kLSTM ? c.data_ptr<T>() : nullptr;
  std::vector<M> buf;
  for (int64_t k = 0; k < L; ++k) {
    T* hk = hp + k * B * H;
    const M* W = w[k].data_ptr<M>();
    if (k > 0) {  // pre = b + x W_ih^T + h W_hh^T, x the new state of the layer below
      const T* bias = b[k].data_ptr<T>();
      for (int64_t r = 0; r < B; ++r) std::memcpy(pre + r * N, bias, N * sizeof(T));
      const int64_t I = w[k].size(0) - H;
      step_product<T, M>(B, N, I, hp + (k - 1) * B * H, W, pre, buf);
      W += I * N;
    }
    step_product<T, M>(B, N, H, hk, W, pre, buf);
    pointwise<T>(mode, pre, hk, cp ? cp + k * B * H : nullptr, B, H, N);
  }
  Tensor logits = at::empty({B, V}, h.options());
  T* lp = logits.data_ptr<T>();
  const T* hb = head_b.data_ptr<T>();
  for (int64_t r = 0; r < B; ++r) std::memcpy(lp + r * V, hb, V * sizeof(T));
  step_product<T, M>(B, V, H, hp + (L - 1) * B * H, head_w.data_ptr<M>(), lp, buf);
  return logits;
}

}  // namespace

Tensor sample_step(Tensor pre0, Tensor h, Tensor c, std::vector<Tensor> w, std::vector<Tensor> b,
                   Tensor head_w, Tensor head_b, int64_t mode) {
  const int64_t L = h.dim() == 3 ? h.size(0) : 0;
  TORCH_CHECK(L >= 1 && static_cast<int64_t>(w.size()) == L && static_cast<int64_t>(b.size()) == L,
              "sample_step: h must be (L, B, H) with one weight and one bias per layer");
  TORCH_CHECK(mode >= kLSTM && mode <= kReLU, "sample_step: unknown mode ", mode);
  const auto dtype = h.scalar_type();
  const int64_t B = h.size(1), H = h.size(2), N = pre0.size(-1);
  // the weights (w, head_w) share the state's dtype, or are bf16 with a float32 state
  const bool bf16 = dtype == at::kFloat && head_w.scalar_type() == at::kBFloat16;
  const auto wtype = bf16 ? at::kBFloat16 : dtype;
  auto ok = [&](const Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == dtype && t.is_contiguous();
  };
  auto ok_w = [&](const Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == wtype && t.is_contiguous();
  };
  TORCH_CHECK(ok(h) && ok(pre0) && ok_w(head_w) && ok(head_b) && (mode != kLSTM || ok(c)),
              "sample_step: every tensor must be contiguous, on the CPU, of one dtype (the weights "
              "may be bf16 with float32 states)");
  TORCH_CHECK(pre0.dim() == 2 && pre0.size(0) == B, "sample_step: pre0 must be (B, N)");
  TORCH_CHECK(mode != kLSTM || c.sizes() == h.sizes(), "sample_step: c must have h's shape");
  TORCH_CHECK(N == (mode == kLSTM || mode == kGRU ? 4 * H : H), "sample_step: pre0 has width ", N,
              " for hidden size ", H);
  for (int64_t k = 0; k < L; ++k) {
    TORCH_CHECK(ok_w(w[k]) && w[k].dim() == 2 && w[k].size(1) == N && w[k].size(0) >= H &&
                (k == 0 ? w[k].size(0) == H : w[k].size(0) == 2 * H),
                "sample_step: layer ", k, "'s weight has the wrong shape or layout");
    TORCH_CHECK(k == 0 || (ok(b[k]) && b[k].numel() == N), "sample_step: layer ", k,
                "'s bias must have ", N, " elements");
  }
  TORCH_CHECK(head_w.dim() == 2 && head_w.size(0) == H && head_b.numel() == head_w.size(1),
              "sample_step: head_w must be (H, V) and head_b (V)");
  if (bf16) return step_impl<float, BFloat16>(pre0, h, c, w, b, head_w, head_b, mode);
  if (dtype == at::kFloat) return step_impl<float, float>(pre0, h, c, w, b, head_w, head_b, mode);
  TORCH_CHECK(dtype == at::kDouble, "sample_step: float32 or float64 only, got ", dtype);
  return step_impl<double, double>(pre0, h, c, w, b, head_w, head_b, mode);
}

}  // namespace rnnkit
