// Registration of rnnkit's C++ kernels as PyTorch operators (torch.ops.rnnkit.*). The operator
// library is much lighter to compile than pybind11 bindings (torch/extension.h).
#include <torch/library.h>
#include "kernels.h"

TORCH_LIBRARY(rnnkit, m) {
  m.def("gru_forward", &rnnkit::gru_forward);
  m.def("gru_backward", &rnnkit::gru_backward);
  m.def("rnn_forward", &rnnkit::rnn_forward);
  m.def("rnn_backward", &rnnkit::rnn_backward);
  m.def("sample_step", &rnnkit::sample_step);
  m.def("min_scan_forward", &rnnkit::min_scan_forward);
  m.def("min_scan_backward", &rnnkit::min_scan_backward);
  m.def("lnlstm_forward", &rnnkit::lnlstm_forward);
  m.def("lnlstm_backward", &rnnkit::lnlstm_backward);
  m.def("lngru_forward", &rnnkit::lngru_forward);
  m.def("lngru_backward", &rnnkit::lngru_backward);
}
