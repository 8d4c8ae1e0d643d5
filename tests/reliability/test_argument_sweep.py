"""Every public constructor argument and command-line flag is checked where it is given: a bad value
(zero or negative sizes, NaN or infinite numbers, probabilities out of range, ints past what torch
takes, the wrong type) is refused at once with an error naming the argument and the value -- never
accepted to crash deep inside later. ``torch.nn``-compatible classes may raise ``ValueError`` /
``TypeError`` as torch does; rnnkit's own errors subclass ``ValueError``.

Property-style: hypothesis draws the bad values per kind of argument; the configurations are swept
field by field over every int and float field of every task's ``Config`` and ``TrainConfig``."""
from __future__ import annotations

import importlib
import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.cli.main import main
from rnnkit.train.config import _fields

os.environ.setdefault("KERAS_BACKEND", "torch")

SWEEP = settings(max_examples=25, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

#: values no int field takes (sizes, counts, seeds alike)
BAD_INT = st.one_of(st.integers(max_value=-1), st.integers(min_value=2 ** 63, max_value=2 ** 80),
                    st.sampled_from([math.nan, math.inf, 2.5, "4", [4], True]))
#: values no float field takes
BAD_FLOAT = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, "0.1", [0.1], None]),
                      st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False))
#: values no probability (dropout, a rate) takes
BAD_PROB = st.one_of(st.floats(min_value=1.0 + 1e-9, allow_nan=False, allow_infinity=False),
                     st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
                     st.sampled_from([math.nan, math.inf, "0.1"]))
#: positive sizes no layer takes
BAD_SIZE = st.one_of(st.integers(max_value=0), st.sampled_from([2.5, math.nan, math.inf, "4", None]))


def shown(value) -> list[str]:
    """How a message may show ``value``."""
    out = [repr(value), str(value)]
    if isinstance(value, float) and math.isfinite(value):
        out += [f"{value:g}", f"{value:.6g}"]
    return out


def assert_clear(exc: BaseException, arg: str, value) -> None:
    assert isinstance(exc, (ValueError, TypeError)), f"{type(exc).__name__}: {exc}"
    text = str(exc)
    assert arg in text, f"the message does not name {arg!r}: {text}"
    if value is not None and not isinstance(value, list):
        assert any(s in text for s in shown(value)), f"the message does not show {value!r}: {text}"


def refused(make, arg: str, value, **fixed) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        make(**{**fixed, arg: value})
    assert_clear(info.value, arg, value)


# -- configurations: every int and float field of every task's Config and TrainConfig -----------------
CONFIGS = [("rnnkit.train.config", "TrainConfig"), ("rnnkit.tasks.lm.config", "LMConfig"),
           ("rnnkit.tasks.classify.config", "ClassifyConfig"), ("rnnkit.tasks.translate", "TranslateConfig"),
           ("rnnkit.tasks.tag", "TagConfig"), ("rnnkit.tasks.forecast", "ForecastConfig")]
FIELDS = [(module, name, field, base) for module, name in CONFIGS
          for field, (_, base, _) in _fields(getattr(importlib.import_module(module), name)).items()
          if base in (int, float)]
#: what a configuration needs besides the field under test
REQUIRED = {"ForecastConfig": {"data": "series.csv"}}


@pytest.mark.parametrize("module, name, field, base", FIELDS,
                         ids=[f"{n}.{f}" for _, n, f, _ in FIELDS])
def test_every_numeric_config_field_refuses_bad_values(module, name, field, base):
    cls = getattr(importlib.import_module(module), name)

    @SWEEP
    @given(BAD_INT if base is int else BAD_FLOAT)
    def sweep(value):
        if value is None and _fields(cls)[field][2]:
            return                          # None is this optional field's "not set"
        refused(cls, field, value, **REQUIRED.get(name, {}))

    sweep()


# -- rnnkit.nn: the torch.nn-style recurrent layers and cells --------------------------------------------
def _nn(cls_name, **kw):
    from rnnkit import nn
    return getattr(nn, cls_name)(**{"input_size": 3, "hidden_size": 4, **kw})


#: the cells take zero sizes as torch.nn's cells do (an empty but working module): only below zero is bad
BAD_CELL_SIZE = st.one_of(st.integers(max_value=-1), st.sampled_from([2.5, math.nan, math.inf, "4", None]))


@pytest.mark.parametrize("cls_name", ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"])
def test_rnnkit_nn_sizes_and_dropout(cls_name):
    cell = "Cell" in cls_name

    @SWEEP
    @given(st.sampled_from(["input_size", "hidden_size"]), BAD_CELL_SIZE if cell else BAD_SIZE)
    def sizes(arg, value):
        refused(lambda **kw: _nn(cls_name, **kw), arg, value)

    if cell:   # zero: what torch.nn's cell does (builds and runs), so does ours
        ours, theirs = _nn(cls_name, input_size=0), getattr(torch.nn, cls_name)(0, 4)
        assert ours(torch.zeros(2, 0))[0].shape == theirs(torch.zeros(2, 0))[0].shape

    sizes()
    if not cell:
        @SWEEP
        @given(BAD_PROB)
        def dropout(value):
            refused(lambda **kw: _nn(cls_name, num_layers=2, **kw), "dropout", value)

        @SWEEP
        @given(BAD_SIZE)
        def layers(value):
            refused(lambda **kw: _nn(cls_name, **kw), "num_layers", value)

        dropout()
        layers()


# -- rnnkit.keras: the Keras-style layers ------------------------------------------------------------------
KERAS = [("LSTM", {}, "units", BAD_SIZE), ("GRU", {}, "units", BAD_SIZE),
         ("SimpleRNN", {}, "units", BAD_SIZE), ("Dense", {}, "units", BAD_SIZE),
         ("LSTM", {"units": 4}, "dropout", BAD_PROB),
         ("GRU", {"units": 4}, "recurrent_dropout", BAD_PROB), ("Dropout", {}, "rate", BAD_PROB),
         ("Embedding", {"output_dim": 4}, "input_dim", BAD_SIZE),
         ("Embedding", {"input_dim": 10}, "output_dim", BAD_SIZE)]


@pytest.mark.parametrize("layer, fixed, arg, bad", KERAS, ids=[f"{k[0]}.{k[2]}" for k in KERAS])
def test_keras_layer_arguments(layer, fixed, arg, bad):
    from rnnkit import keras
    shape = (5,) if layer in ("Dense", "Dropout", "Embedding") else (5, 3)

    def make(**kw):
        built = getattr(keras.layers, layer)(**{**fixed, **kw})
        x = torch.randint(0, 10, (2, *shape)) if layer == "Embedding" else torch.rand(2, *shape)
        return keras.Sequential([keras.layers.Input(shape), built])(x)   # built and run: no late crash

    @SWEEP
    @given(bad)
    def sweep(value):
        refused(make, arg, value)

    sweep()


# -- the command line: each flag's bad value is a usage error (status 2) naming the flag ---------------
FLAGS = [("--hidden", "-5"), ("--hidden", "0"), ("--embedding", "-1"), ("--layers", "0"),
         ("--batch-size", "0"), ("--seq-len", "-3"), ("--dropout", "1.5"), ("--dropout", "nan"),
         ("--lr", "nan"), ("--lr", "-1"), ("--lr", "inf"), ("--steps", "0"), ("--minutes", "-2"),
         ("--eval-every", "0"), ("--log-every", "0"), ("--threads", "100000"), ("--seed", "-1"),
         ("--seed", "99999999999999999999999"), ("--ema", "1.0"), ("--clip", "-1"), ("--warmup", "-4"),
         ("--weight-decay", "inf"), ("--max-vocab", "2"), ("--val-fraction", "1.5"),
         ("--sample-temperature", "-1")]


@pytest.mark.parametrize("flag, value", FLAGS, ids=[f"{f}={v}" for f, v in FLAGS])
def test_cli_flags_refuse_bad_values_naming_them(flag, value, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the time traveller said that the machine was ready. " * 20)
    status = main(["train", "--data", str(text), "--out", str(tmp_path / "run"), "--no-progress",
                   flag, value])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    name = flag.lstrip("-").replace("-", "_")
    assert name in err or flag in err, err
    assert value in err or repr(float(value)) in err or str(float(value)) in err, err
    assert not (tmp_path / "run").exists()          # refused before anything was written
