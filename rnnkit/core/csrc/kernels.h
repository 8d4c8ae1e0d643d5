// The entry points of rnnkit's C++ kernels (bound to Python in bindings.cpp).
#pragma once
#include <ATen/core/Tensor.h>
#include <vector>

namespace rnnkit {
using at::Tensor;
std::vector<Tensor> gru_forward(Tensor xp, Tensor h0, Tensor w_hh, Tensor b_hh, bool reverse,
                                bool save, bool bf16);
std::vector<Tensor> gru_backward(Tensor d_out, Tensor d_hn, Tensor out, Tensor h0, Tensor ws, Tensor w_hh,
                                 bool has_bias, bool reverse, bool bf16);
Tensor rnn_forward(Tensor xp, Tensor h0, Tensor w_hh, Tensor b_hh, bool relu, bool reverse,
                   bool bf16);
std::vector<Tensor> rnn_backward(Tensor d_out, Tensor d_hn, Tensor out, Tensor h0, Tensor w_hh, bool has_bias,
                                 bool relu, bool reverse, bool bf16);
Tensor sample_step(Tensor pre0, Tensor h, Tensor c, std::vector<Tensor> w, std::vector<Tensor> b,
                   Tensor head_w, Tensor head_b, int64_t mode);
Tensor min_scan_forward(Tensor xp, Tensor bias, Tensor h0, int64_t gates);
std::vector<Tensor> min_scan_backward(Tensor g_out, Tensor xp, Tensor bias, Tensor out, Tensor h0,
                                      int64_t gates);
std::vector<Tensor> lnlstm_forward(Tensor xp, Tensor h0, Tensor c0, Tensor W, Tensor g_hh,
                                   Tensor b_hh, Tensor g_c, Tensor b_c, double eps);
std::vector<Tensor> lnlstm_backward(Tensor d_out, Tensor d_hT, Tensor d_cT, Tensor xp, Tensor c0,
                                    Tensor W, Tensor g_hh, Tensor b_hh, Tensor g_c, Tensor b_c,
                                    Tensor call, Tensor hp, Tensor stats);
std::vector<Tensor> lngru_forward(Tensor xp, Tensor h0, Tensor W, Tensor g_hh, Tensor b_hh,
                                  double eps);
std::vector<Tensor> lngru_backward(Tensor d_out, Tensor d_hT, Tensor xp, Tensor h0, Tensor W,
                                   Tensor g_hh, Tensor b_hh, Tensor out, Tensor hp, Tensor stats);
}  // namespace rnnkit
