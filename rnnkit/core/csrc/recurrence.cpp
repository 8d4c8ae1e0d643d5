// GRU and Elman-RNN recurrences over a whole sequence, forward and backward (BPTT), the way cuDNN
// and haste run them: per step one small matrix product (h_{t-1} W_hh^T) and one fused element-wise
// pass; in the backward pass the weight gradient is one large product over all steps at the end.
// The input projection x W_ih^T + b_ih of all steps is done before (by autograd, in Python).
//
// Shapes: T steps, B batch, H hidden. xp (T, B, G*H) projected inputs, h0 (B, H), w_hh (G*H, H),
// b_hh (G*H) or empty, out (T, B, H). T is the compute type (float/double); M the matrix-product
// input type: T, or bf16 (the weights cast once per call, products accumulate in fp32).
#include "common.h"
#include "kernels.h"

namespace rnnkit {

// time index of the k-th step processed
inline int64_t step_index(int64_t k, int64_t T, bool reverse) { return reverse ? T - 1 - k : k; }

template <typename T, typename M>
struct Mat {  // a (rows, cols) operand of type M made from T data; no copy when M == T
  Tensor buf;
  const M* get(const T* src, int64_t n) {
    if constexpr (std::is_same_v<T, M>) { return src; }
    else { convert(src, buf.data_ptr<M>(), n); return buf.data_ptr<M>(); }
  }
};

// ---------------------------------------------------------------------------------------------
// GRU (reset gate after the recurrent product, PyTorch/cuDNN):
//   r = σ(x_r + h W_hr^T + b_hr), z = σ(x_z + h W_hz^T + b_hz),
//   n = tanh(x_n + r ⊙ (h W_hn^T + b_hn)),  h' = n + z ⊙ (h - n)
// ws (T, B, 4H) keeps r, z, n and hn = h W_hn^T + b_hn for the backward pass.
template <typename T, typename M>
std::vector<Tensor> gru_forward_impl(const Tensor& xp, const Tensor& h0, const Tensor& w_hh,
                                     const Tensor& b_hh, bool reverse, bool save) {
  const int64_t S = xp.size(0), B = xp.size(1), H = h0.size(1);
  auto opt = xp.options();
  const Weight<M> w(w_hh.contiguous(), B, false);
  Tensor out = at::empty({S, B, H}, opt);
  Tensor ws = at::empty({save ? S : 1, B, 4 * H}, opt);
  Tensor hp = at::empty({B, 3 * H}, opt);
  Mat<T, M> hm{at::empty({B, H}, opt.dtype(scalar_of<M>()))};
  const T* bias = b_hh.numel() ? b_hh.data_ptr<T>() : nullptr;
  const T *x = xp.data_ptr<T>(), *h_init = h0.data_ptr<T>();
  T *o = out.data_ptr<T>(), *g = hp.data_ptr<T>();
  for (int64_t k = 0; k < S; ++k) {
    const int64_t t = step_index(k, S, reverse);
    const T* hprev = k == 0 ? h_init : o + step_index(k - 1, S, reverse) * B * H;
    w.mul_t(hm.get(hprev, B * H), g, T(0));
    const T* xt = x + t * B * 3 * H;
    T* ot = o + t * B * H;
    T* wt = ws.data_ptr<T>() + (save ? t : 0) * B * 4 * H;
    at::parallel_for(0, B, row_grain(3 * H), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T *xr = xt + b * 3 * H, *gr = g + b * 3 * H, *hr = hprev + b * H;
        T *orow = ot + b * H, *wr = wt + b * 4 * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          T br = bias ? bias[j] : T(0), bz = bias ? bias[H + j] : T(0), bn = bias ? bias[2 * H + j] : T(0);
          T r = sigmoid(xr[j] + gr[j] + br);
          T z = sigmoid(xr[H + j] + gr[H + j] + bz);
          T hn = gr[2 * H + j] + bn;
          T n = std::tanh(xr[2 * H + j] + r * hn);
          orow[j] = n + z * (hr[j] - n);
          wr[j] = r; wr[H + j] = z; wr[2 * H + j] = n; wr[3 * H + j] = hn;
        }
      }
    });
  }
  return {out, ws};
}

template <typename T, typename M>
std::vector<Tensor> gru_backward_impl(const Tensor& d_out, const Tensor& d_hn, const Tensor& out, const Tensor& h0,
                                      const Tensor& ws, const Tensor& w_hh, bool has_bias,
                                      bool reverse) {
  const int64_t S = out.size(0), B = out.size(1), H = out.size(2);
  auto opt = out.options();
  const Weight<M> w(w_hh.contiguous(), B, true);
  Tensor dxp = at::empty({S, B, 3 * H}, opt);
  Tensor dhp = at::empty({S, B, 3 * H}, opt);  // gradient of h W_hh^T + b_hh, all steps
  Tensor dh = d_hn.contiguous().clone();        // gradient reaching h_t from later steps and h_n
  Mat<T, M> dm{at::empty({B, 3 * H}, opt.dtype(scalar_of<M>()))};
  const T *go = d_out.data_ptr<T>(), *o = out.data_ptr<T>(), *h_init = h0.data_ptr<T>();
  const T* wsp = ws.data_ptr<T>();
  T *dx = dxp.data_ptr<T>(), *dg = dhp.data_ptr<T>(), *dhc = dh.data_ptr<T>();
  for (int64_t k = S - 1; k >= 0; --k) {
    const int64_t t = step_index(k, S, reverse);
    const T* hprev = k == 0 ? h_init : o + step_index(k - 1, S, reverse) * B * H;
    const T *got = go + t * B * H, *wt = wsp + t * B * 4 * H;
    T *dxt = dx + t * B * 3 * H, *dgt = dg + t * B * 3 * H;
    at::parallel_for(0, B, row_grain(3 * H), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T *wr = wt + b * 4 * H, *hr = hprev + b * H, *gr = got + b * H;
        T *dxr = dxt + b * 3 * H, *dgr = dgt + b * 3 * H, *dhr = dhc + b * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          T r = wr[j], z = wr[H + j], n = wr[2 * H + j], hn = wr[3 * H + j];
          T gh = dhr[j] + gr[j];                          // dL/dh_t
          T dn = gh * (T(1) - z) * (T(1) - n * n);        // through tanh
          T dz = gh * (hr[j] - n) * z * (T(1) - z);       // through σ
          T dr = dn * hn * r * (T(1) - r);
          dxr[j] = dr; dxr[H + j] = dz; dxr[2 * H + j] = dn;
          dgr[j] = dr; dgr[H + j] = dz; dgr[2 * H + j] = dn * r;
          dhr[j] = gh * z;                                // the direct path h_{t-1} -> h_t
        }
      }
    });
    w.mul(dm.get(dgt, B * 3 * H), dhc, T(1));  // dh += dhp_t W_hh
  }
  // dW_hh = Σ_t dhp_t^T h_{t-1}: one product over the steps whose h_{t-1} is a stored output,
  // plus the first step's from h0.
  Tensor dw = at::empty(w_hh.sizes(), opt);
  Tensor first = reverse ? dhp[S - 1] : dhp[0];
  Tensor rest = reverse ? dhp.narrow(0, 0, S - 1) : dhp.narrow(0, 1, S - 1);
  Tensor prev = reverse ? out.narrow(0, 1, S - 1) : out.narrow(0, 0, S - 1);
  Tensor a_first = first.to(scalar_of<M>()), h0m = h0.to(scalar_of<M>());
  gemm_atb<M, T>(B, 3 * H, H, a_first.data_ptr<M>(), h0m.data_ptr<M>(), dw.data_ptr<T>(), T(0));
  if (S > 1) {
    Tensor a = rest.to(scalar_of<M>()).contiguous(), p = prev.to(scalar_of<M>()).contiguous();
    gemm_atb<M, T>((S - 1) * B, 3 * H, H, a.data_ptr<M>(), p.data_ptr<M>(), dw.data_ptr<T>(), T(1));
  }
  Tensor db = has_bias ? dhp.sum({0, 1}) : Tensor();
  return {dxp, dh, dw, db};
}

// ---------------------------------------------------------------------------------------------
// Elman RNN: h' = act(x + h W_hh^T + b_hh), act = tanh or relu. The backward pass needs only out.
template <typename T, typename M>
Tensor rnn_forward_impl(const Tensor& xp, const Tensor& h0, const Tensor& w_hh, const Tensor& b_hh,
                        bool relu, bool reverse) {
  const int64_t S = xp.size(0), B = xp.size(1), H = h0.size(1);
  auto opt = xp.options();
  const Weight<M> w(w_hh.contiguous(), B, false);
  Tensor out = at::empty({S, B, H}, opt);
  Tensor hp = at::empty({B, H}, opt);
  Mat<T, M> hm{at::empty({B, H}, opt.dtype(scalar_of<M>()))};
  const T* bias = b_hh.numel() ? b_hh.data_ptr<T>() : nullptr;
  const T *x = xp.data_ptr<T>(), *h_init = h0.data_ptr<T>();
  T *o = out.data_ptr<T>(), *g = hp.data_ptr<T>();
  for (int64_t k = 0; k < S; ++k) {
    const int64_t t = step_index(k, S, reverse);
    const T* hprev = k == 0 ? h_init : o + step_index(k - 1, S, reverse) * B * H;
    w.mul_t(hm.get(hprev, B * H), g, T(0));
    const T* xt = x + t * B * H;
    T* ot = o + t * B * H;
    at::parallel_for(0, B, row_grain(H), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T *xr = xt + b * H, *gr = g + b * H;
        T* orow = ot + b * H;
        if (relu) {
#pragma omp simd
          for (int64_t j = 0; j < H; ++j) {
            T v = xr[j] + gr[j] + (bias ? bias[j] : T(0));
            orow[j] = v > T(0) ? v : (v == v ? T(0) : v);  // relu that keeps NaN
          }
        } else {
#pragma omp simd
          for (int64_t j = 0; j < H; ++j) orow[j] = std::tanh(xr[j] + gr[j] + (bias ? bias[j] : T(0)));
        }
      }
    });
  }
  return out;
}

template <typename T, typename M>
std::vector<Tensor> rnn_backward_impl(const Tensor& d_out, const Tensor& d_hn, const Tensor& out, const Tensor& h0,
                                      const Tensor& w_hh, bool has_bias, bool relu, bool reverse) {
  const int64_t S = out.size(0), B = out.size(1), H = out.size(2);
  auto opt = out.options();
  const Weight<M> w(w_hh.contiguous(), B, true);
  Tensor dpre = at::empty({S, B, H}, opt);  // gradient of the pre-activation = of xp and of h W^T
  Tensor dh = d_hn.contiguous().clone();
  Mat<T, M> dm{at::empty({B, H}, opt.dtype(scalar_of<M>()))};
  const T *go = d_out.data_ptr<T>(), *o = out.data_ptr<T>();
  T *dp = dpre.data_ptr<T>(), *dhc = dh.data_ptr<T>();
  for (int64_t k = S - 1; k >= 0; --k) {
    const int64_t t = step_index(k, S, reverse);
    const T *got = go + t * B * H, *ot = o + t * B * H;
    T* dpt = dp + t * B * H;
    const int64_t n = B * H;
    if (relu) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) dpt[i] = ot[i] > T(0) ? dhc[i] + got[i] : T(0);
    } else {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) dpt[i] = (dhc[i] + got[i]) * (T(1) - ot[i] * ot[i]);
    }
    w.mul(dm.get(dpt, n), dhc, T(0));  // dh = dpre_t W_hh
  }
  Tensor dw = at::empty(w_hh.sizes(), opt);
  Tensor first = reverse ? dpre[S - 1] : dpre[0];
  Tensor rest = reverse ? dpre.narrow(0, 0, S - 1) : dpre.narrow(0, 1, S - 1);
  Tensor prev = reverse ? out.narrow(0, 1, S - 1) : out.narrow(0, 0, S - 1);
  Tensor a_first = first.to(scalar_of<M>()), h0m = h0.to(scalar_of<M>());
  gemm_atb<M, T>(B, H, H, a_first.data_ptr<M>(), h0m.data_ptr<M>(), dw.data_ptr<T>(), T(0));
  if (S > 1) {
    Tensor a = rest.to(scalar_of<M>()).contiguous(), p = prev.to(scalar_of<M>()).contiguous();
    gemm_atb<M, T>((S - 1) * B, H, H, a.data_ptr<M>(), p.data_ptr<M>(), dw.data_ptr<T>(), T(1));
  }
  Tensor db = has_bias ? dpre.sum({0, 1}) : Tensor();
  return {dpre, dh, dw, db};
}

// ---------------------------------------------------------------------------------------------
// Entry points: check the layout, then dispatch on (dtype, bf16).
static void check_args(const char* what, const Tensor& xp, const Tensor& h0, const Tensor& w_hh,
                       int64_t gates) {
  TORCH_CHECK(xp.dim() == 3 && xp.is_contiguous(), what, ": xp must be a contiguous (T, B, G*H) tensor");
  TORCH_CHECK(h0.dim() == 2 && h0.is_contiguous(), what, ": h0 must be a contiguous (B, H) tensor");
  TORCH_CHECK(xp.size(0) >= 1, what, ": needs at least one time step");
  const int64_t H = h0.size(1);
  TORCH_CHECK(xp.size(1) == h0.size(0) && xp.size(2) == gates * H, what, ": shape mismatch");
  TORCH_CHECK(w_hh.size(0) == gates * H && w_hh.size(1) == H, what, ": w_hh must be (G*H, H)");
  TORCH_CHECK(xp.scalar_type() == h0.scalar_type() && xp.scalar_type() == w_hh.scalar_type(),
              what, ": dtypes differ");
}

#define RNNKIT_DISPATCH(dtype, bf16, CALL)                                                  \
  if (dtype == at::kDouble) { TORCH_CHECK(!bf16, "bf16 products need float32 tensors");     \
    using T = double; using M = double; return CALL; }                                    \
  TORCH_CHECK(dtype == at::kFloat, "rnnkit native kernels serve float32/float64, got ", dtype); \
  if (bf16) { using T = float; using M = BFloat16; return CALL; }                         \
  { using T = float; using M = float; return CALL; }

std::vector<Tensor> gru_forward(Tensor xp, Tensor h0, Tensor w_hh, Tensor b_hh, bool reverse,
                                bool save, bool bf16) {
  check_args("gru_forward", xp, h0, w_hh, 3);
  RNNKIT_DISPATCH(xp.scalar_type(), bf16, (gru_forward_impl<T, M>(xp, h0, w_hh, b_hh.contiguous(), reverse, save)))
}

std::vector<Tensor> gru_backward(Tensor d_out, Tensor d_hn, Tensor out, Tensor h0, Tensor ws, Tensor w_hh,
                                 bool has_bias, bool reverse, bool bf16) {
  d_out = d_out.contiguous();
  RNNKIT_DISPATCH(out.scalar_type(), bf16, (gru_backward_impl<T, M>(d_out, d_hn, out, h0, ws, w_hh, has_bias, reverse)))
}

Tensor rnn_forward(Tensor xp, Tensor h0, Tensor w_hh, Tensor b_hh, bool relu, bool reverse, bool bf16) {
  check_args("rnn_forward", xp, h0, w_hh, 1);
  RNNKIT_DISPATCH(xp.scalar_type(), bf16, (rnn_forward_impl<T, M>(xp, h0, w_hh, b_hh.contiguous(), relu, reverse)))
}

std::vector<Tensor> rnn_backward(Tensor d_out, Tensor d_hn, Tensor out, Tensor h0, Tensor w_hh, bool has_bias,
                                 bool relu, bool reverse, bool bf16) {
  d_out = d_out.contiguous();
  RNNKIT_DISPATCH(out.scalar_type(), bf16, (rnn_backward_impl<T, M>(d_out, d_hn, out, h0, w_hh, has_bias, relu, reverse)))
}

}  // namespace rnnkit
