"""An Elman RNN written out in NumPy -- one cell step, then the whole forward pass -- and the same
computation in rnnkit (``rnnkit.nn.RNNCell`` and ``rnnkit.nn.RNN``) with the same weights, agreeing.

    h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)

Shapes: T time, B batch, I input features, H hidden units.

    python examples/numpy_rnn.py
"""
from __future__ import annotations

import numpy as np
import torch

import rnnkit.nn


def cell_step(x_t: np.ndarray, h_prev: np.ndarray, W_ih, W_hh, b_ih, b_hh) -> np.ndarray:
    """One step: ``x_t`` ``(B, I)``, ``h_prev`` ``(B, H)`` -> ``h_t`` ``(B, H)``."""
    return np.tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)


def rnn_forward(x: np.ndarray, h0: np.ndarray, W_ih, W_hh, b_ih, b_hh) -> tuple[np.ndarray, np.ndarray]:
    """The whole sequence: ``x`` ``(T, B, I)``, ``h0`` ``(B, H)`` -> outputs ``(T, B, H)`` and the last
    state ``h_T`` ``(B, H)``.

    The same weights are used at every step; the state is the only thing carried forward."""
    h, outputs = h0, []
    for x_t in x:                  # (B, I) at a time
        h = cell_step(x_t, h, W_ih, W_hh, b_ih, b_hh)
        outputs.append(h)
    return np.stack(outputs), h


def main(T: int = 6, B: int = 3, I: int = 4, H: int = 5, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    bound = 1 / np.sqrt(H)                                   # PyTorch's initialisation range
    W_ih, W_hh = rng.uniform(-bound, bound, (H, I)), rng.uniform(-bound, bound, (H, H))
    b_ih, b_hh = rng.uniform(-bound, bound, H), rng.uniform(-bound, bound, H)

    h1_np = cell_step(x[0], h0, W_ih, W_hh, b_ih, b_hh)
    out_np, hT_np = rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh)
    print(f"NumPy: one step {x[0].shape} -> {h1_np.shape}; the sequence {x.shape} -> outputs "
          f"{out_np.shape}, final state {hT_np.shape}")

    # the same weights in rnnkit, in float64 so the comparison is exact to rounding
    weights = {"weight_ih": W_ih, "weight_hh": W_hh, "bias_ih": b_ih, "bias_hh": b_hh}
    cell = rnnkit.nn.RNNCell(I, H).double()
    cell.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    layer = rnnkit.nn.RNN(I, H).double()
    layer.load_state_dict({f"{k}_l0": torch.from_numpy(v) for k, v in weights.items()})
    with torch.no_grad():
        h1_rk = cell(torch.from_numpy(x[0]), torch.from_numpy(h0)).numpy()
        out_rk, hT_rk = layer(torch.from_numpy(x), torch.from_numpy(h0)[None])   # state (L=1, B, H)
    diffs = {"cell step": float(np.abs(h1_rk - h1_np).max()),
             "sequence outputs": float(np.abs(out_rk.numpy() - out_np).max()),
             "final state": float(np.abs(hT_rk[0].numpy() - hT_np).max())}
    print(f"rnnkit: RNNCell -> {h1_rk.shape}; RNN -> outputs {tuple(out_rk.shape)}, "
          f"final state {tuple(hT_rk.shape)}")
    for what, d in diffs.items():
        print(f"largest |NumPy - rnnkit| difference, {what:16s}: {d:.1e}")
    print("they agree" if max(diffs.values()) < 1e-12 else "they DISAGREE")
    return diffs


if __name__ == "__main__":
    main()
