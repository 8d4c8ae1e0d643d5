"""A pure-NumPy reference implementation of the Elman RNN, the LSTM and the GRU.

Forward and hand-written backward passes, written to be read (every cell's equations are in
cells.py, the time loop and backpropagation through time in layers.py) and used as the exact
float64 oracle for rnnkit's fast PyTorch code.  This package never imports torch.

Conventions are exactly those of torch.nn.RNN / LSTM / GRU (batch_first=False): parameter names
and shapes of their state_dict, gate order i,f,g,o (LSTM) and r,z,n (GRU), time-major x (T, B, I),
states (L*D, B, H_out), packed-sequence semantics for ``lengths``.  Alphabet: B batch, T time,
I input features, H hidden, P projection (LSTM), L layers, D directions.

    out, h_n, c_n, cache = rnn_forward(x, params, mode="lstm", hidden_size=H, ...)
    grads = rnn_backward(d_out, d_h_n, d_c_n, cache)      # params' keys + "x", "h0", "c0"

A torch module's weights are fed in with
``{k: v.detach().double().numpy() for k, v in module.state_dict().items()}``.
"""

from .cells import (gru_step_backward, gru_step_forward, lstm_step_backward, lstm_step_forward,
                    rnn_step_backward, rnn_step_forward, sigmoid)
from .gradcheck import (GradientCheckError, check_gradients, format_report, gradcheck,
                        numerical_gradient, relative_error, rnn_objective)
from .layers import (MODES, NUM_GATES, direction_backward, direction_forward, init_params,
                     param_shapes, rnn_backward, rnn_forward)

__all__ = [
    "rnn_forward", "rnn_backward", "init_params", "param_shapes", "MODES", "NUM_GATES",
    "direction_forward", "direction_backward",
    "rnn_step_forward", "rnn_step_backward", "lstm_step_forward", "lstm_step_backward",
    "gru_step_forward", "gru_step_backward", "sigmoid",
    "gradcheck", "check_gradients", "numerical_gradient", "relative_error", "format_report",
    "rnn_objective", "GradientCheckError",
]
