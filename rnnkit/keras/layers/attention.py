"""Keras's attention layers: `Attention` (dot-product, Luong), `AdditiveAttention` (Bahdanau) and
`MultiHeadAttention`, with Keras's arguments, weights and masking.

Shapes: query ``(B, Tq, D)``, value ``(B, Tv, D)`` (key defaults to value); scores ``(B, Tq, Tv)``
(``(B, N, Tq, Tv)`` for N heads). A masked value step gets ``-1e9`` added to its score before the
softmax (as Keras); ``use_causal_mask`` lets query ``i`` see values ``<= i`` only."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit.keras import backend, initializers
from rnnkit.keras.layers.layer import REGULARIZER_ARGS, Layer, pop_unsupported

BIG = 1.0e9  # Keras's "minus infinity" for masked scores (65504 in float16)


def _causal(Tq: int, Tv: int, device) -> Tensor:
    return torch.ones(Tq, Tv, dtype=torch.bool, device=device).tril()  # (Tq, Tv)


def _dropout(layer, w: Tensor, training: bool) -> Tensor:
    if training and layer.dropout > 0:
        w = w * backend.dropout_mask(w.shape, 1 - layer.dropout, w, layer._generator)
    return w


class Attention(Layer):
    """``softmax(scores) @ value`` with ``scores = q k^T`` (``score_mode="dot"``, times a learned
    ``scale`` with ``use_scale``) or ``c * sum(tanh(scale * (q_i + k_j)))`` (``"concat"``). Call on
    ``[query, value]`` or ``[query, value, key]``; ``mask=[query_mask, value_mask]``; masked queries
    give zero rows."""

    supports_masking = True

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"{owner}: score_mode must be 'dot' or 'concat', got {score_mode!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"{owner}: dropout must be a number in [0, 1), got {dropout!r}")
        self.use_scale, self.score_mode, self.dropout = bool(use_scale), score_mode, float(dropout)
        self.seed, self._generator = seed, backend.seed_generator(owner, seed)

    def _check(self, shapes):
        if not isinstance(shapes, (list, tuple)) or len(shapes) not in (2, 3) or \
                not all(isinstance(s, tuple) and len(s) == 3 for s in shapes):
            raise ValueError(f"{type(self).__name__} '{self.name}': expected inputs [query (B, Tq, D), "
                             f"value (B, Tv, D)] or [query, value, key], got {shapes!r}")

    def build(self, input_shape):
        self._check(input_shape)
        self.scale = nn.Parameter(torch.ones(())) if self.use_scale else None
        self.concat_score_weight = nn.Parameter(torch.ones(())) if self.score_mode == "concat" else None
        self.built = True

    def scores(self, q: Tensor, k: Tensor) -> Tensor:
        """``(B, Tq, D), (B, Tv, D) -> (B, Tq, Tv)``."""
        if self.score_mode == "dot":
            s = q @ k.transpose(1, 2)
            return s * self.scale if self.scale is not None else s
        pre = q.unsqueeze(2) + k.unsqueeze(1)  # (B, Tq, Tv, D)
        if self.scale is not None:
            pre = self.scale * pre
        return self.concat_score_weight * torch.tanh(pre).sum(-1)

    def compute_output_shape(self, input_shape):
        q, v = input_shape[0], input_shape[1]
        return (q[0], q[1], v[2])

    def compute_mask(self, inputs, mask):
        return mask[0] if isinstance(mask, (list, tuple)) else None

    def forward(self, inputs, mask=None, training=None, return_attention_scores=False,
                use_causal_mask=False):
        self._check([tuple(t.shape) for t in inputs] if isinstance(inputs, (list, tuple)) else inputs)
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        q_mask, v_mask = (list(mask) + [None, None])[:2] if isinstance(mask, (list, tuple)) else (None, None)
        training = self.training if training is None else bool(training)
        s = self.scores(q, k)  # (B, Tq, Tv)
        keep = None if v_mask is None else v_mask.to(torch.bool).unsqueeze(1)  # (B, 1, Tv)
        if use_causal_mask:
            causal = _causal(s.shape[1], s.shape[2], s.device)
            keep = causal if keep is None else keep & causal
        if keep is not None:
            s = torch.where(keep, s, s - BIG)
        w = torch.softmax(s, -1)
        out = _dropout(self, w, training) @ v  # (B, Tq, D)
        if q_mask is not None:
            out = torch.where(q_mask.to(torch.bool).unsqueeze(-1), out, 0)
        return (out, w) if return_attention_scores else out

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale, "score_mode": self.score_mode,
                "dropout": self.dropout, "seed": self.seed}


class AdditiveAttention(Attention):
    """Bahdanau attention: ``scores_ij = sum(scale * tanh(q_i + k_j))`` with a learned ``scale (D,)``
    (``use_scale=True``, Keras's default)."""

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def build(self, input_shape):
        self._check(input_shape)
        dim = input_shape[0][-1]
        self.scale = nn.Parameter(initializers.get("glorot_uniform")(torch.empty(dim))) \
            if self.use_scale else None
        self.built = True

    def scores(self, q, k):
        t = torch.tanh(q.unsqueeze(2) + k.unsqueeze(1))  # (B, Tq, Tv, D)
        return (t * self.scale if self.scale is not None else t).sum(-1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config


class MultiHeadAttention(Layer):
    """``N = num_heads`` heads of scaled dot-product attention: project query, key, value
    (``query/kernel (D, N, key_dim)`` ...), ``softmax(q k^T / sqrt(key_dim)) v`` per head, then
    ``attention_output/kernel (N, value_dim, D_out)``. Masks: the query's and value's own masks
    (``_keras_mask``), ``query_mask=``/``value_mask=``/``key_mask=``, ``attention_mask (B, Tq, Tv)``,
    ``use_causal_mask``. A query that sees no value gets zero weights (as Keras's masked softmax).
    The output carries the query's mask on to the next layers, as Keras's."""

    supports_masking = True

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, sliding_window=None, flash_attention=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", use_gate=False,
                 seed=None, **kwargs):
        pop_unsupported("MultiHeadAttention", kwargs, REGULARIZER_ARGS)
        super().__init__(**kwargs)
        owner = "MultiHeadAttention"
        for name, value in (("num_heads", num_heads), ("key_dim", key_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
        if attention_axes in ([1], (1,), 1, [-2], (-2,), -2):
            attention_axes = None  # the time axis of (B, T, D): what None means (Keras writes [1])
        for name, value, default in (("attention_axes", attention_axes, None),
                                     ("sliding_window", sliding_window, None),
                                     ("flash_attention", flash_attention, None),
                                     ("use_gate", use_gate, False)):
            if value not in (default, False) and value is not default:
                raise ValueError(f"{owner}: {name}={value!r} is not supported by rnnkit.keras (leave it "
                                 f"at {default!r}; attention runs over the time axis)")
        if output_shape is not None and not isinstance(output_shape, int):
            shape = tuple(output_shape)
            if len(shape) != 1:
                raise ValueError(f"{owner}: output_shape must be an int (or a 1-tuple), got {output_shape!r}")
            output_shape = shape[0]
        self.num_heads, self.key_dim = num_heads, key_dim
        self.value_dim = value_dim if value_dim is not None else key_dim
        self.dropout, self.use_bias, self.output_dim = float(dropout), bool(use_bias), output_shape
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.seed, self._generator = seed, backend.seed_generator(owner, seed)

    def _dense(self, name: str, shape_in: tuple, shape_out: tuple) -> None:
        kernel = self.kernel_initializer(torch.empty(*shape_in, *shape_out))
        setattr(self, f"{name}_kernel", nn.Parameter(kernel))
        bias = nn.Parameter(self.bias_initializer(torch.empty(*shape_out))) if self.use_bias else None
        setattr(self, f"{name}_bias", bias)

    def build(self, input_shape):
        # called from the first call with (query_shape, value_shape, key_shape)
        q, v, k = input_shape
        N = self.num_heads
        self.query_dim, self.out_dim = q[-1], self.output_dim or q[-1]
        self._dense("query", (q[-1],), (N, self.key_dim))
        self._dense("key", (k[-1],), (N, self.key_dim))
        self._dense("value", (v[-1],), (N, self.value_dim))
        self._dense("attention_output", (N, self.value_dim), (self.out_dim,))
        self.built = True

    def _ensure_built(self, input_shape):
        if isinstance(input_shape, tuple) and input_shape and isinstance(input_shape[0], tuple):
            return super()._ensure_built(input_shape)
        return super()._ensure_built((input_shape, input_shape, input_shape))

    def __call__(self, query, value=None, key=None, **kwargs):
        if value is None:
            raise ValueError(f"MultiHeadAttention '{self.name}': call it as mha(query, value[, key])")
        if not self.built and isinstance(query, Tensor):
            k = value if key is None else key
            self._ensure_built((tuple(query.shape), tuple(value.shape), tuple(k.shape)))
        return super().__call__(query, value, key, **kwargs)

    def compute_mask(self, inputs, mask):
        return backend.get_keras_mask(inputs)  # inputs: the query

    def _symbolic_call(self, args, kwargs):
        if not self.built:  # build for the query's, value's and key's own shapes
            q, v = args[0], args[1]
            k = args[2] if len(args) > 2 and args[2] is not None else v
            self._ensure_built((q.shape, v.shape, k.shape))
        return super()._symbolic_call(args, kwargs)

    def compute_output_shape(self, input_shape):
        q = input_shape[0] if isinstance(input_shape[0], tuple) else input_shape
        return tuple(q[:-1]) + (self.output_dim or q[-1],)

    def forward(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
                attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False):
        key = value if key is None else key
        query_mask = backend.get_keras_mask(query) if query_mask is None else query_mask
        value_mask = backend.get_keras_mask(value) if value_mask is None else value_mask
        key_mask = backend.get_keras_mask(key) if key_mask is None else key_mask
        training = self.training if training is None else bool(training)
        B, Tq, Tv = query.shape[0], query.shape[1], value.shape[1]
        keep = torch.ones(B, Tq, Tv, dtype=torch.bool, device=query.device)
        if query_mask is not None:
            keep = keep & query_mask.to(torch.bool).unsqueeze(2)
        for m in (value_mask, key_mask):
            if m is not None:
                keep = keep & m.to(torch.bool).unsqueeze(1)
        if attention_mask is not None:
            keep = keep & torch.as_tensor(attention_mask, device=query.device).to(torch.bool)
        if use_causal_mask:
            keep = keep & _causal(Tq, Tv, query.device)
        q = torch.einsum("btd,dnh->bnth", query, self.query_kernel)  # (B, N, Tq, key_dim)
        k = torch.einsum("bsd,dnh->bnsh", key, self.key_kernel)  # (B, N, Tv, key_dim)
        v = torch.einsum("bsd,dnh->bnsh", value, self.value_kernel)  # (B, N, Tv, value_dim)
        if self.use_bias:
            q = q + self.query_bias.unsqueeze(1)
            k = k + self.key_bias.unsqueeze(1)
            v = v + self.value_bias.unsqueeze(1)
        s = (q / math.sqrt(self.key_dim)) @ k.transpose(-1, -2)  # (B, N, Tq, Tv)
        keep4 = keep.unsqueeze(1)
        w = torch.softmax(torch.where(keep4, s, -BIG), -1)
        w = torch.where(keep4, w, 0)  # Keras's masked softmax: nothing seen, nothing taken
        out = _dropout(self, w, training) @ v  # (B, N, Tq, value_dim)
        y = torch.einsum("bnth,nho->bto", out, self.attention_output_kernel)
        if self.use_bias:
            y = y + self.attention_output_bias
        return (y, w) if return_attention_scores else y

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": self.output_dim, "seed": self.seed,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}
