"""The kernels: the loop kernel gives the fused kernel's numbers (and gradients); the choice is
visible and explained; forcing a kernel that cannot serve raises; the loop is linear in T."""
from __future__ import annotations

import statistics
import time

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils._pytree import tree_flatten
from torch.utils._python_dispatch import TorchDispatchMode

from rnnkit.cells import GRUCell, LSTMCell, SimpleRNNCell
from rnnkit.core import Recurrent, RecurrentStack, fast_path_unavailable, fused_unavailable
import rnnkit.nn

# torch.nn itself warns that oneDNN has no LSTM projection (it falls back); not our concern here
pytestmark = pytest.mark.filterwarnings(
    "ignore:LSTM with projections is not supported with oneDNN")

STOCK = [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}), ("lstm", {"proj_size": 3}),
         ("gru", {})]
STOCK_IDS = ["rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru"]


def _twins(cell, kw, dtype, **stack_kw):
    """A fused and a loop stack with identical weights."""
    torch.manual_seed(0)
    fused = RecurrentStack(cell, 3, 5, kernel="fused", dtype=dtype, **stack_kw, **kw)
    loop = RecurrentStack(cell, 3, 5, kernel="loop", dtype=dtype, **stack_kw, **kw)
    loop.load_state_dict(fused.state_dict())
    return fused, loop


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("inputs", ["plain", "lengths", "packed"])
@pytest.mark.parametrize("cell,kw", STOCK, ids=STOCK_IDS)
def test_loop_kernel_equals_fused_kernel(cell, kw, inputs, dtype, assert_close, assert_grads_close):
    fused, loop = _twins(cell, kw, dtype, num_layers=2, bidirectional=True, batch_first=True)
    assert (fused.kernel, loop.kernel) == ("fused", "loop")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 6, 3, generator=g, dtype=dtype)  # (B, T, I)
    lengths = torch.tensor([6, 2, 5, 1])
    h0 = [torch.randn((4, 4, s[0]), generator=g, dtype=dtype) for s in fused.cells[0].state_shapes]
    results = []
    for model in (fused, loop):
        xl, hl = x.clone().requires_grad_(), [h.clone().requires_grad_() for h in h0]
        if inputs == "packed":
            out, states = model(pack_padded_sequence(xl, lengths, batch_first=True,
                                                     enforce_sorted=False), hl)
            out = out.data
        else:
            out, states = model(xl, hl, lengths=lengths if inputs == "lengths" else None)
        w = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
        ((out * w).sum() + sum((s ** 2).sum() for s in states)).backward()
        results.append((out, states, xl.grad, [h.grad for h in hl]))
    (out_f, st_f, gx_f, gh_f), (out_l, st_l, gx_l, gh_l) = results
    assert_close(out_l, out_f, "output")
    for i, (a, b) in enumerate(zip(st_l, st_f)):
        assert_close(a, b, f"final state {i}")
    assert_grads_close(loop, fused)
    assert_close(gx_l, gx_f, "gradient of the input")
    for i, (a, b) in enumerate(zip(gh_l, gh_f)):
        assert_close(a, b, f"gradient of initial state {i}")


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell_cls,kw", [(SimpleRNNCell, {}), (LSTMCell, {"proj_size": 2}),
                                         (GRUCell, {})])
def test_recurrent_loop_equals_fused(cell_cls, kw, reverse, assert_close):
    torch.manual_seed(0)
    cell = cell_cls(3, 4, **kw).double()
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 1, 3])
    res = {}
    for kernel in ("fused", "loop"):
        layer = Recurrent(cell, reverse=reverse, kernel=kernel)
        assert layer.kernel == kernel
        xl = x.clone().requires_grad_()
        out, state = layer(xl, lengths=lengths)
        (out.sum() * 2 + state[0].sum()).backward()
        res[kernel] = (out, state, xl.grad, [p.grad.clone() for p in cell.parameters()])
        cell.zero_grad()
    assert_close(res["loop"][0], res["fused"][0], "output")
    assert_close(res["loop"][1][-1], res["fused"][1][-1], "final state")
    assert_close(res["loop"][2], res["fused"][2], "gradient of the input")
    for (name, _), a, b in zip(cell.named_parameters(), res["loop"][3], res["fused"][3]):
        assert_close(a, b, f"gradient of {name}")


def test_kernel_reports_the_choice():
    assert RecurrentStack("lstm", 2, 3).kernel == "fused"
    assert RecurrentStack("lstm", 2, 3).fast_path_unavailable() is None
    assert RecurrentStack("lstm", 2, 3, kernel="loop").kernel == "loop"
    slow = rnnkit.nn.GRU(2, 3, reset_after=False)
    assert slow.kernel == "loop"
    assert "no fused PyTorch kernel" in slow.fast_path_unavailable()
    assert "reset_after=False" in slow.fast_path_unavailable("fused")
    assert Recurrent(GRUCell(2, 3, reset_after=False)).kernel == "loop"
    assert Recurrent(GRUCell(2, 3)).kernel == "fused"


def test_forcing_the_fused_kernel_quotes_the_reason():
    with pytest.raises(ValueError, match=r"kernel='fused' cannot serve.*GRUCell.*reset_after=False"):
        rnnkit.nn.GRU(2, 3, kernel="fused", reset_after=False)
    with pytest.raises(ValueError, match=r"kernel='fused' cannot serve.*reset_after=False"):
        RecurrentStack("gru", 2, 3, kernel="fused", reset_after=False)
    with pytest.raises(ValueError, match=r"kernel='fused' cannot serve.*reset_after=False"):
        Recurrent(GRUCell(2, 3, reset_after=False), kernel="fused")
    # a per-step mask needs the loop: a forced fused kernel refuses the call, "auto" falls back
    mask = torch.ones(2, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"kernel='fused' cannot serve this call.*mask"):
        RecurrentStack("lstm", 2, 3, kernel="fused")(torch.randn(4, 2, 2), mask=mask)
    with pytest.raises(ValueError, match=r"kernel='fused' cannot serve this call.*mask"):
        Recurrent(LSTMCell(2, 3), kernel="fused")(torch.randn(4, 2, 2), mask=mask)
    auto = RecurrentStack("lstm", 2, 3)
    loop = RecurrentStack("lstm", 2, 3, kernel="loop")
    loop.load_state_dict(auto.state_dict())
    x = torch.randn(4, 2, 2)
    assert torch.allclose(auto(x, mask=mask)[0], loop(x)[0], atol=1e-6)


def test_fast_path_unavailable_is_a_pure_rule():
    class Custom(SimpleRNNCell):
        pass

    assert fast_path_unavailable([LSTMCell(2, 3), LSTMCell(6, 3)]) is None
    assert "not one of PyTorch's stock cells" in fast_path_unavailable([Custom(2, 3)])
    assert "mix cell types" in fast_path_unavailable([LSTMCell(2, 3), GRUCell(3, 3)])
    assert "mix cell types" in fast_path_unavailable(
        [SimpleRNNCell(2, 3), SimpleRNNCell(3, 3, nonlinearity="relu")])
    assert "mask" in fast_path_unavailable([LSTMCell(2, 3)], step_mask=True)
    assert "dtype" in fast_path_unavailable([LSTMCell(2, 3)], dtype=torch.complex64)
    assert fast_path_unavailable([LSTMCell(2, 3)], dtype=torch.float64) is None
    assert "not linear in the state" in fast_path_unavailable([LSTMCell(2, 3)], "scan")
    with pytest.raises(ValueError, match=r"path must be one of .*got 'cudnn'"):
        fast_path_unavailable([LSTMCell(2, 3)], "cudnn")
    stack = RecurrentStack(Custom, 2, 3)
    assert stack.kernel == "loop" and "Custom" in stack.fast_path_unavailable()
    assert Recurrent(Custom(2, 3)).fast_path_unavailable() == stack.fast_path_unavailable()


def test_former_names_of_fast_path_unavailable_still_answer():
    """``fused_unavailable`` / ``.native_unavailable`` were documented; they stay as aliases."""
    gru = rnnkit.nn.GRU(2, 3, reset_after=False)
    assert gru.fused_unavailable == gru.fast_path_unavailable("fused") is not None
    assert gru.native_unavailable == gru.fast_path_unavailable("native")
    assert fused_unavailable(gru.cells) == fast_path_unavailable(gru.cells, "fused")
    assert (fused_unavailable(gru.cells, native_kernel=True, lengths=True)
            == fast_path_unavailable(gru.cells, "native", lengths=True))


def test_the_stack_composes_single_layer_engines(assert_close):
    """Each layer and direction of a stack is a `Recurrent` sharing the stack's parameters."""
    stack = RecurrentStack("gru", 3, 4, num_layers=2, bidirectional=True, reset_after=False)
    assert [type(layer) for layer in stack.layers] == [Recurrent] * 4
    assert [layer.reverse for layer in stack.layers] == [False, True, False, True]
    assert all(layer.cell is cell for layer, cell in zip(stack.layers, stack.cells))
    assert stack.layers[3].cell.weight_hh is stack.weight_hh_l1_reverse
    assert stack.kernel == stack.layers[0].kernel == "loop"


def _median_seconds(layer, inputs, repeats: int = 5) -> dict:
    """Median forward+backward time per input, runs interleaved so that load spikes hit all."""
    for x in inputs.values():  # warm-up
        layer(x)[0].sum().backward()
    times = {k: [] for k in inputs}
    for _ in range(repeats):
        for k, x in inputs.items():
            t0 = time.perf_counter()
            layer(x)[0].sum().backward()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def test_loop_kernel_time_is_linear_in_steps():
    """Forward+backward of the loop kernel must scale like O(T): 8x the steps may cost at most
    16x the time (linear is 8x, ~6x measured here since fixed costs count more at T=50).
    Indexing ``xp[t]`` in the loop makes the backward O(T^2) (each index's backward materialises a
    full ``(T, B, G*H)`` gradient): that variant measured ~30x at this size, which is why the batch
    is 64 (at batch 4 the quadratic term hides behind per-step overhead). A ratio, not a wall-clock
    time; one thread, so that other processes' load distorts less."""
    torch.manual_seed(0)
    layer = RecurrentStack("lstm", 16, 32, kernel="loop")
    inputs = {T: torch.randn(T, 64, 16, requires_grad=True) for T in (50, 400)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = _median_seconds(layer, inputs)
    finally:
        torch.set_num_threads(threads)
    ratio = t[400] / t[50]
    assert ratio < 16, (f"loop kernel forward+backward: T=400 took {ratio:.1f}x T=50 "
                        f"({t[400] * 1e3:.1f} ms vs {t[50] * 1e3:.1f} ms); linear would be ~8x")


class _CountElements(TorchDispatchMode):
    """Counts the elements of every tensor that every ATen op (forward and backward) produces."""

    def __init__(self):
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.elements += sum(t.numel() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))
        return out


@pytest.mark.parametrize("masked", [False, True])
def test_loop_kernel_work_is_linear_in_steps(masked):
    """The same O(T) claim measured without a clock: the elements written by all ops of
    forward+backward grow 8x for 8x the steps (the ``xp[t]`` variant: ~29x)."""
    torch.manual_seed(0)
    layer = RecurrentStack("lstm", 16, 32, kernel="loop")
    work = {}
    for T in (20, 160):
        x = torch.randn(T, 4, 16, requires_grad=True)
        mask = torch.ones(4, T, dtype=torch.bool) if masked else None
        with _CountElements() as counter:
            layer(x, mask=mask)[0].sum().backward()
        work[T] = counter.elements
    assert work[160] / work[20] < 8.5, f"work grew {work[160] / work[20]:.1f}x for 8x the steps"
