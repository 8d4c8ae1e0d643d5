"""PyTorch's own generic module tests for ``nn.RNN/LSTM/GRU`` and ``nn.RNNCell/LSTMCell/GRUCell``,
run on `rnnkit.nn`'s classes.

The samples are ``torch.testing._internal.common_modules.module_db``'s (imported from the installed
torch wheel, never copied): its constructor arguments, inputs (batched, unbatched, packed, with and
without initial states) and error cases. The checks are those of PyTorch's ``test_modules.py``,
written here against rnnkit's classes, with ``torch.nn`` as the oracle: the same outputs with the
same weights, gradients and second derivatives (``gradcheck``/``gradgradcheck``), pickling and
``state_dict``, factory keywords, train/eval, ``torch.compile``, ``torch.func`` and batched gradients,
and the errors. Deliberate differences, each said where it is tested:

- error *messages* are rnnkit's (they name the argument, the value and what was expected); the
  exception *types* are torch's (rnnkit's shape errors derive from both ValueError and RuntimeError);
- ``repr`` adds the kernel rnnkit chose (``kernel='fused'``) after torch.nn's own text;
- ``torch.jit.script`` is refused with an error pointing to ``torch.export`` / ``torch.jit.trace``
  (TorchScript is in maintenance upstream; rnnkit's modules have Python kernels).
"""
from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.testing._internal.common_modules import ModuleErrorEnum, module_db
from torch.utils._pytree import tree_flatten, tree_unflatten

import rnnkit.nn

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

OURS = {nn.RNN: rnnkit.nn.RNN, nn.LSTM: rnnkit.nn.LSTM, nn.GRU: rnnkit.nn.GRU,
        nn.RNNCell: rnnkit.nn.RNNCell, nn.LSTMCell: rnnkit.nn.LSTMCell, nn.GRUCell: rnnkit.nn.GRUCell}
INFOS = [info for info in module_db if info.module_cls in OURS]
IDS = [info.module_cls.__name__ for info in INFOS]
STACKS = (nn.RNN, nn.LSTM, nn.GRU)


def test_module_db_has_the_six_recurrent_modules():
    assert sorted(IDS) == ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell"]


def _samples(info, dtype, requires_grad=False, training=False):
    kw = {"with_packed_sequence": True} if info.module_cls in (nn.RNN, nn.GRU) else {}
    return list(info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=requires_grad,
                                        training=training, **kw))


def _twins(info, sample, dtype):
    """torch.nn's module and rnnkit's, built from the sample's arguments, with the same weights."""
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    torch.manual_seed(0)
    ref = info.module_cls(*args, **kwargs).to(dtype)
    ours = OURS[info.module_cls](*args, **kwargs).to(dtype)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _tensors(out) -> list[torch.Tensor]:
    """The output's tensors in order (a PackedSequence: its data)."""
    if isinstance(out, PackedSequence):
        return [out.data]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return [out]


def _forward_args(sample):
    return sample.forward_input.args, sample.forward_input.kwargs


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("info", INFOS, ids=IDS)
def test_forward_matches_torch_nn(info, dtype, training, assert_close):
    for n, sample in enumerate(_samples(info, dtype, training=training)):
        ref, ours = _twins(info, sample, dtype)
        ref.train(training), ours.train(training)
        args, kwargs = _forward_args(sample)
        expected, actual = _tensors(ref(*args, **kwargs)), _tensors(ours(*args, **kwargs))
        assert len(actual) == len(expected)
        for i, (a, b) in enumerate(zip(actual, expected)):
            assert_close(a, b, f"{info.module_cls.__name__} sample {n} output {i}")


def _as_function(module, sample):
    """``f(*inputs, *params)`` and its inputs, for gradcheck (packed data stays constant)."""
    args, kwargs = _forward_args(sample)
    flat, spec = tree_flatten(args)
    slots = [i for i, t in enumerate(flat) if isinstance(t, torch.Tensor) and t.requires_grad]
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in module.parameters()]

    def f(*xs):
        values = list(flat)
        for i, x in zip(slots, xs[:len(slots)]):
            values[i] = x
        call_args = tree_unflatten(values, spec)
        out = torch.func.functional_call(module, dict(zip(names, xs[len(slots):])), call_args, kwargs)
        return tuple(_tensors(out))
    return f, [flat[i] for i in slots] + params


@pytest.mark.parametrize("info", INFOS, ids=IDS)
def test_gradcheck_and_gradgradcheck(info):
    """float64, every sample's inputs and every parameter; second derivatives included (exact
    through rnnkit's C++ kernels too, `rnnkit.core.higher_order`). Every third sample of the
    stacks (they differ by bias / batch_first / bidirectional / nonlinearity) keeps this fast."""
    samples = _samples(info, torch.float64, requires_grad=True)
    if info.module_cls in STACKS:
        samples = samples[::3]
    for sample in samples:
        _, ours = _twins(info, sample, torch.float64)
        f, inputs = _as_function(ours, sample)
        assert torch.autograd.gradcheck(f, inputs, fast_mode=True)
        assert torch.autograd.gradgradcheck(f, inputs, fast_mode=True)


@pytest.mark.parametrize("info", INFOS, ids=IDS)
def test_errors_have_torch_nn_types(info):
    """Each of module_db's error cases raises torch.nn's exception type (rnnkit's own message,
    which names the argument, the value and what was expected; torch's regex is not asked for)."""
    cases = list(info.module_error_inputs_func(info, device="cpu", dtype=torch.float32,
                                               requires_grad=False, training=False))
    assert cases
    for case in cases:
        sample = case.module_error_input
        cls = OURS[info.module_cls]
        args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
        if case.error_on == ModuleErrorEnum.CONSTRUCTION_ERROR:
            with pytest.raises(case.error_type):
                cls(*args, **kwargs)
        elif len(args) > 2 and isinstance(args[2], str):
            # module_db passes a nonlinearity name by position, where torch.nn's cells take `bias`
            # and accept any truthy value; rnnkit refuses a bias that is not a bool (as torch.nn's
            # RNN/LSTM/GRU do). Deliberate; the error names the argument.
            with pytest.raises(TypeError, match=r"bias must be a bool, got 'relu'|got 'tanh'"):
                cls(*args, **kwargs)
        else:
            module = cls(*args, **kwargs)
            fargs, fkwargs = _forward_args(sample)
            with pytest.raises(case.error_type):
                module(*fargs, **fkwargs)


@pytest.mark.parametrize("info", INFOS, ids=IDS)
def test_pickle_state_dict_factory_kwargs_and_repr(info, assert_close):
    for sample in _samples(info, torch.float64)[::2]:
        ref, ours = _twins(info, sample, torch.float64)
        args, kwargs = _forward_args(sample)
        copy = pickle.loads(pickle.dumps(ours))
        for a, b in zip(_tensors(copy(*args, **kwargs)), _tensors(ours(*args, **kwargs))):
            assert_close(a, b, "output after pickling")
        cargs, ckwargs = sample.constructor_input.args, sample.constructor_input.kwargs
        fresh = OURS[info.module_cls](*cargs, **ckwargs, device="cpu", dtype=torch.float64)
        assert {p.dtype for p in fresh.parameters()} == {torch.float64}
        fresh.load_state_dict(ours.state_dict())
        for a, b in zip(_tensors(fresh(*args, **kwargs)), _tensors(ref(*args, **kwargs))):
            assert_close(a, b, "output after load_state_dict")
        # deliberate: rnnkit adds its kernel choice after torch.nn's own description
        assert repr(ours).startswith(repr(ref)[:-1])


@pytest.mark.parametrize("info", [i for i in INFOS if i.module_cls in STACKS],
                         ids=[n for n in IDS if n in ("RNN", "LSTM", "GRU")])
def test_train_and_eval_differ_with_dropout(info):
    """module_db marks the stacks train_and_eval_differ (dropout between layers), as here."""
    sample = _samples(info, torch.float64)[0]
    args, kwargs = dict(sample.constructor_input.kwargs), sample.constructor_input.args
    ours = OURS[info.module_cls](*kwargs, **{**args, "dropout": 0.5}).double()
    x = torch.randn(7, 5, 2, dtype=torch.float64)
    eval_out = ours.eval()(x)[0]
    assert torch.equal(eval_out, ours(x)[0])
    assert not torch.equal(ours.train()(x)[0], eval_out)


@pytest.mark.parametrize("info", [i for i in INFOS if i.module_cls in STACKS],
                         ids=[n for n in IDS if n in ("RNN", "LSTM", "GRU")])
def test_flat_weights_all_weights_and_mode_as_torch_nn(info):
    for sample in _samples(info, torch.float32)[::4]:
        ref, ours = _twins(info, sample, torch.float32)
        assert ours._flat_weights_names == ref._flat_weights_names
        assert [t.shape for t in ours._flat_weights] == [t.shape for t in ref._flat_weights]
        assert all(a is getattr(ours, n) for a, n in zip(ours._flat_weights, ours._flat_weights_names))
        assert [[t.shape for t in w] for w in ours.all_weights] == [[t.shape for t in w]
                                                                    for w in ref.all_weights]
        assert ours.mode == ref.mode


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_weight_norm_reaches_the_engine(name, assert_close):
    """``torch.nn.utils.weight_norm`` replaces a parameter by a computed tensor of the same name."""
    torch.manual_seed(0)
    ref, ours = getattr(nn, name)(3, 4).double(), getattr(rnnkit.nn, name)(3, 4).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    for m in (ref, ours):
        nn.utils.parametrizations.weight_norm(m, "weight_hh_l0")
        with torch.no_grad():
            m.parametrizations.weight_hh_l0.original0.mul_(2.0)  # the norm: the weights double
    assert_close(ours(x)[0], ref(x)[0], "output with weight norm")


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_torch_compile(name, assert_close):
    """``torch.compile`` traces the C++ kernels through their shape functions (``aot_eager``: the
    tracing of the default backend without its C++ code generation, which takes minutes here)."""
    torch.manual_seed(0)
    ours = getattr(rnnkit.nn, name)(3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(6, 2, 3, requires_grad=True)
    compiled = torch.compile(ours, backend="aot_eager")
    out_c = compiled(x)[0]
    (g_c,) = torch.autograd.grad(out_c.sum(), x)
    out_e = ours(x)[0]
    (g_e,) = torch.autograd.grad(out_e.sum(), x)
    assert_close(out_c, out_e, "compiled output")
    assert_close(g_c, g_e, "compiled input gradient")


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_torch_func_grad_and_batched_gradients_match_torch_nn(name, assert_close):
    torch.manual_seed(0)
    ref, ours = getattr(nn, name)(3, 4).double(), getattr(rnnkit.nn, name)(3, 4).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    results = []
    for m in (ours, ref):
        params = dict(m.named_parameters())
        grads = torch.func.grad(lambda p: torch.func.functional_call(m, p, (x,))[0].pow(2).sum())(params)
        xg = x.clone().requires_grad_()
        v = torch.randn(3, 5, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        (batched,) = torch.autograd.grad(m(xg)[0], xg, v, is_grads_batched=True)
        results.append((grads, batched))
    (g_ours, b_ours), (g_ref, b_ref) = results
    for k in g_ref:
        assert_close(g_ours[k], g_ref[k], f"torch.func.grad of {k}")
    assert_close(b_ours, b_ref, "batched input gradients")


def test_vmap_over_a_whole_sequence_is_refused_as_by_torch_nn():
    """Deliberately as torch.nn: the fused RNN kernels have no batching rule (vmap of the forward)."""
    x = torch.randn(4, 5, 2, 3)
    for m in (nn.GRU(3, 4), rnnkit.nn.GRU(3, 4)):
        with pytest.raises(RuntimeError, match="vmap|[Bb]atching rule"):
            torch.func.vmap(lambda xi, m=m: m(xi)[0])(x)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # tracing reads shapes, as expected
def test_torch_jit_script_is_refused_with_the_way_out():
    """Deliberate: TorchScript cannot compile rnnkit's Python kernels; the error says what works."""
    for m in (rnnkit.nn.LSTM(3, 4), rnnkit.nn.GRUCell(3, 4)):
        with pytest.raises(TypeError, match=r"torch.jit.script cannot compile.*torch.export"):
            torch.jit.script(m)
    traced = torch.jit.trace(rnnkit.nn.GRU(3, 4), torch.randn(5, 2, 3), check_trace=False)
    x = torch.randn(5, 2, 3)
    assert traced(x)[0].shape == (5, 2, 4)


def test_constructor_arguments_torch_nn_refuses_or_allows():
    with pytest.raises(ValueError, match=r"GRU: proj_size argument is only supported for LSTM.*2"):
        rnnkit.nn.GRU(3, 4, proj_size=2)
    with pytest.raises(ValueError, match=r"RNN: proj_size argument is only supported for LSTM"):
        rnnkit.nn.RNN(3, 4, proj_size=1)
    assert rnnkit.nn.GRU(3, 4, proj_size=0).hidden_size == 4
    for bad in (1, "True"):
        with pytest.raises(TypeError, match=rf"batch_first must be a bool, got \w+ {bad!r}"):
            rnnkit.nn.LSTM(3, 4, batch_first=bad)
    for name in ("RNNCell", "LSTMCell", "GRUCell"):  # torch.nn's cells allow an empty width
        for size in ((3, 0), (0, 3)):
            ref, ours = getattr(nn, name)(*size), getattr(rnnkit.nn, name)(*size)
            x = torch.randn(2, size[0])
            assert [t.shape for t in _tensors(ours(x))] == [t.shape for t in _tensors(ref(x))]
    with pytest.raises(ValueError, match=r"hidden_size must be a positive int, got 0"):
        rnnkit.nn.LSTM(3, 0)  # as torch.nn.LSTM


def test_shape_errors_are_both_value_and_runtime_errors():
    from rnnkit.core.checks import DtypeError, ShapeError
    lstm = rnnkit.nn.LSTM(3, 4)
    with pytest.raises(RuntimeError, match=r"LSTM: expected input of shape \(T, B, I=3\), got \(5, 2, 4\)"):
        lstm(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match=r"expected input of shape"):
        lstm(torch.randn(5, 2, 4))
    with pytest.raises(ShapeError):
        rnnkit.nn.GRUCell(3, 4)(torch.randn(2, 3), torch.randn(5, 4))
    with pytest.raises(DtypeError, match="does not match the parameters' dtype"):
        lstm(torch.randn(5, 2, 3, dtype=torch.float64))
    assert issubclass(ShapeError, (ValueError, RuntimeError)) and issubclass(DtypeError, (TypeError,
                                                                                           ValueError))
