// minGRU / minLSTM over a whole sequence (Feng et al. 2024): the gate math and the sequential scan
// h_t = a_t ⊙ h_{t-1} + b_t fused into one pass per direction, forward and backward (BPTT).
//
// The Python scan (`rnnkit.core.scan.CellScan`) pays PyTorch's per-operation overhead for each of the
// T steps and a dozen element-wise passes over (T, B, H) per block; here each row of the batch runs
// its T steps in one loop (rows in parallel), reading the projected inputs once and keeping h in
// cache. The backward pass recomputes the gates from the inputs instead of storing them.
//
// Shapes: T steps, B batch, H hidden, G gate blocks (minGRU: z, h~ = 2; minLSTM: f, i, h~ = 3).
//   xp (T, B, G*H): projected inputs x W^T; bias (G*H) added here (saving the pass over (T, B, G*H)
//   that adding it to the product costs), or empty (xp has it); h0 (B, H); out (T, B, H).
// Definitions (rnnkit/cells/minimal.py):
//   g(v) = v + 1/2 (v >= 0), σ(v) (v < 0);  g'(v) = 1 (v >= 0), σ(v)(1 - σ(v)) (v < 0)
//   minGRU:  z = σ(k);  a = 1 - z;  b = z g(v)
//   minLSTM: d = softplus(-k_f) - softplus(-k_i) (= log(i/f));  a = σ(-d) (f');  b = σ(d) g(v)
#include "common.h"
#include "kernels.h"

namespace rnnkit {
namespace {

// Written branch-free with exp and log only, so `omp simd` loops call their vector versions
// (libmvec); log(1 + e) instead of log1p(e) differs by at most one rounding of 1 + e.
template <typename T> inline T softplus(T x) {  // PyTorch's: x past the threshold 20
  const T y = std::log(T(1) + std::exp(x > T(20) ? T(0) : x));
  return x > T(20) ? x : y;
}
template <typename T> inline T g_of(T v) {
  const T s = sigmoid(v < T(0) ? v : T(0));  // σ(0) = 1/2, so s + relu(v) is g exactly
  return s + (v > T(0) ? v : T(0));
}
template <typename T> inline T g_slope(T v) {
  const T s = sigmoid(v < T(0) ? v : T(0));
  return v >= T(0) ? T(1) : s - s * s;
}

// The scan coefficients of element j of one row of xp: a, and the input gate i (a = 1 - i for
// minGRU; minLSTM: a = f', i = i'); h~ = g(v) with v the candidate's pre-activation.
template <typename T, bool LSTM>
inline void gates(const T* p, const T* bias, int64_t H, int64_t j, T& a, T& i, T& v, T& kf,
                  T& ki) {
  if constexpr (LSTM) {
    kf = p[j] + bias[j];
    ki = p[H + j] + bias[H + j];
    const T d = softplus(-kf) - softplus(-ki);
    a = sigmoid(-d);
    i = sigmoid(d);
    v = p[2 * H + j] + bias[2 * H + j];
  } else {
    i = sigmoid(p[j] + bias[j]);
    a = T(1) - i;
    v = p[H + j] + bias[H + j];
  }
}

template <typename T, bool LSTM>
Tensor forward_impl(const Tensor& xp, const Tensor& bias_, const Tensor& h0) {
  const int64_t S = xp.size(0), B = xp.size(1), GH = xp.size(2), H = h0.size(1);
  Tensor out = at::empty({S, B, H}, xp.options());
  const T* x = xp.data_ptr<T>();
  const T* hz = h0.data_ptr<T>();
  T* o = out.data_ptr<T>();
  const Tensor bias = bias_.numel() ? bias_ : at::zeros({GH}, xp.options());
  const T* bb = bias.data_ptr<T>();
  at::parallel_for(0, B, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, H * S / 64)),
                   [&](int64_t r0, int64_t r1) {
    std::vector<T> h(H);
    for (int64_t r = r0; r < r1; ++r) {
      std::memcpy(h.data(), hz + r * H, H * sizeof(T));
      for (int64_t t = 0; t < S; ++t) {
        const T* p = x + (t * B + r) * GH;
        T* ot = o + (t * B + r) * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          T a, i, v, kf, ki;
          gates<T, LSTM>(p, bb, H, j, a, i, v, kf, ki);
          const T hn = a * h[j] + i * g_of(v);
          h[j] = hn;
          ot[j] = hn;
        }
      }
    }
  });
  return out;
}

template <typename T, bool LSTM>
std::vector<Tensor> backward_impl(const Tensor& g_out, const Tensor& xp, const Tensor& bias_,
                                  const Tensor& out, const Tensor& h0) {
  const int64_t S = xp.size(0), B = xp.size(1), GH = xp.size(2), H = h0.size(1);
  Tensor d_xp = at::empty(xp.sizes(), xp.options());
  Tensor d_h0 = at::empty(h0.sizes(), h0.options());
  const T* x = xp.data_ptr<T>();
  const T* go = g_out.data_ptr<T>();
  const T* o = out.data_ptr<T>();
  const T* hz = h0.data_ptr<T>();
  T* dx = d_xp.data_ptr<T>();
  T* dh = d_h0.data_ptr<T>();
  const Tensor bias = bias_.numel() ? bias_ : at::zeros({GH}, xp.options());
  const T* bb = bias.data_ptr<T>();
  at::parallel_for(0, B, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, H * S / 64)),
                   [&](int64_t r0, int64_t r1) {
    std::vector<T> carry(H);  // a_{t+1} G_{t+1}: what reaches h_t from the future
    for (int64_t r = r0; r < r1; ++r) {
      std::fill(carry.begin(), carry.end(), T(0));
      for (int64_t t = S - 1; t >= 0; --t) {
        const T* p = x + (t * B + r) * GH;
        const T* gt = go + (t * B + r) * H;
        const T* hp = t > 0 ? o + ((t - 1) * B + r) * H : hz + r * H;
        T* d = dx + (t * B + r) * GH;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          T a, i, v, kf, ki;
          gates<T, LSTM>(p, bb, H, j, a, i, v, kf, ki);
          const T G = gt[j] + carry[j];  // dL/dh_t in full
          const T gi = G * i;
          const T dd = gi * a * (g_of(v) - hp[j]);  // d/d(input-gate pre-activation)
          if constexpr (LSTM) {
            d[j] = -dd * sigmoid(-kf);      // d = softplus(-k_f) - softplus(-k_i)
            d[H + j] = dd * sigmoid(-ki);
            d[2 * H + j] = gi * g_slope(v);
          } else {
            d[j] = dd;
            d[H + j] = gi * g_slope(v);
          }
          carry[j] = a * G;
        }
      }
      std::memcpy(dh + r * H, carry.data(), H * sizeof(T));
    }
  });
  return {d_xp, d_h0};
}

void check(const Tensor& xp, const Tensor& bias, const Tensor& h0, int64_t gates) {
  TORCH_CHECK(gates == 2 || gates == 3, "min_scan: gates must be 2 (minGRU) or 3 (minLSTM)");
  TORCH_CHECK(xp.dim() == 3 && h0.dim() == 2 && xp.size(1) == h0.size(0) &&
              xp.size(2) == gates * h0.size(1), "min_scan: xp must be (T, B, G*H) and h0 (B, H)");
  TORCH_CHECK(xp.device().is_cpu() && xp.is_contiguous() && h0.is_contiguous() &&
              xp.scalar_type() == h0.scalar_type(), "min_scan: contiguous CPU tensors of one dtype");
  TORCH_CHECK(bias.numel() == 0 || (bias.numel() == xp.size(2) && bias.is_contiguous() &&
                                    bias.scalar_type() == xp.scalar_type()),
              "min_scan: bias must be empty or a contiguous (G*H,) tensor of xp's dtype");
}

}  // namespace

Tensor min_scan_forward(Tensor xp, Tensor bias, Tensor h0, int64_t gates) {
  check(xp, bias, h0, gates);
  const bool f = xp.scalar_type() == at::kFloat, lstm = gates == 3;
  TORCH_CHECK(f || xp.scalar_type() == at::kDouble, "min_scan: float32 or float64 only");
  if (f) return lstm ? forward_impl<float, true>(xp, bias, h0) : forward_impl<float, false>(xp, bias, h0);
  return lstm ? forward_impl<double, true>(xp, bias, h0) : forward_impl<double, false>(xp, bias, h0);
}

std::vector<Tensor> min_scan_backward(Tensor g_out, Tensor xp, Tensor bias, Tensor out, Tensor h0,
                                      int64_t gates) {
  check(xp, bias, h0, gates);
  TORCH_CHECK(g_out.is_contiguous() && out.is_contiguous() && g_out.sizes() == out.sizes() &&
              g_out.scalar_type() == xp.scalar_type(), "min_scan_backward: g_out/out mismatch");
  const bool f = xp.scalar_type() == at::kFloat, lstm = gates == 3;
  TORCH_CHECK(f || xp.scalar_type() == at::kDouble, "min_scan: float32 or float64 only");
  if (f) return lstm ? backward_impl<float, true>(g_out, xp, bias, out, h0)
                     : backward_impl<float, false>(g_out, xp, bias, out, h0);
  return lstm ? backward_impl<double, true>(g_out, xp, bias, out, h0)
              : backward_impl<double, false>(g_out, xp, bias, out, h0);
}

}  // namespace rnnkit
