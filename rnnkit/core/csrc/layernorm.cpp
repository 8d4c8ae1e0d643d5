// The layer-normalised LSTM and GRU (Ba et al. 2016) over a whole sequence, forward and backward (BPTT), the
// way `recurrence.cpp` runs the GRU: per step one small matrix product (h_{t-1} W_hh^T) and one
// element-wise pass per row that does both layer norms and the gates; the backward pass recomputes
// the gates from what the forward pass kept and leaves the weight gradient (one large product over
// all steps) to the caller. The input side LN(x W_ih^T) is computed before, for all steps at once.
//
//   gates = xp_t + LN(h_{t-1} W_hh^T; g_hh, b_hh)          (i, f, g, o blocks of H)
//   c_t = σ(f) c_{t-1} + σ(i) tanh(g);   h_t = σ(o) tanh(LN(c_t; g_c, b_c))
//
// Shapes: T steps, B batch, H hidden, N = 4H. xp (T, B, N); h0, c0 (B, H); W (N, H); g_hh, b_hh (N);
// g_c, b_c (H); an empty b_hh / b_c means no shift. Kept for the backward pass: out (T, B, H),
// c (T, B, H), hp = h_{t-1} W^T (T, B, N), and each row's mean and 1/std of both norms (T, B, 4).
#include "common.h"
#include "kernels.h"

namespace rnnkit {
namespace {

// mean and 1/sqrt(biased variance + eps) of v (n,), two passes; `omp simd reduction` lets the
// sums run in vector lanes (a plain loop would be one serial chain of additions)
template <typename T>
inline void moments(const T* v, int64_t n, double eps, T& mean, T& rstd) {
  T s = 0, s2 = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += v[j];
  const T m = s / T(n);
#pragma omp simd reduction(+ : s2)
  for (int64_t j = 0; j < n; ++j) { const T d = v[j] - m; s2 += d * d; }
  mean = m;
  rstd = T(1.0 / std::sqrt(double(s2) / n + eps));
}

// Layer-norm backward of one row: y = (v - m) q g + b, dy given -> dv (may alias dy), and the gain
// and shift gradients accumulated into dg, db.
template <typename T>
inline void ln_backward_row(const T* v, T m, T q, const T* g, const T* dy, int64_t n, T* dg, T* db,
                            T* dv) {
  T s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t k = 0; k < n; ++k) {
    const T xh = (v[k] - m) * q, d = dy[k];
    dg[k] += d * xh;
    db[k] += d;
    s1 += d * g[k];
    s2 += d * g[k] * xh;
  }
  const T u1 = s1 / T(n), u2 = s2 / T(n);
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) dv[k] = q * (dy[k] * g[k] - u1 - (v[k] - m) * q * u2);
}

template <typename T>
std::vector<Tensor> forward_impl(const Tensor& xp, const Tensor& h0, const Tensor& c0,
                                 const Tensor& W, const Tensor& g_hh, const Tensor& b_hh,
                                 const Tensor& g_c, const Tensor& b_c, double eps) {
  const int64_t S = xp.size(0), B = xp.size(1), N = xp.size(2), H = h0.size(1);
  auto opt = xp.options();
  Tensor out = at::empty({S, B, H}, opt), call = at::empty({S, B, H}, opt);
  Tensor hp = at::empty({S, B, N}, opt), stats = at::empty({S, B, 4}, opt);
  const T *x = xp.data_ptr<T>(), *ghh = g_hh.data_ptr<T>();
  const T *gc = g_c.data_ptr<T>();
  const Tensor z1 = b_hh.numel() ? b_hh : at::zeros({N}, opt), z2 = b_c.numel() ? b_c : at::zeros({H}, opt);
  const T *bhh = z1.data_ptr<T>(), *bc = z2.data_ptr<T>();
  T *o = out.data_ptr<T>(), *cp = call.data_ptr<T>(), *hpp = hp.data_ptr<T>(), *st = stats.data_ptr<T>();
  const Weight<T> wf(W, B, false);  // packed once for the T products (float: MKL's packed format)
  for (int64_t t = 0; t < S; ++t) {
    const T* hprev = t ? o + (t - 1) * B * H : h0.data_ptr<T>();
    const T* cprev = t ? cp + (t - 1) * B * H : c0.data_ptr<T>();
    T* hpt = hpp + t * B * N;
    wf.mul_t(hprev, hpt, T(0));
    at::parallel_for(0, B, row_grain(N), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* a = hpt + r * N;
        const T* xr = x + (t * B + r) * N;
        T* s = st + (t * B + r) * 4;
        moments(a, N, eps, s[0], s[1]);
        const T m1 = s[0], r1s = s[1];
        const T* cpr = cprev + r * H;
        T* cr = cp + (t * B + r) * H;
        const T *ai = a, *af = a + H, *ag = a + 2 * H, *xi = xr, *xf = xr + H, *xg = xr + 2 * H;
        const T *gi = ghh, *gf = ghh + H, *gg = ghh + 2 * H, *bi = bhh, *bf = bhh + H, *bg = bhh + 2 * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T i = sigmoid(xi[j] + (ai[j] - m1) * r1s * gi[j] + bi[j]);
          const T f = sigmoid(xf[j] + (af[j] - m1) * r1s * gf[j] + bf[j]);
          const T g = std::tanh(xg[j] + (ag[j] - m1) * r1s * gg[j] + bg[j]);
          cr[j] = f * cpr[j] + i * g;
        }
        moments(cr, H, eps, s[2], s[3]);
        const T m2 = s[2], r2 = s[3];
        T* hr = o + (t * B + r) * H;
        const T *ao = a + 3 * H, *xo = xr + 3 * H, *go = ghh + 3 * H, *bo = bhh + 3 * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T og = sigmoid(xo[j] + (ao[j] - m1) * r1s * go[j] + bo[j]);
          hr[j] = og * std::tanh((cr[j] - m2) * r2 * gc[j] + bc[j]);
        }
      }
    });
  }
  return {out, call, hp, stats};
}

template <typename T>
std::vector<Tensor> backward_impl(const Tensor& d_out, const Tensor& d_hT, const Tensor& d_cT,
                                  const Tensor& xp, const Tensor& c0, const Tensor& W,
                                  const Tensor& g_hh, const Tensor& b_hh, const Tensor& g_c,
                                  const Tensor& b_c, const Tensor& call, const Tensor& hp,
                                  const Tensor& stats) {
  const int64_t S = xp.size(0), B = xp.size(1), N = xp.size(2), H = c0.size(1);
  auto opt = xp.options();
  Tensor d_xp = at::empty({S, B, N}, opt), d_hp = at::empty({S, B, N}, opt);
  Tensor dh = d_hT.clone(), dc = d_cT.clone();  // (B, H): what reaches h_t, c_t from the future
  Tensor d_ghh = at::zeros({N}, opt), d_bhh = at::zeros({N}, opt);
  Tensor d_gc = at::zeros({H}, opt), d_bc = at::zeros({H}, opt);
  const T *x = xp.data_ptr<T>(), *ghh = g_hh.data_ptr<T>(), *gc = g_c.data_ptr<T>();
  const Tensor z1 = b_hh.numel() ? b_hh : at::zeros({N}, opt), z2 = b_c.numel() ? b_c : at::zeros({H}, opt);
  const T *bhh = z1.data_ptr<T>(), *bc = z2.data_ptr<T>();
  const T *dout = d_out.data_ptr<T>(), *cp = call.data_ptr<T>(), *hpp = hp.data_ptr<T>();
  const T *st = stats.data_ptr<T>();
  T *dx = d_xp.data_ptr<T>(), *dhp = d_hp.data_ptr<T>(), *dhv = dh.data_ptr<T>(), *dcv = dc.data_ptr<T>();
  T *dg1 = d_ghh.data_ptr<T>(), *db1 = d_bhh.data_ptr<T>(), *dg2 = d_gc.data_ptr<T>(), *db2 = d_bc.data_ptr<T>();
  std::vector<T> chat(H), dch(H);
  const Weight<T> wb(W, B, true);
  for (int64_t t = S - 1; t >= 0; --t) {
    const T* cprev = t ? cp + (t - 1) * B * H : c0.data_ptr<T>();
    for (int64_t r = 0; r < B; ++r) {
      const T* a = hpp + (t * B + r) * N;
      const T* xr = x + (t * B + r) * N;
      const T* s = st + (t * B + r) * 4;
      const T m1 = s[0], r1s = s[1], m2 = s[2], r2 = s[3];
      const T* cr = cp + (t * B + r) * H;
      const T* cpr = cprev + r * H;
      const T* dor = dout + (t * B + r) * H;
      T* dhr = dhv + r * H;
      T* dcr = dcv + r * H;
      T* dxr = dx + (t * B + r) * N;
      // through h_t = o tanh(LN(c_t)): d o (pre-activation) and d of LN(c)'s input
      T sum1 = 0, sum2 = 0;
#pragma omp simd reduction(+ : sum1, sum2)
      for (int64_t j = 0; j < H; ++j) {
        const T hj = (cr[j] - m2) * r2;
        const T tc = std::tanh(hj * gc[j] + bc[j]);
        const int64_t q = 3 * H + j;
        const T og = sigmoid(xr[q] + (a[q] - m1) * r1s * ghh[q] + bhh[q]);
        const T dht = dor[j] + dhr[j];
        dxr[q] = dht * tc * og * (T(1) - og);
        const T dcn = dht * og * (T(1) - tc * tc);
        dg2[j] += dcn * hj;
        db2[j] += dcn;
        const T d = dcn * gc[j];
        chat[j] = hj;
        dch[j] = d;
        sum1 += d;
        sum2 += d * hj;
      }
      const T mean1 = sum1 / H, mean2 = sum2 / H;
      // the gates i, f, g, and c_{t-1}'s direct gradient
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T dct = dcr[j] + r2 * (dch[j] - mean1 - chat[j] * mean2);
        const T gi = xr[j] + (a[j] - m1) * r1s * ghh[j] + bhh[j];
        const T gf = xr[H + j] + (a[H + j] - m1) * r1s * ghh[H + j] + bhh[H + j];
        const T gg = xr[2 * H + j] + (a[2 * H + j] - m1) * r1s * ghh[2 * H + j] + bhh[2 * H + j];
        const T i = sigmoid(gi), f = sigmoid(gf), g = std::tanh(gg);
        dxr[j] = dct * g * i * (T(1) - i);
        dxr[H + j] = dct * cpr[j] * f * (T(1) - f);
        dxr[2 * H + j] = dct * i * (T(1) - g * g);
        dcr[j] = dct * f;  // to c_{t-1}
      }
      // LN(hp) backward: d_gates (= d xp_t) -> d hp_t, and the gain / shift gradients
      ln_backward_row(a, m1, r1s, ghh, dxr, N, dg1, db1, dhp + (t * B + r) * N);
    }
    // to h_{t-1}: through hp_t = h_{t-1} W^T only
    wb.mul(dhp + t * B * N, dhv, T(0));
  }
  return {d_xp, d_hp, dh, dc, d_ghh, d_bhh, d_gc, d_bc};
}


// ---------------------------------------------------------------------------------------------
// The layer-normalised GRU (the authors' lngru_layer; rnnkit/cells/layernorm.py), blocks r, z, n:
//   a = LN(hp[:, :2H]; g[:2H], b[:2H]) (r and z together),  nb = LN(hp[:, 2H:]; g[2H:], b[2H:])
//   r, z = σ(xp_rz + a);  n = tanh(xp_n + r ⊙ nb);  h_t = n + z ⊙ (h_{t-1} - n)
// Kept: out (T, B, H), hp = h_{t-1} W^T (T, B, 3H), stats (T, B, 4) = both norms' mean and 1/std.
template <typename T>
std::vector<Tensor> gru_forward_impl(const Tensor& xp, const Tensor& h0, const Tensor& W,
                                     const Tensor& g_hh, const Tensor& b_hh, double eps) {
  const int64_t S = xp.size(0), B = xp.size(1), N = xp.size(2), H = h0.size(1);
  auto opt = xp.options();
  Tensor out = at::empty({S, B, H}, opt), hp = at::empty({S, B, N}, opt);
  Tensor stats = at::empty({S, B, 4}, opt);
  const Tensor zb = b_hh.numel() ? b_hh : at::zeros({N}, opt);
  const T *x = xp.data_ptr<T>(), *g = g_hh.data_ptr<T>(), *b = zb.data_ptr<T>();
  T *o = out.data_ptr<T>(), *hpp = hp.data_ptr<T>(), *st = stats.data_ptr<T>();
  const Weight<T> wf(W, B, false);
  for (int64_t t = 0; t < S; ++t) {
    const T* hprev = t ? o + (t - 1) * B * H : h0.data_ptr<T>();
    T* hpt = hpp + t * B * N;
    wf.mul_t(hprev, hpt, T(0));
    at::parallel_for(0, B, row_grain(N), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* a = hpt + r * N;
        const T* xr = x + (t * B + r) * N;
        T* s = st + (t * B + r) * 4;
        moments(a, 2 * H, eps, s[0], s[1]);
        moments(a + 2 * H, H, eps, s[2], s[3]);
        const T m1 = s[0], q1 = s[1], m2 = s[2], q2 = s[3];
        const T* hpr = hprev + r * H;
        T* hr = o + (t * B + r) * H;
        const T *ar = a, *az = a + H, *an = a + 2 * H, *xrr = xr, *xz = xr + H, *xn = xr + 2 * H;
        const T *gr = g, *gz = g + H, *gn = g + 2 * H, *br = b, *bz = b + H, *bn = b + 2 * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T rg = sigmoid(xrr[j] + (ar[j] - m1) * q1 * gr[j] + br[j]);
          const T zg = sigmoid(xz[j] + (az[j] - m1) * q1 * gz[j] + bz[j]);
          const T nb = (an[j] - m2) * q2 * gn[j] + bn[j];
          const T n = std::tanh(xn[j] + rg * nb);
          hr[j] = n + zg * (hpr[j] - n);
        }
      }
    });
  }
  return {out, hp, stats};
}

template <typename T>
std::vector<Tensor> gru_backward_impl(const Tensor& d_out, const Tensor& d_hT, const Tensor& xp,
                                      const Tensor& h0, const Tensor& W, const Tensor& g_hh,
                                      const Tensor& b_hh, const Tensor& out, const Tensor& hp,
                                      const Tensor& stats) {
  const int64_t S = xp.size(0), B = xp.size(1), N = xp.size(2), H = h0.size(1);
  auto opt = xp.options();
  Tensor d_xp = at::empty({S, B, N}, opt), d_hp = at::empty({S, B, N}, opt);
  Tensor dh = d_hT.clone();  // (B, H): what reaches h_t from the future
  Tensor d_g = at::zeros({N}, opt), d_b = at::zeros({N}, opt);
  const Tensor zb = b_hh.numel() ? b_hh : at::zeros({N}, opt);
  const T *x = xp.data_ptr<T>(), *g = g_hh.data_ptr<T>(), *b = zb.data_ptr<T>();
  const T *dout = d_out.data_ptr<T>(), *o = out.data_ptr<T>(), *hpp = hp.data_ptr<T>();
  const T *st = stats.data_ptr<T>();
  T *dx = d_xp.data_ptr<T>(), *dhp = d_hp.data_ptr<T>(), *dhv = dh.data_ptr<T>();
  T *dg = d_g.data_ptr<T>(), *db = d_b.data_ptr<T>();
  const Weight<T> wb(W, B, true);
  for (int64_t t = S - 1; t >= 0; --t) {
    const T* hprev = t ? o + (t - 1) * B * H : h0.data_ptr<T>();
    for (int64_t r = 0; r < B; ++r) {
      const T* a = hpp + (t * B + r) * N;
      const T* xr = x + (t * B + r) * N;
      const T* s = st + (t * B + r) * 4;
      const T m1 = s[0], q1 = s[1], m2 = s[2], q2 = s[3];
      const T* hpr = hprev + r * H;
      const T* dor = dout + (t * B + r) * H;
      T* dhr = dhv + r * H;
      T* dxr = dx + (t * B + r) * N;
      T* dhpr = dhp + (t * B + r) * N;
      // the gates; dxr gets d of the pre-activations (= d xp_t), dhpr[2H:] d of LN_n's output
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T rg = sigmoid(xr[j] + (a[j] - m1) * q1 * g[j] + b[j]);
        const T zg = sigmoid(xr[H + j] + (a[H + j] - m1) * q1 * g[H + j] + b[H + j]);
        const T nb = (a[2 * H + j] - m2) * q2 * g[2 * H + j] + b[2 * H + j];
        const T n = std::tanh(xr[2 * H + j] + rg * nb);
        const T dht = dor[j] + dhr[j];
        const T dnp = dht * (T(1) - zg) * (T(1) - n * n);
        dxr[2 * H + j] = dnp;
        dxr[j] = dnp * nb * rg * (T(1) - rg);
        dxr[H + j] = dht * (hpr[j] - n) * zg * (T(1) - zg);
        dhpr[2 * H + j] = dnp * rg;   // d LN_n(.) output, turned into d hp below
        dhr[j] = dht * zg;            // to h_{t-1} directly; the product's part is added below
      }
      // LN backward of both blocks: [0, 2H) from dxr, [2H, 3H) from dhpr (in place)
      ln_backward_row(a, m1, q1, g, dxr, 2 * H, dg, db, dhpr);
      ln_backward_row(a + 2 * H, m2, q2, g + 2 * H, dhpr + 2 * H, H, dg + 2 * H, db + 2 * H,
                      dhpr + 2 * H);
    }
    wb.mul(dhp + t * B * N, dhv, T(1));  // + d hp_t W: through hp_t = h_{t-1} W^T
  }
  return {d_xp, d_hp, dh, d_g, d_b};
}

void check(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& W) {
  TORCH_CHECK(xp.dim() == 3 && h0.dim() == 2 && xp.size(2) == 4 * h0.size(1) &&
              xp.size(1) == h0.size(0) && c0.sizes() == h0.sizes() && W.size(0) == xp.size(2) &&
              W.size(1) == h0.size(1), "lnlstm: xp (T, B, 4H), h0/c0 (B, H), W (4H, H) expected");
  TORCH_CHECK(xp.device().is_cpu() && xp.is_contiguous() && h0.is_contiguous() &&
              c0.is_contiguous() && W.is_contiguous(), "lnlstm: contiguous CPU tensors expected");
}

}  // namespace

std::vector<Tensor> lnlstm_forward(Tensor xp, Tensor h0, Tensor c0, Tensor W, Tensor g_hh,
                                   Tensor b_hh, Tensor g_c, Tensor b_c, double eps) {
  check(xp, h0, c0, W);
  if (xp.scalar_type() == at::kFloat)
    return forward_impl<float>(xp, h0, c0, W, g_hh, b_hh, g_c, b_c, eps);
  TORCH_CHECK(xp.scalar_type() == at::kDouble, "lnlstm: float32 or float64 only");
  return forward_impl<double>(xp, h0, c0, W, g_hh, b_hh, g_c, b_c, eps);
}

std::vector<Tensor> lnlstm_backward(Tensor d_out, Tensor d_hT, Tensor d_cT, Tensor xp, Tensor c0,
                                    Tensor W, Tensor g_hh, Tensor b_hh, Tensor g_c, Tensor b_c,
                                    Tensor call, Tensor hp, Tensor stats) {
  TORCH_CHECK(d_out.is_contiguous() && d_hT.is_contiguous() && d_cT.is_contiguous(),
              "lnlstm_backward: contiguous gradients expected");
  if (xp.scalar_type() == at::kFloat)
    return backward_impl<float>(d_out, d_hT, d_cT, xp, c0, W, g_hh, b_hh, g_c, b_c, call, hp, stats);
  return backward_impl<double>(d_out, d_hT, d_cT, xp, c0, W, g_hh, b_hh, g_c, b_c, call, hp, stats);
}

std::vector<Tensor> lngru_forward(Tensor xp, Tensor h0, Tensor W, Tensor g_hh, Tensor b_hh,
                                  double eps) {
  TORCH_CHECK(xp.dim() == 3 && h0.dim() == 2 && xp.size(2) == 3 * h0.size(1) &&
              xp.size(1) == h0.size(0) && W.size(0) == xp.size(2) && W.size(1) == h0.size(1),
              "lngru: xp (T, B, 3H), h0 (B, H), W (3H, H) expected");
  TORCH_CHECK(xp.device().is_cpu() && xp.is_contiguous() && h0.is_contiguous() && W.is_contiguous(),
              "lngru: contiguous CPU tensors expected");
  if (xp.scalar_type() == at::kFloat) return gru_forward_impl<float>(xp, h0, W, g_hh, b_hh, eps);
  TORCH_CHECK(xp.scalar_type() == at::kDouble, "lngru: float32 or float64 only");
  return gru_forward_impl<double>(xp, h0, W, g_hh, b_hh, eps);
}

std::vector<Tensor> lngru_backward(Tensor d_out, Tensor d_hT, Tensor xp, Tensor h0, Tensor W,
                                   Tensor g_hh, Tensor b_hh, Tensor out, Tensor hp, Tensor stats) {
  TORCH_CHECK(d_out.is_contiguous() && d_hT.is_contiguous(), "lngru_backward: contiguous gradients expected");
  if (xp.scalar_type() == at::kFloat)
    return gru_backward_impl<float>(d_out, d_hT, xp, h0, W, g_hh, b_hh, out, hp, stats);
  return gru_backward_impl<double>(d_out, d_hT, xp, h0, W, g_hh, b_hh, out, hp, stats);
}

}  // namespace rnnkit
