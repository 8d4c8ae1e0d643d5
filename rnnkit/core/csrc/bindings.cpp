// Registration of rnnkit's C++ kernels as PyTorch operators (torch.ops.rnnkit.*). The operator
// library is much lighter to compile than pybind11 bindings (torch/extension.h).
// Each operator is declared with its schema and implemented for the CPU only, so that Python can
// give it a shape function (`rnnkit.core.native`, torch.library.register_fake) for torch.compile
// and torch.export; sample_step declares the states it updates in place, (a!) and (b!).
#include <torch/library.h>
#include "kernels.h"

TORCH_LIBRARY(rnnkit, m) {
  m.def("gru_forward(Tensor xp, Tensor h0, Tensor w_hh, Tensor b_hh, bool reverse, bool save, "
        "bool bf16) -> Tensor[]");
  m.def("gru_backward(Tensor d_out, Tensor d_hn, Tensor out, Tensor h0, Tensor ws, Tensor w_hh, "
        "bool has_bias, bool reverse, bool bf16) -> Tensor[]");
  m.def("rnn_forward(Tensor xp, Tensor h0, Tensor w_hh, Tensor b_hh, bool relu, bool reverse, "
        "bool bf16) -> Tensor");
  m.def("rnn_backward(Tensor d_out, Tensor d_hn, Tensor out, Tensor h0, Tensor w_hh, bool has_bias, "
        "bool relu, bool reverse, bool bf16) -> Tensor[]");
  m.def("sample_step(Tensor pre0, Tensor(a!) h, Tensor(b!) c, Tensor[] w, Tensor[] b, Tensor head_w, "
        "Tensor head_b, int mode) -> Tensor");
  m.def("min_scan_forward(Tensor xp, Tensor bias, Tensor h0, int gates) -> Tensor");
  m.def("min_scan_backward(Tensor g_out, Tensor xp, Tensor bias, Tensor out, Tensor h0, int gates) "
        "-> Tensor[]");
  m.def("lnlstm_forward(Tensor xp, Tensor h0, Tensor c0, Tensor W, Tensor g_hh, Tensor b_hh, "
        "Tensor g_c, Tensor b_c, float eps) -> Tensor[]");
  m.def("lnlstm_backward(Tensor d_out, Tensor d_hT, Tensor d_cT, Tensor xp, Tensor c0, Tensor W, "
        "Tensor g_hh, Tensor b_hh, Tensor g_c, Tensor b_c, Tensor call, Tensor hp, Tensor stats) "
        "-> Tensor[]");
  m.def("lngru_forward(Tensor xp, Tensor h0, Tensor W, Tensor g_hh, Tensor b_hh, float eps) "
        "-> Tensor[]");
  m.def("lngru_backward(Tensor d_out, Tensor d_hT, Tensor xp, Tensor h0, Tensor W, Tensor g_hh, "
        "Tensor b_hh, Tensor out, Tensor hp, Tensor stats) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("gru_forward", &rnnkit::gru_forward);
  m.impl("gru_backward", &rnnkit::gru_backward);
  m.impl("rnn_forward", &rnnkit::rnn_forward);
  m.impl("rnn_backward", &rnnkit::rnn_backward);
  m.impl("sample_step", &rnnkit::sample_step);
  m.impl("min_scan_forward", &rnnkit::min_scan_forward);
  m.impl("min_scan_backward", &rnnkit::min_scan_backward);
  m.impl("lnlstm_forward", &rnnkit::lnlstm_forward);
  m.impl("lnlstm_backward", &rnnkit::lnlstm_backward);
  m.impl("lngru_forward", &rnnkit::lngru_forward);
  m.impl("lngru_backward", &rnnkit::lngru_backward);
}
