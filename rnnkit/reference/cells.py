"""One time step of the Elman RNN, LSTM and GRU cells, forward and backward, in NumPy.

Each cell comes as a pair, in the style of min-char-rnn and llm.c's layernorm.py::

    h, cache            = rnn_step_forward(x, h_prev, p)
    dx, dh_prev, dp     = rnn_step_backward(dh, cache)

The backward function receives dL/d(output of the step) and returns dL/d(every input of the
step): the input ``x``, the previous state and every parameter.  Nothing here knows about time,
layers or padding: that is layers.py's job.

Alphabet (used in every docstring of this package)::

    B  batch size          T  number of time steps      I  input features
    H  hidden size         P  LSTM projection size      L  layers      D  directions (1 or 2)
    G  gates per cell: 1 (RNN), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n)

Rows are examples: ``x`` is (B, I), ``h`` is (B, H).  The parameters ``p`` are a dict with
PyTorch's storage layout (one layer, one direction)::

    p["weight_ih"]  (G*H, I)     p["bias_ih"]  (G*H,)    (the biases may be absent)
    p["weight_hh"]  (G*H, H)     p["bias_hh"]  (G*H,)
    p["weight_hr"]  (P, H)       LSTM with projection only; then weight_hh is (4*H, P)

PyTorch multiplies by the transpose, so the textbook matrices are ``W_xh = weight_ih.T`` (I, G*H)
and ``W_hh = weight_hh.T``; the textbook bias ``b_h`` is ``bias_ih + bias_hh`` (two biases are
redundant for the RNN and the LSTM, but not for the GRU's candidate gate).  All arrays are float64.
"""

import numpy as np

__all__ = [
    "sigmoid",
    "rnn_step_forward", "rnn_step_backward",
    "lstm_step_forward", "lstm_step_backward",
    "gru_step_forward", "gru_step_backward",
]


def sigmoid(a):
    """σ(a) = 1 / (1 + exp(-a)), computed without overflow for large |a|."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _affine(x, W, b):
    """x W^T + b: (B, K) x (N, K) -> (B, N); ``b`` may be None (bias=False)."""
    y = x @ W.T
    return y if b is None else y + b


def _affine_backward(da, x, W, has_bias):
    """Gradients of y = x W^T + b given dy = da: returns dx, dW, db (db is None without bias)."""
    dx = da @ W                      # each x[b, k] fed every output n through W[n, k]
    dW = da.T @ x                    # sum over the batch of outer products da_b x_b^T
    db = da.sum(axis=0) if has_bias else None   # the bias is broadcast over the batch rows
    return dx, dW, db


def _param_grads(p, **grads):
    """Keep only the gradients of the parameters that exist in ``p``."""
    return {k: v for k, v in grads.items() if p.get(k) is not None}


# --------------------------------------------------------------------------------------------
# Elman RNN
# --------------------------------------------------------------------------------------------

def rnn_step_forward(x, h_prev, p, nonlinearity="tanh"):
    """One step of the Elman RNN::

        H_t = φ(X_t W_xh + H_{t-1} W_hh + b_h),      φ = tanh or relu

    x (B, I), h_prev (B, H) -> h (B, H), cache.
    """
    a = _affine(x, p["weight_ih"], p.get("bias_ih")) + _affine(h_prev, p["weight_hh"], p.get("bias_hh"))
    h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
    return h, (x, h_prev, h, p, nonlinearity)


def rnn_step_backward(dh, cache):
    """Backward of :func:`rnn_step_forward`: dh (B, H) -> dx (B, I), dh_prev (B, H), dp."""
    x, h_prev, h, p, nonlinearity = cache
    if nonlinearity == "tanh":
        da = dh * (1.0 - h * h)      # tanh'(a) = 1 - tanh(a)^2, written with the output we kept
    else:
        da = dh * (h > 0)            # relu'(a) = 1 where a > 0 (0 at the kink, as PyTorch does)
    dx, dW_ih, db_ih = _affine_backward(da, x, p["weight_ih"], p.get("bias_ih") is not None)
    dh_prev, dW_hh, db_hh = _affine_backward(da, h_prev, p["weight_hh"], p.get("bias_hh") is not None)
    return dx, dh_prev, _param_grads(p, weight_ih=dW_ih, weight_hh=dW_hh, bias_ih=db_ih, bias_hh=db_hh)


# --------------------------------------------------------------------------------------------
# LSTM
# --------------------------------------------------------------------------------------------

def lstm_step_forward(x, h_prev, c_prev, p):
    """One step of the LSTM (gate order i, f, g, o as in PyTorch)::

        [A_i, A_f, A_g, A_o] = X_t W_xh + H_{t-1} W_hh + b_h        (each block (B, H))
        I_t = σ(A_i)      input gate
        F_t = σ(A_f)      forget gate
        G_t = tanh(A_g)   candidate cell
        O_t = σ(A_o)      output gate
        C_t = F_t ⊙ C_{t-1} + I_t ⊙ G_t
        M_t = O_t ⊙ tanh(C_t)
        H_t = M_t W_hr    if a projection is used (proj_size P > 0), else H_t = M_t

    x (B, I), h_prev (B, P or H), c_prev (B, H) -> h (B, P or H), c (B, H), cache.
    """
    H = c_prev.shape[1]
    a = _affine(x, p["weight_ih"], p.get("bias_ih")) + _affine(h_prev, p["weight_hh"], p.get("bias_hh"))
    i = sigmoid(a[:, 0 * H:1 * H])
    f = sigmoid(a[:, 1 * H:2 * H])
    g = np.tanh(a[:, 2 * H:3 * H])
    o = sigmoid(a[:, 3 * H:4 * H])
    c = f * c_prev + i * g
    tc = np.tanh(c)
    m = o * tc
    W_hr = p.get("weight_hr")
    h = m if W_hr is None else m @ W_hr.T
    return h, c, (x, h_prev, c_prev, i, f, g, o, tc, m, p)


def lstm_step_backward(dh, dc, cache):
    """Backward of :func:`lstm_step_forward`.

    dh (B, P or H), dc (B, H) -> dx (B, I), dh_prev, dc_prev (B, H), dp.
    ``dc`` is the gradient reaching C_t from the future (the next step's C_{t-1}).
    """
    x, h_prev, c_prev, i, f, g, o, tc, m, p = cache
    grads = {}
    W_hr = p.get("weight_hr")
    if W_hr is None:
        dm = dh
    else:
        grads["weight_hr"] = dh.T @ m            # H_t = M_t W_hr^T  ->  dW_hr = dH^T M
        dm = dh @ W_hr
    do = dm * tc
    dc = dc + dm * o * (1.0 - tc * tc)           # C_t also reaches H_t through tanh(C_t)
    di = dc * g
    dg = dc * i
    df = dc * c_prev
    dc_prev = dc * f                             # the "constant error carousel": scaled by F_t only
    da = np.concatenate([
        di * i * (1.0 - i),                      # σ'(a) = σ(a)(1 - σ(a))
        df * f * (1.0 - f),
        dg * (1.0 - g * g),                      # tanh'(a) = 1 - tanh(a)^2
        do * o * (1.0 - o),
    ], axis=1)
    dx, dW_ih, db_ih = _affine_backward(da, x, p["weight_ih"], p.get("bias_ih") is not None)
    dh_prev, dW_hh, db_hh = _affine_backward(da, h_prev, p["weight_hh"], p.get("bias_hh") is not None)
    grads.update(_param_grads(p, weight_ih=dW_ih, weight_hh=dW_hh, bias_ih=db_ih, bias_hh=db_hh))
    return dx, dh_prev, dc_prev, grads


# --------------------------------------------------------------------------------------------
# GRU
# --------------------------------------------------------------------------------------------

def gru_step_forward(x, h_prev, p, reset_after=True):
    """One step of the GRU (gate order r, z, n as in PyTorch).

    With W_xr, W_xz, W_xn the blocks of W_xh (likewise for W_hh, b_ih, b_hh)::

        R_t = σ(X_t W_xr + b_ir + H_{t-1} W_hr + b_hr)         reset gate
        Z_t = σ(X_t W_xz + b_iz + H_{t-1} W_hz + b_hz)         update gate
        reset_after=True  (PyTorch, cuDNN, Keras' default):
            N_t = tanh(X_t W_xn + b_in + R_t ⊙ (H_{t-1} W_hn + b_hn))
        reset_after=False (the original paper, Cho et al. 2014; Keras reset_after=False):
            N_t = tanh(X_t W_xn + b_in + (R_t ⊙ H_{t-1}) W_hn + b_hn)
        H_t = (1 - Z_t) ⊙ N_t + Z_t ⊙ H_{t-1}

    (W_hr here is the reset block of weight_hh, not the LSTM projection.)
    x (B, I), h_prev (B, H) -> h (B, H), cache.
    """
    H = h_prev.shape[1]
    W_hh, b_hh = p["weight_hh"], p.get("bias_hh")
    gi = _affine(x, p["weight_ih"], p.get("bias_ih"))              # (B, 3H): input side of all gates
    # the r and z gates see H_{t-1} the same way in both variants
    gh_rz = _affine(h_prev, W_hh[:2 * H], None if b_hh is None else b_hh[:2 * H])
    r = sigmoid(gi[:, 0 * H:1 * H] + gh_rz[:, 0 * H:1 * H])
    z = sigmoid(gi[:, 1 * H:2 * H] + gh_rz[:, 1 * H:2 * H])
    b_hn = None if b_hh is None else b_hh[2 * H:]
    if reset_after:
        gh_n = _affine(h_prev, W_hh[2 * H:], b_hn)                 # H_{t-1} W_hn + b_hn
        n = np.tanh(gi[:, 2 * H:] + r * gh_n)
    else:
        rh = r * h_prev
        gh_n = _affine(rh, W_hh[2 * H:], b_hn)                     # (R_t ⊙ H_{t-1}) W_hn + b_hn
        n = np.tanh(gi[:, 2 * H:] + gh_n)
    h = (1.0 - z) * n + z * h_prev
    return h, (x, h_prev, r, z, n, gh_n, p, reset_after)


def gru_step_backward(dh, cache):
    """Backward of :func:`gru_step_forward`: dh (B, H) -> dx (B, I), dh_prev (B, H), dp."""
    x, h_prev, r, z, n, gh_n, p, reset_after = cache
    H = h_prev.shape[1]
    W_hh = p["weight_hh"]
    W_hn = W_hh[2 * H:]
    has_bias_hh = p.get("bias_hh") is not None
    # H_t = (1 - Z) ⊙ N + Z ⊙ H_{t-1}: three routes
    dn = dh * (1.0 - z)
    dz = dh * (h_prev - n)                        # dH/dZ = H_{t-1} - N
    dh_prev = dh * z                              # the direct (leaky) path to H_{t-1}
    da_n = dn * (1.0 - n * n)                     # through tanh to N's pre-activation
    if reset_after:
        dgh_n = da_n * r                          # N's pre-activation holds R ⊙ (H W_hn^T + b_hn)
        dr = da_n * gh_n
        dh_prev_n, dW_hn, db_hn = _affine_backward(dgh_n, h_prev, W_hn, has_bias_hh)
        dh_prev = dh_prev + dh_prev_n
    else:
        d_rh, dW_hn, db_hn = _affine_backward(da_n, r * h_prev, W_hn, has_bias_hh)
        dr = d_rh * h_prev                        # d(R ⊙ H_{t-1})/dR = H_{t-1}
        dh_prev = dh_prev + d_rh * r              # ... and /dH_{t-1} = R
    da_rz = np.concatenate([dr * r * (1.0 - r), dz * z * (1.0 - z)], axis=1)   # σ' = σ(1 - σ)
    dh_prev_rz, dW_hrz, db_hrz = _affine_backward(da_rz, h_prev, W_hh[:2 * H], has_bias_hh)
    dh_prev = dh_prev + dh_prev_rz
    # input side: every gate's pre-activation contains X W_x* + b_i* with weight 1
    dgi = np.concatenate([da_rz, da_n], axis=1)
    dx, dW_ih, db_ih = _affine_backward(dgi, x, p["weight_ih"], p.get("bias_ih") is not None)
    dW_hh = np.concatenate([dW_hrz, dW_hn], axis=0)
    db_hh = np.concatenate([db_hrz, db_hn]) if has_bias_hh else None
    return dx, dh_prev, _param_grads(p, weight_ih=dW_ih, weight_hh=dW_hh, bias_ih=db_ih, bias_hh=db_hh)
