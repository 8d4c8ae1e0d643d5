"""`Sampler`: fast token-by-token generation from an embedding (or one-hot input), a recurrent stack
and a linear head.

Generating text is one step at a time: at batch 1 each step is a few matrix-vector products, and
``torch.nn.LSTM`` spends far more on per-call overhead (argument checks, oneDNN set-up) than on the
arithmetic. The sampler prepares the weights once so that a step of a stock cell is one product per
layer plus a few element-wise operations, under ``torch.inference_mode``:

- layer 0 reads its gate pre-activations from a table ``E W_ih^T + b`` ``(V, G*H)`` indexed by the
  token (the embedding and the input projection folded together; one-hot input: ``W_ih^T + b``);
- layer k > 0 multiplies ``[x, h]`` ``(B, I+H)`` by the stacked ``[W_ih; W_hh]^T`` once (for the GRU
  a block matrix keeps ``W_hn h`` apart, because the reset gate scales it);
- the head is one product ``h W^T + b``;
- with rnnkit's C++ kernels (`rnnkit.core.native`, float32/float64 on the CPU) the whole step after
  the table lookup is one call (``torch.ops.rnnkit.sample_step``): the products through BLAS and one
  element-wise pass per layer, instead of a dozen PyTorch operations per layer.

The arithmetic is that of ``torch.nn`` up to the order of additions: probabilities agree to ~1e-6 in
float32 (exactly enough in float64 that the same seed draws the same tokens). Other cells (custom,
LSTM with a projection) step through the stack's own forward, correct but not faster.
The sampler is a stepper of `rnnkit.decode.stepper`'s contract (``prime``, ``step``, ``reorder``), so
greedy decoding, sampling and beam search all run on it; ``generate`` runs the one sampling loop,
`rnnkit.decode.sampling.sample_tokens` (temperature, top-k, top-p, greedy), so a ``torch.Generator``
seeded alike gives the same text as any other step loop drawing with `sample_next`.

Shapes: B batch, T time, V vocabulary, E embedding width, H hidden, L layers, G gate blocks.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.cells import GRUCell, LSTMCell, SimpleRNNCell
from rnnkit.cells.gru import gru_pointwise
from rnnkit.cells.lstm import lstm_pointwise
from rnnkit.cells.rnn import ACTIVATIONS
from rnnkit.decode.sampling import sample

_MODE_CODES = {"lstm": 0, "gru": 1, "rnn_tanh": 2, "rnn_relu": 3}  # sampler.cpp
PRECISIONS = ("fp32", "bf16")  # bf16: the step's matrices in bf16 (half the bytes read per step)
_TABLE_LIMIT = 1 << 24  # largest folded layer-0 table, in elements (64 MiB of float32)


class Sampler:
    """Next-token steps for ``embedding -> stack -> head``.

    ``stack``: a unidirectional `rnnkit.core.RecurrentStack` (so ``rnnkit.nn.LSTM/GRU/RNN``) or a
    ``torch.nn.LSTM/GRU/RNN``; ``embedding``: ``nn.Embedding`` ``(V, E)`` or None for one-hot input
    (then the stack's input size is V); ``head``: ``nn.Linear`` ``(H_out -> V)``.

    The weights are read once, at construction: make a new sampler after they change.
    ``state`` is the stack's tuple (``(h,)`` or ``(h, c)``, each ``(L, B, H)``)."""

    def __init__(self, stack: nn.Module, embedding: nn.Module | None, head: nn.Module, *,
                 precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"Sampler: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        if getattr(stack, "bidirectional", False):
            raise ValueError("Sampler: the stack is bidirectional; generation needs a unidirectional "
                             "stack (the backward direction would read tokens not drawn yet)")
        if not isinstance(head, nn.Linear):
            raise TypeError(f"Sampler: head must be an nn.Linear (H_out -> V), got {type(head).__name__}")
        if embedding is not None and not isinstance(embedding, nn.Embedding):
            raise TypeError(f"Sampler: embedding must be an nn.Embedding or None (one-hot input), "
                            f"got {type(embedding).__name__}")
        self.stack, self.embedding, self.head = stack, embedding, head
        # getattr: nn.Module's __getattr__ types every attribute as Tensor | Module
        self.num_layers: int = getattr(stack, "num_layers")
        self.hidden_size: int = getattr(stack, "hidden_size")
        self.vocab_size = head.out_features
        self.mode = _mode(stack)
        self._fast_path_reason = self._why_no_fast_path()
        if precision == "bf16" and self._fast_path_reason is not None:
            raise ValueError(f"Sampler: precision 'bf16' needs the fast step, which is unavailable: "
                             f"{self._fast_path_reason}")
        if self._fast_path_reason is None:
            with torch.no_grad():
                self._prepare()

    # -- public ---------------------------------------------------------------------------------
    def init_state(self, batch: int) -> tuple[Tensor, ...]:
        w = self.head.weight
        return tuple(torch.zeros(self.num_layers, batch, *shape, dtype=w.dtype, device=w.device)
                     for shape in _state_shapes(self.stack))

    def prime(self, ids: Tensor, state: tuple[Tensor, ...] | None = None):
        """Run a prompt ``ids`` ``(B, T)`` through the stack's forward (its fused kernel); returns
        ``(logits (B, V) after the last prompt token, state)``."""
        if ids.dim() != 2 or ids.shape[1] < 1:
            raise ValueError(f"Sampler.prime: ids must have shape (B, T) with T >= 1, got {tuple(ids.shape)}")
        with torch.inference_mode():
            x = self._inputs(ids.t())                                    # (T, B, I)
            # torch.nn.GRU/RNN take h alone; LSTMs and rnnkit's stacks take the whole tuple (a
            # layer-norm LSTM's (h, c) too: passing state[0] for every non-stock cell dropped c)
            hx = state[0] if state is not None and len(state) == 1 else state
            out, new = self.stack(x, hx)
            new = new if isinstance(new, tuple) else (new,)
            return self.head(out[-1]), tuple(new)

    def step(self, ids: Tensor, state: tuple[Tensor, ...]):
        """One step: tokens ``ids`` ``(B,)`` and ``state`` -> ``(logits (B, V), new state)``."""
        with torch.inference_mode():
            if self._fast_path_reason is not None:
                return self.prime(ids.unsqueeze(1), state)
            state = tuple(s.clone(memory_format=torch.contiguous_format) for s in state)
            return self._fast_step(ids, state), state

    def generate(self, length: int, *, prompt: Tensor | None = None, batch: int = 1,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
        """Draw ``length`` tokens per sequence: ``(B, length)`` int64.

        ``prompt`` ``(B, T)``: token ids to condition on (``batch`` is then its B); without one,
        each of the ``batch`` sequences starts from the zero state with token 0 as its input.
        Tokens are drawn by the one sampling loop (`rnnkit.decode.sampling`) with ``generator``."""
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"Sampler.generate: length must be an int >= 1, got {length!r}")
        if prompt is None:
            prompt = torch.zeros(batch, 1, dtype=torch.long, device=self.head.weight.device)
        logits, state = self.prime(prompt)
        with torch.inference_mode():
            state = tuple(s.contiguous() for s in state)  # updated in place by _step_in_place
            return sample(self._step_in_place, logits, state, length, temperature=temperature,
                          top_k=top_k, top_p=top_p, generator=generator)

    def reorder(self, state: tuple[Tensor, ...], index: Tensor) -> tuple[Tensor, ...]:
        """The state of the rows ``index`` ``(B',)`` (int64), in that order: what beam search needs."""
        return tuple(s.index_select(1, index) for s in state)

    def _step_in_place(self, ids: Tensor, state: tuple[Tensor, ...]):
        """`step` without the copy: the sampling loop never reuses a state, so the fast step may
        overwrite it."""
        if self._fast_path_reason is None:
            return self._fast_step(ids, state), state
        return self.prime(ids.unsqueeze(1), state)

    # -- preparation ----------------------------------------------------------------------------
    def fast_path_unavailable(self) -> str | None:
        """Why this sampler steps through the stack's own forward instead of its fast step, or None
        (`rnnkit.core.fast_paths` names the same idea for the engine's kernels)."""
        return self._fast_path_reason

    @property
    def fast_unavailable(self) -> str | None:
        """The former name of `fast_path_unavailable` (still used by callers outside the engine)."""
        return self._fast_path_reason

    def _why_no_fast_path(self) -> str | None:
        if self.mode is None:
            return f"{type(self.stack).__name__} is not a stack of stock cells (RNN, LSTM, GRU)"
        if getattr(self.stack, "proj_size", 0):
            return "an LSTM with a projection (proj_size > 0) steps through its own forward"
        if self.embedding is None:
            if getattr(self.stack, "input_size", None) != self.vocab_size:
                return "one-hot input needs the stack's input size to equal the vocabulary"
        return None

    def _param(self, name: str, k: int) -> Tensor | None:
        return getattr(self.stack, f"{name}_l{k}", None)

    def _weight(self, name: str, k: int) -> Tensor:
        """A weight every stack of stock cells has (detached)."""
        w = self._param(name, k)
        if w is None:
            raise TypeError(f"Sampler: the stack {type(self.stack).__name__} has no {name}_l{k}")
        return w.detach()

    def _prepare(self) -> None:
        """Fold the weights into the per-layer matrices of `_fast_step`."""
        H, mode = self.hidden_size, self.mode
        self._w, self._b = [], []
        for k in range(self.num_layers):
            w_ih, w_hh = self._weight("weight_ih", k), self._weight("weight_hh", k)
            b_ih, b_hh = self._param("bias_ih", k), self._param("bias_hh", k)
            zeros = torch.zeros(w_ih.shape[0], dtype=w_ih.dtype, device=w_ih.device)
            b_ih = zeros if b_ih is None else b_ih.detach()
            b_hh = zeros if b_hh is None else b_hh.detach()
            if mode == "gru":  # columns: r and z summed, W_in x, W_hn h (kept apart for r ⊙ ·)
                I = w_ih.shape[1]
                w = torch.zeros(I + H, 4 * H, dtype=w_ih.dtype, device=w_ih.device)
                w[:I, :3 * H] = w_ih.t()
                w[I:, :2 * H] = w_hh[:2 * H].t()
                w[I:, 3 * H:] = w_hh[2 * H:].t()
                b = torch.cat([b_ih[:2 * H] + b_hh[:2 * H], b_ih[2 * H:], b_hh[2 * H:]])
            else:
                w = torch.cat([w_ih, w_hh], 1).t()                     # (I + H, G*H)
                b = b_ih + b_hh
            self._w.append(w.contiguous())
            self._b.append(b)
        # layer 0: the input part of the product becomes a table lookup when it is small enough
        I0 = self._w[0].shape[0] - H
        self._table = None
        if self.vocab_size * self._w[0].shape[1] <= _TABLE_LIMIT:
            emb = (self.embedding.weight.detach() if self.embedding is not None
                   else torch.eye(self.vocab_size, dtype=self._w[0].dtype, device=self._w[0].device))
            self._table = torch.addmm(self._b[0], emb, self._w[0][:I0])  # (V, G'*H)
            self._w[0] = self._w[0][I0:].contiguous()                   # (H, G'*H)
        self._head_w = self.head.weight.detach().t().contiguous()       # (H, V)
        self._head_b = (self.head.bias.detach() if self.head.bias is not None
                        else torch.zeros(self.vocab_size, dtype=self._head_w.dtype))
        if self.precision == "bf16":  # the matrices read at every step; table, biases, state stay
            if self._head_w.dtype != torch.float32:
                raise ValueError(f"Sampler: precision 'bf16' needs a float32 model, got {self._head_w.dtype}")
            self._w = [w.to(torch.bfloat16) for w in self._w]
            self._head_w = self._head_w.to(torch.bfloat16)
        self._native = self._native_step()

    def _native_step(self):
        """``torch.ops.rnnkit.sample_step`` where it applies (folded table, CPU, float32/64, the C++
        kernels built), else None."""
        w = self._head_w
        if self.mode is None or self._table is None or w.device.type != "cpu" or w.dtype not in (
                torch.float32, torch.float64, torch.bfloat16):
            return None
        from rnnkit.core import native
        if native.unavailable() is not None:
            return None
        self._empty = torch.empty(0, dtype=self._head_b.dtype)
        self._mode_code = _MODE_CODES[self.mode]
        return native.ops().sample_step

    # -- the step -------------------------------------------------------------------------------
    def _inputs(self, ids: Tensor) -> Tensor:
        if self.embedding is not None:
            return self.embedding(ids)
        return nn.functional.one_hot(ids, self.vocab_size).to(self.head.weight.dtype)

    def _fast_step(self, ids: Tensor, state: tuple[Tensor, ...]) -> Tensor:
        """One step from tokens ``ids`` ``(B,)``; updates ``state`` in place, returns the logits."""
        h_all = state[0]
        c_all = state[1] if self.mode == "lstm" else None
        if self._native is not None and self._table is not None and h_all.is_contiguous() and (
                c_all is None or c_all.is_contiguous()):   # (a native step implies the table)
            return self._native(self._table[ids], h_all, self._empty if c_all is None else c_all,
                                self._w, self._b, self._head_w, self._head_b, self._mode_code)
        x: Tensor | None = None                                         # the layer's input; None at 0
        for k in range(self.num_layers):
            h = h_all[k]                                                # (B, H), a view
            if k == 0 and self._table is not None:
                pre = _addmm(self._table[ids], h, self._w[0])           # (B, G'*H)
            else:
                x = self._inputs(ids) if x is None else x
                pre = _addmm(self._b[k], torch.cat([x, h], 1), self._w[k])
            self._cell(pre, h, None if c_all is None else c_all[k])
            x = h
        return _addmm(self._head_b, h, self._head_w)                    # (B, V): the last layer's h

    def _cell(self, pre: Tensor, h: Tensor, c: Tensor | None) -> None:
        """The element-wise part of one step from the pre-activations ``pre``, by the cells' own
        definitions (`rnnkit.cells`): writes the new ``h`` (and ``c``) into the state's storage."""
        H = self.hidden_size
        if self.mode == "lstm":                                         # i, f, g, o
            if c is None:
                raise ValueError("Sampler: an LSTM step needs the cell state c")
            h_new, c_new = lstm_pointwise(pre, c)
            c.copy_(c_new)
        elif self.mode == "gru":                                        # r+z summed, x_n, h_n
            h_new = gru_pointwise(pre[:, :2 * H], pre[:, 2 * H:3 * H], pre[:, 3 * H:], h)
        else:
            h_new = ACTIVATIONS["relu" if self.mode == "rnn_relu" else "tanh"](pre)
        h.copy_(h_new)


def _addmm(bias: Tensor, a: Tensor, w: Tensor) -> Tensor:
    """``bias + a w``; bf16 weights: ``a`` rounded to bf16, the product accumulated in fp32 (as the
    C++ step does), the result in ``bias``'s dtype."""
    if w.dtype == a.dtype:
        return torch.addmm(bias, a, w)
    return torch.addmm(bias, a.to(w.dtype).to(bias.dtype), w.to(bias.dtype))  # bf16 products: exact in fp32


def _state_shapes(stack: nn.Module) -> tuple[tuple[int, ...], ...]:
    """The per-row shapes of ``stack``'s state tensors: ``((H,),)`` or ``((H,), (H,))`` (LSTMs, a
    layer-norm LSTM), from the cells of an rnnkit stack, from the class of a torch.nn one."""
    cells = getattr(stack, "cells", None)
    if cells:
        return tuple(tuple(s) for s in cells[0].state_shapes)
    H: int = getattr(stack, "hidden_size")
    if isinstance(stack, nn.LSTM):
        return ((getattr(stack, "proj_size", 0) or H,), (H,))
    return ((H,),)


def _mode(stack: nn.Module) -> str | None:
    """The stock-cell family of ``stack`` ("lstm", "gru", "rnn_tanh", "rnn_relu"), or None."""
    if isinstance(stack, nn.LSTM):
        return "lstm"
    if isinstance(stack, nn.GRU):
        return "gru"
    if isinstance(stack, nn.RNN):
        return "rnn_relu" if stack.nonlinearity == "relu" else "rnn_tanh"
    cells = getattr(stack, "cells", None)
    if not cells:
        return None
    if not all(type(c) in (GRUCell, LSTMCell, SimpleRNNCell) for c in cells):
        return None
    modes = {c.fused_mode for c in cells}
    return modes.pop() if len(modes) == 1 and None not in modes else None
