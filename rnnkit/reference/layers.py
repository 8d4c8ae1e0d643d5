"""The time loop (one direction of one layer) and the stacked, bidirectional network.

Backpropagation through time is just the chain rule applied to the unrolled loop: run the
steps forward keeping every step's cache, then walk them in the opposite order, carrying
dL/dH_t (and dL/dC_t) from step t back to step t-1.

Shapes follow torch.nn.RNN/LSTM/GRU with batch_first=False (alphabet in cells.py)::

    x    (T, B, I)               out  (T, B, D*H_out)        H_out = P if proj_size else H
    h0   (L*D, B, H_out)         h_n  (L*D, B, H_out)        row layer*D + direction
    c0   (L*D, B, H)  (LSTM)     c_n  (L*D, B, H)

Variable lengths (``lengths``, (B,) ints) follow PyTorch's packed sequences: sequence b is valid
for t < lengths[b]; after that its state is frozen and its outputs are exactly zero; the reverse
direction starts from h0 at each sequence's own last step t = lengths[b] - 1.  Padded inputs are
ignored (their gradient is zero).
"""

import math

import numpy as np

from . import cells

__all__ = [
    "MODES", "NUM_GATES", "param_shapes", "init_params",
    "direction_forward", "direction_backward", "rnn_forward", "rnn_backward",
]

MODES = ("rnn", "lstm", "gru")
NUM_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
_SHORT = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


# --------------------------------------------------------------------------------------------
# one step, any cell: the state is a tuple (h,) or, for the LSTM, (h, c)
# --------------------------------------------------------------------------------------------

def _step_forward(mode, x_t, state, p, nonlinearity, reset_after):
    if mode == "rnn":
        h, cache = cells.rnn_step_forward(x_t, state[0], p, nonlinearity)
        return (h,), cache
    if mode == "lstm":
        h, c, cache = cells.lstm_step_forward(x_t, state[0], state[1], p)
        return (h, c), cache
    h, cache = cells.gru_step_forward(x_t, state[0], p, reset_after)
    return (h,), cache


def _step_backward(mode, dstate, cache):
    if mode == "rnn":
        dx, dh_prev, dp = cells.rnn_step_backward(dstate[0], cache)
        return dx, (dh_prev,), dp
    if mode == "lstm":
        dx, dh_prev, dc_prev, dp = cells.lstm_step_backward(dstate[0], dstate[1], cache)
        return dx, (dh_prev, dc_prev), dp
    dx, dh_prev, dp = cells.gru_step_backward(dstate[0], cache)
    return dx, (dh_prev,), dp


# --------------------------------------------------------------------------------------------
# one direction of one layer
# --------------------------------------------------------------------------------------------

def direction_forward(x, p, h0, c0=None, *, mode, lengths=None, reverse=False,
                      nonlinearity="tanh", reset_after=True):
    """Run one cell over time, H_t = cell(X_t, H_{t-1}) for t = 0..T-1 (or T-1..0 if reverse).

    x (T, B, I), p: one layer's parameters with short names (see cells.py), h0 (B, H_out),
    c0 (B, H) for the LSTM, lengths (B,) ints or None.
    Returns out (T, B, H_out), h_n (B, H_out), c_n (B, H) or None, cache.
    """
    T = x.shape[0]
    mask = None
    if lengths is not None:
        mask = np.arange(T)[:, None] < np.asarray(lengths)[None, :]    # (T, B): True where valid
        x = np.where(mask[:, :, None], x, 0.0)   # padding is never read, so its gradient is zero
    state = (h0,) if mode != "lstm" else (h0, c0)
    out = np.zeros((T,) + h0.shape)
    caches = []
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        new, step_cache = _step_forward(mode, x[t], state, p, nonlinearity, reset_after)
        if mask is not None:
            m = mask[t][:, None]
            # padded rows keep their old state: (forward) the state at the last valid step is
            # carried to the end; (reverse) the state stays h0 until the sequence's last step
            new = tuple(np.where(m, s_new, s_old) for s_new, s_old in zip(new, state))
            out[t] = np.where(m, new[0], 0.0)
        else:
            out[t] = new[0]
        state = new
        caches.append((t, step_cache))
    cache = {"mode": mode, "mask": mask, "steps": caches, "p": p, "x_shape": x.shape}
    return out, state[0], (state[1] if mode == "lstm" else None), cache


def direction_backward(d_out, d_h_n, d_c_n, cache):
    """Backward of :func:`direction_forward` (backpropagation through time).

    d_out (T, B, H_out), d_h_n (B, H_out), d_c_n (B, H) or None.
    Returns dx (T, B, I), dp (same keys as p), dh0 (B, H_out), dc0 (B, H) or None.
    """
    mode, mask, p = cache["mode"], cache["mask"], cache["p"]
    dx = np.zeros(cache["x_shape"])
    dp = {k: np.zeros_like(v) for k, v in p.items() if v is not None}
    # dstate holds dL/d(state after the step we are at), coming from the future steps
    dstate = (d_h_n,) if mode != "lstm" else (d_h_n, d_c_n)
    for t, step_cache in reversed(cache["steps"]):     # walk the steps in reverse order
        if mask is None:
            # H_t went to the output at t and to the next step: the gradients add up
            d_new = (dstate[0] + d_out[t],) + dstate[1:]
            dx[t], dstate, dp_t = _step_backward(mode, d_new, step_cache)
        else:
            m = mask[t][:, None]
            # valid rows: as above.  Padded rows: the step did not happen (its output is a
            # constant zero), so nothing enters the cell ...
            d_new = (np.where(m, dstate[0] + d_out[t], 0.0),) + tuple(np.where(m, d, 0.0) for d in dstate[1:])
            dx[t], d_prev, dp_t = _step_backward(mode, d_new, step_cache)
            # ... and the state was copied unchanged, so its gradient flows straight through
            dstate = tuple(dp_ + np.where(m, 0.0, d) for dp_, d in zip(d_prev, dstate))
        for k, g in dp_t.items():
            dp[k] += g                            # the same weights are used at every step
    return dx, dp, dstate[0], (dstate[1] if mode == "lstm" else None)


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------

def param_shapes(mode, input_size, hidden_size, num_layers=1, bidirectional=False,
                 proj_size=0, bias=True):
    """Names and shapes of the parameters, in torch.nn.RNN/LSTM/GRU's state_dict order."""
    _check_mode(mode)
    G, H, D = NUM_GATES[mode], hidden_size, 2 if bidirectional else 1
    H_out = proj_size if proj_size > 0 else H
    shapes = {}
    for k in range(num_layers):
        I_k = input_size if k == 0 else H_out * D
        for sfx in ("", "_reverse")[:D]:
            shapes[f"weight_ih_l{k}{sfx}"] = (G * H, I_k)
            shapes[f"weight_hh_l{k}{sfx}"] = (G * H, H_out)
            if bias:
                shapes[f"bias_ih_l{k}{sfx}"] = (G * H,)
                shapes[f"bias_hh_l{k}{sfx}"] = (G * H,)
            if proj_size > 0:
                shapes[f"weight_hr_l{k}{sfx}"] = (proj_size, H)
    return shapes


def init_params(mode, input_size, hidden_size, num_layers=1, bidirectional=False,
                proj_size=0, bias=True, seed=0):
    """Float64 parameters drawn from U(-1/sqrt(H), 1/sqrt(H)), PyTorch's default init."""
    _check_config(mode, hidden_size, num_layers, proj_size, "tanh")
    rng = np.random.default_rng(seed)
    k = 1.0 / math.sqrt(hidden_size)
    return {name: rng.uniform(-k, k, size=shape)
            for name, shape in param_shapes(mode, input_size, hidden_size, num_layers,
                                            bidirectional, proj_size, bias).items()}


# --------------------------------------------------------------------------------------------
# argument checks: every error names the argument, what it got and what it expected
# --------------------------------------------------------------------------------------------

def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")


def _check_config(mode, hidden_size, num_layers, proj_size, nonlinearity):
    _check_mode(mode)
    for name, v, lo in (("hidden_size", hidden_size, 1), ("num_layers", num_layers, 1),
                        ("proj_size", proj_size, 0)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
    if proj_size > 0 and mode != "lstm":
        raise ValueError(f"proj_size: expected 0 for mode={mode!r} (only the LSTM has a projection), "
                         f"got {proj_size}")
    if proj_size >= hidden_size:
        raise ValueError(f"proj_size: expected a value smaller than hidden_size={hidden_size}, "
                         f"got {proj_size}")
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")


def _as_state(name, v, shape):
    if v is None:
        return np.zeros(shape)
    v = np.asarray(v, dtype=np.float64)
    if v.shape != shape:
        raise ValueError(f"{name}: expected shape (L*D, B, {'H' if name == 'c0' else 'H_out'}) = {shape}, "
                         f"got {v.shape}")
    return v


def _check_lengths(lengths, T, B):
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.shape != (B,):
        raise ValueError(f"lengths: expected shape (B,) = ({B},), got {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"lengths: expected integers, got dtype {arr.dtype}")
    if B and (arr.min() < 0 or arr.max() > T):
        raise ValueError(f"lengths: expected every length in [0, T={T}], got {arr.tolist()}")
    return arr.astype(np.int64)


# --------------------------------------------------------------------------------------------
# the network: L layers of D directions
# --------------------------------------------------------------------------------------------

def rnn_forward(x, params, *, mode, num_layers=1, bidirectional=False, hidden_size, proj_size=0,
                bias=True, nonlinearity="tanh", reset_after=True, h0=None, c0=None, lengths=None):
    """Forward pass of torch.nn.RNN / LSTM / GRU (batch_first=False), in float64.

    Layer 0 reads x; layer k > 0 reads the concatenated outputs [forward, reverse] of layer k-1.
    mode: "rnn" (with nonlinearity "tanh" or "relu"), "lstm" (proj_size >= 0) or "gru"
    (reset_after=True is PyTorch's GRU, False the original paper's).  params uses PyTorch's names
    (see :func:`param_shapes`).  h0/c0 default to zeros.
    Returns out (T, B, D*H_out), h_n (L*D, B, H_out), c_n (L*D, B, H) or None, cache.
    """
    _check_config(mode, hidden_size, num_layers, proj_size, nonlinearity)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"x: expected a 3-D time-major array (T, B, I), got shape {x.shape}")
    T, B, I = x.shape
    if not isinstance(params, dict):
        raise ValueError(f"params: expected a dict of arrays, got {type(params).__name__}")
    shapes = param_shapes(mode, I, hidden_size, num_layers, bidirectional, proj_size, bias)
    extra = sorted(set(params) - set(shapes))
    if extra:
        raise ValueError(f"params: unexpected keys {extra} for mode={mode!r}, num_layers={num_layers}, "
                         f"bidirectional={bidirectional}, proj_size={proj_size}, bias={bias}")
    P = {}
    for name, shape in shapes.items():
        if name not in params:
            raise ValueError(f"params: missing key {name!r} (expected shape {shape})")
        P[name] = np.asarray(params[name], dtype=np.float64)
        if P[name].shape != shape:
            raise ValueError(f"params[{name!r}]: expected shape {shape} for mode={mode!r}, "
                             f"hidden_size={hidden_size}, "
                             f"proj_size={proj_size}, input_size={I} (x.shape[2]), got {P[name].shape}")
    D = 2 if bidirectional else 1
    H_out = proj_size if proj_size > 0 else hidden_size
    h0 = _as_state("h0", h0, (num_layers * D, B, H_out))
    if mode != "lstm" and c0 is not None:
        raise ValueError(f"c0: expected None for mode={mode!r} (only the LSTM has a cell state)")
    c0 = _as_state("c0", c0, (num_layers * D, B, hidden_size)) if mode == "lstm" else None
    lengths = _check_lengths(lengths, T, B)

    h_n = np.zeros_like(h0)
    c_n = np.zeros_like(c0) if mode == "lstm" else None
    caches, layer_in = [], x
    for k in range(num_layers):
        outs = []
        for d, sfx in enumerate(("", "_reverse")[:D]):
            idx = k * D + d
            p = {s: P.get(f"{s}_l{k}{sfx}") for s in _SHORT}
            out_d, h_n[idx], c_last, cache_d = direction_forward(
                layer_in, p, h0[idx], None if c0 is None else c0[idx], mode=mode, lengths=lengths,
                reverse=(d == 1), nonlinearity=nonlinearity, reset_after=reset_after)
            if c_n is not None:
                c_n[idx] = c_last
            outs.append(out_d)
            caches.append((k, sfx, cache_d))
        layer_in = np.concatenate(outs, axis=2)    # (T, B, D*H_out): next layer's input
    cache = {"mode": mode, "L": num_layers, "D": D, "H_out": H_out, "x_shape": x.shape,
             "h0_shape": h0.shape, "c0_shape": None if c0 is None else c0.shape,
             "out_shape": layer_in.shape, "names": list(shapes), "dirs": caches}
    return layer_in, h_n, c_n, cache


def _as_grad(name, v, shape):
    if v is None:
        return np.zeros(shape)
    v = np.asarray(v, dtype=np.float64)
    if v.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} (the shape of the forward result), got {v.shape}")
    return v


def rnn_backward(d_out, d_h_n, d_c_n, cache):
    """Backward of :func:`rnn_forward`.

    d_out (T, B, D*H_out), d_h_n (L*D, B, H_out), d_c_n (L*D, B, H): gradients of the loss with
    respect to the three results; any of them may be None (zero).
    Returns a dict with a gradient for every parameter key, plus "x", "h0" and (LSTM) "c0"
    (the gradients with respect to the zero initial state if h0/c0 were not given).
    """
    if not isinstance(cache, dict) or "dirs" not in cache:
        raise ValueError("cache: expected the cache returned by rnn_forward")
    mode, L, D, H_out = cache["mode"], cache["L"], cache["D"], cache["H_out"]
    d_layer_out = _as_grad("d_out", d_out, cache["out_shape"])
    d_h_n = _as_grad("d_h_n", d_h_n, cache["h0_shape"])
    if mode != "lstm" and d_c_n is not None:
        raise ValueError(f"d_c_n: expected None for mode={mode!r} (only the LSTM has a cell state)")
    d_c_n = _as_grad("d_c_n", d_c_n, cache["c0_shape"]) if mode == "lstm" else None
    grads = {"h0": np.zeros(cache["h0_shape"])}
    if mode == "lstm":
        grads["c0"] = np.zeros(cache["c0_shape"])
    for k in reversed(range(L)):
        d_in = None
        for d in range(D):
            idx = k * D + d
            _, sfx, cache_d = cache["dirs"][idx]
            dx, dp, dh0, dc0 = direction_backward(
                d_layer_out[:, :, d * H_out:(d + 1) * H_out], d_h_n[idx],
                None if d_c_n is None else d_c_n[idx], cache_d)
            d_in = dx if d_in is None else d_in + dx    # both directions read the same input
            grads["h0"][idx] = dh0
            if mode == "lstm":
                grads["c0"][idx] = dc0
            for s, g in dp.items():
                grads[f"{s}_l{k}{sfx}"] = g
        d_layer_out = d_in
    grads["x"] = d_layer_out
    ordered = {name: grads[name] for name in cache["names"]}
    ordered.update((k, grads[k]) for k in ("x", "h0", "c0") if k in grads)
    return ordered
