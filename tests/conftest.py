"""Shared fixtures: where the real data lives, and how numbers are compared across implementations.

Comparison helpers are session-scoped fixtures (not an importable module) because test folders have
no ``__init__.py`` and pytest collects them rootdir-relative; session scope also keeps them usable
inside hypothesis tests."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

#: relative tolerance per dtype for "the same computation done by two implementations"
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


def real_data_path() -> Path:
    """Where the named data sets are: ``$RNNKIT_DATA``, or ``<repo>/../shared/data``."""
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    return Path(os.environ.get("RNNKIT_DATA", default))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """The named data sets: the real files (``$RNNKIT_DATA``, or ``<repo>/../shared/data``: what CI
    has), or, on a fresh clone without them, small stand-ins in the same names and formats written
    by `write_stand_in_data` (so every test that only needs *a* file of that kind runs)."""
    path = real_data_path()
    if path.is_dir():
        return path
    return write_stand_in_data(tmp_path_factory.mktemp("stand-in-data"))


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real data sets, for tests that check facts of the real files (checksums, a measured
    perplexity); skipped cleanly when they are absent (a fresh clone)."""
    path = real_data_path()
    if not path.is_dir():
        pytest.skip(f"the real data sets are not in {path} (set RNNKIT_DATA); this test checks facts "
                    f"of the real files")
    return path


_WORDS = ("the time traveller machine said and of a to in was it that he his we at for strange "
          "world morning light little people under ground sphinx white green hall fire night "
          "weena dark future years great came saw felt thought again there were our".split())
_FR = {w: (w[::-1] + "e") for w in _WORDS}
_TAGS = {"the": "DET", "a": "DET", "his": "PRON", "he": "PRON", "we": "PRON", "it": "PRON",
         "said": "VERB", "was": "AUX", "were": "AUX", "came": "VERB", "saw": "VERB", "felt": "VERB",
         "thought": "VERB", "and": "CCONJ", "of": "ADP", "to": "ADP", "in": "ADP", "at": "ADP",
         "for": "ADP", "under": "ADP", "strange": "ADJ", "little": "ADJ", "white": "ADJ",
         "green": "ADJ", "great": "ADJ", "dark": "ADJ", "again": "ADV", "there": "ADV", "that": "SCONJ",
         "our": "PRON"}


def write_stand_in_data(root: Path) -> Path:
    """Small, seeded stand-ins for the files of ``../shared/data`` (README there), same names and
    formats: ``timemachine.txt``, ``fra-eng.txt``, ``sentiment-labelled-sentences/*``,
    ``ud-english-ewt/*.conllu`` and ``timeseries/*.csv``. Not the real data: tests that check facts
    of the real files take `real_data_dir` instead."""
    import math
    g = np.random.default_rng(1895)

    def sentence(lo=4, hi=14):
        return list(g.choice(_WORDS, size=int(g.integers(lo, hi))))

    lines = ["The Time Machine, by H. G. Wells [1898]", ""]
    lines += [" ".join(sentence()).capitalize() + "." for _ in range(1500)]
    (root / "timemachine.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    pairs = sorted((sentence(1, 8) for _ in range(4000)), key=len)
    (root / "fra-eng.txt").write_text("".join(
        " ".join(p).capitalize() + ".\t" + " ".join(_FR[w] for w in p).capitalize() + " !\n"
        for p in pairs), encoding="utf-8")

    senti = root / "sentiment-labelled-sentences"
    senti.mkdir()
    good, bad = ("great", "loved", "wonderful", "best"), ("awful", "hated", "worst", "boring")
    for name in ("amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt"):
        rows = []
        for i in range(1000):
            label = i % 2
            words = sentence(3, 10) + [str(g.choice(good if label else bad))]
            g.shuffle(words)
            rows.append(" ".join(words).capitalize() + ".\t" + str(label) + "\n")
        (senti / name).write_text("".join(rows), encoding="utf-8")
    (senti / "readme.txt").write_text("stand-in data written by tests/conftest.py\n")

    ud = root / "ud-english-ewt"
    ud.mkdir()
    for split, n in (("train", 600), ("dev", 120), ("test", 120)):
        out = []
        for k in range(n):
            words = sentence(3, 12) + ["."]
            out.append(f"# sent_id = stand-in-{split}-{k:04d}\n# text = {' '.join(words)}\n")
            for i, w in enumerate(words, 1):
                upos = "PUNCT" if w == "." else _TAGS.get(w, "NOUN")
                head = 0 if i == 1 else 1
                out.append(f"{i}\t{w}\t{w}\t{upos}\t{upos[:2]}\t_\t{head}\t{'root' if head == 0 else 'dep'}"
                           f"\t_\t_\n")
            out.append("\n")
        (ud / f"en_ewt-ud-{split}.conllu").write_text("".join(out), encoding="utf-8")

    ts = root / "timeseries"
    ts.mkdir()

    def months(y0, n):
        return [f"{y0 + i // 12}-{i % 12 + 1:02d}" for i in range(n)]

    air = [round(100 * (1 + i / 60) * (1 + 0.2 * math.sin(2 * math.pi * i / 12)) + g.normal(0, 3))
           for i in range(144)]
    (ts / "airline-passengers.csv").write_text('"Month","Passengers"\n' + "".join(
        f'"{m}",{v}\n' for m, v in zip(months(1949, 144), air)))
    import datetime
    day0 = datetime.date(1981, 1, 1)
    temps = [round(11 + 5 * math.cos(2 * math.pi * i / 365.25) + g.normal(0, 2), 1) for i in range(3650)]
    (ts / "daily-min-temperatures.csv").write_text('"Date","Temp"\n' + "".join(
        f'"{day0 + datetime.timedelta(days=i)}",{t}\n' for i, t in enumerate(temps)))
    spots = [round(max(0.0, 60 + 50 * math.sin(2 * math.pi * i / 132) + g.normal(0, 15)), 1)
             for i in range(2820)]
    (ts / "monthly-sunspots.csv").write_text('"Month","Sunspots"\n' + "".join(
        f'"{m}",{v}\n' for m, v in zip(months(1749, 2820), spots)))
    (ts / "nile-statsmodels.csv").write_text("year,volume\n" + "".join(
        f"{1871 + i},{round(1000 + g.normal(0, 150))}\n" for i in range(100)))
    (ts / "yearly-sunspots-statsmodels.csv").write_text('"YEAR","SUNACTIVITY"\n' + "".join(
        f"{1700 + i},{round(max(0.0, 50 + 45 * math.sin(2 * math.pi * i / 11) + g.normal(0, 10)), 1)}\n"
        for i in range(309)))
    return root


def _as_double(v) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v.detach().double()
    return torch.as_tensor(np.asarray(v, dtype=np.float64))


def rel_diff(actual, expected) -> float:
    """``max|a - b| / max(1, max|b|)``: an absolute error for small numbers, relative for large."""
    a, b = _as_double(actual), _as_double(expected)
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch: {tuple(a.shape)} vs expected {tuple(b.shape)}")
    if a.numel() == 0:
        return 0.0
    return float((a - b).abs().max() / max(1.0, float(b.abs().max())))


@pytest.fixture(scope="session")
def assert_close():
    """``assert_close(actual, expected, what, tol=None)``: fail naming ``what`` and the largest
    relative difference. ``tol`` defaults to `TOLERANCE` of ``expected``'s dtype."""
    def check(actual, expected, what: str, tol: float | None = None) -> None:
        if tol is None:
            dtype = expected.dtype if isinstance(expected, torch.Tensor) else torch.float64
            tol = TOLERANCE.get(dtype, 1e-5)
        if actual is None or expected is None:
            raise AssertionError(f"{what}: one side is None (actual={actual is None}, "
                                 f"expected={expected is None})")
        d = rel_diff(actual, expected)
        if not d <= tol:  # also catches NaN
            raise AssertionError(f"{what}: largest relative difference {d:.3e} > tolerance {tol:.0e}")
    return check


@pytest.fixture(scope="session")
def assert_grads_close(assert_close):
    """``assert_grads_close(ours_module, theirs_module, tol=None, what="")``: every named
    parameter's gradient agrees (names must match one to one)."""
    def check(ours, theirs, tol: float | None = None, what: str = "") -> None:
        po, pt = dict(ours.named_parameters()), dict(theirs.named_parameters())
        assert list(po) == list(pt), f"{what}parameter names differ: {list(po)} vs {list(pt)}"
        for name in pt:
            assert pt[name].grad is not None, f"{what}reference has no gradient for {name}"
            assert po[name].grad is not None, f"{what}no gradient for parameter {name}"
            assert_close(po[name].grad, pt[name].grad, f"{what}gradient of {name}", tol)
    return check


class ToyTask:
    """The trainer's toy task (tests/train, tests/reliability): y = x @ w + noise, fitted by a small
    MLP with dropout, minibatches drawn from a seeded NumPy generator that is part of the task's
    state -- so the global RNG, the data RNG and the optimizer state all matter for resuming
    exactly. ``nan_at``: the loss turns NaN from that call of `loss` on (divergence tests)."""

    steps_per_epoch = 8

    def __init__(self, seed=0, nan_at=None):
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 1))
        g = np.random.default_rng(123)
        self.x = torch.tensor(g.normal(size=(256, 4)), dtype=torch.float32)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1
        self.rng = np.random.default_rng(seed)
        self.calls, self.nan_at = 0, nan_at

    def next_batch(self):
        idx = torch.as_tensor(self.rng.integers(0, 256, size=32))
        return self.x[idx], self.y[idx]

    def loss(self, batch):
        self.calls += 1
        x, y = batch
        loss_sum = nn.functional.mse_loss(self.model(x), y, reduction="sum")  # the contract: a sum
        if self.nan_at is not None and self.calls >= self.nan_at:
            loss_sum = loss_sum * math.nan
        return loss_sum, len(y)

    def evaluate(self):
        loss = float(nn.functional.mse_loss(self.model(self.x), self.y))
        return {"loss": loss, "ppl": math.exp(min(loss, 50))}

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, d):
        self.rng.bit_generator.state = d["rng"]


@pytest.fixture(scope="session")
def toy_task() -> type[ToyTask]:
    """The class `ToyTask` (call it: ``toy_task(seed=0, nan_at=None)``)."""
    return ToyTask
