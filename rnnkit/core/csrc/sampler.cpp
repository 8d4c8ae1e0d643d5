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

template <typename T>
Tensor step_impl(const Tensor& pre0, const Tensor& h, const Tensor& c, const std::vector<Tensor>& w,
                 const std::vector<Tensor>& b, const Tensor& head_w, const Tensor& head_b,
                 int64_t mode) {
  const int64_t L = h.size(0), B = h.size(1), H = h.size(2), N = pre0.size(1);
  const int64_t V = head_w.size(1);
  T* pre = pre0.data_ptr<T>();
  T* hp = h.data_ptr<T>();
  T* cp = mode == kLSTM ? c.data_ptr<T>() : nullptr;
  for (int64_t k = 0; k < L; ++k) {
    T* hk = hp + k * B * H;
    const T* W = w[k].data_ptr<T>();
    if (k > 0) {  // pre = b + x W_ih^T + h W_hh^T, x the new state of the layer below
      const T* bias = b[k].data_ptr<T>();
      for (int64_t r = 0; r < B; ++r) std::memcpy(pre + r * N, bias, N * sizeof(T));
      const int64_t I = w[k].size(0) - H;
      gemm_ab<T, T>(B, N, I, hp + (k - 1) * B * H, W, pre, T(1));
      W += I * N;
    }
    gemm_ab<T, T>(B, N, H, hk, W, pre, T(1));
    pointwise<T>(mode, pre, hk, cp ? cp + k * B * H : nullptr, B, H, N);
  }
  Tensor logits = at::empty({B, V}, h.options());
  T* lp = logits.data_ptr<T>();
  const T* hb = head_b.data_ptr<T>();
  for (int64_t r = 0; r < B; ++r) std::memcpy(lp + r * V, hb, V * sizeof(T));
  gemm_ab<T, T>(B, V, H, hp + (L - 1) * B * H, head_w.data_ptr<T>(), lp, T(1));
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
  auto ok = [&](const Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == dtype && t.is_contiguous();
  };
  TORCH_CHECK(ok(h) && ok(pre0) && ok(head_w) && ok(head_b) && (mode != kLSTM || ok(c)),
              "sample_step: every tensor must be contiguous, on the CPU, of one dtype");
  TORCH_CHECK(pre0.dim() == 2 && pre0.size(0) == B, "sample_step: pre0 must be (B, N)");
  TORCH_CHECK(mode != kLSTM || c.sizes() == h.sizes(), "sample_step: c must have h's shape");
  TORCH_CHECK(N == (mode == kLSTM || mode == kGRU ? 4 * H : H), "sample_step: pre0 has width ", N,
              " for hidden size ", H);
  for (int64_t k = 0; k < L; ++k) {
    TORCH_CHECK(ok(w[k]) && w[k].dim() == 2 && w[k].size(1) == N && w[k].size(0) >= H &&
                (k == 0 ? w[k].size(0) == H : w[k].size(0) == 2 * H),
                "sample_step: layer ", k, "'s weight has the wrong shape or layout");
    TORCH_CHECK(k == 0 || (ok(b[k]) && b[k].numel() == N), "sample_step: layer ", k,
                "'s bias must have ", N, " elements");
  }
  TORCH_CHECK(head_w.dim() == 2 && head_w.size(0) == H && head_b.numel() == head_w.size(1),
              "sample_step: head_w must be (H, V) and head_b (V)");
  if (dtype == at::kFloat) return step_impl<float>(pre0, h, c, w, b, head_w, head_b, mode);
  TORCH_CHECK(dtype == at::kDouble, "sample_step: float32 or float64 only, got ", dtype);
  return step_impl<double>(pre0, h, c, w, b, head_w, head_b, mode);
}

}  // namespace rnnkit
