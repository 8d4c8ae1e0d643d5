"""The default recipe's choices follow its documented rule, and never override what the user set."""
from __future__ import annotations

import pytest
import torch

from rnnkit.tasks.lm import recipe
from rnnkit.tasks.lm.config import LMConfig
from rnnkit.tasks.lm.model import LanguageModel
from rnnkit.train import TrainConfig


def never():
    raise AssertionError("the speed is only measured for a budget in minutes")


V = 100   # the vocabulary of the recipe tests


def test_small_text_gets_the_deep_regularised_recipe():
    # 40 epochs of a 100k-token text: a 2-layer model would read it 40 / 3 >= 10 times
    # -> 2 layers, batch 32, lr 4e-3, max dropout; a budget in epochs has no time to size the width by
    cfg, tr, why = recipe.choose(LMConfig(), TrainConfig(epochs=40), 100_000, never, vocab_size=V, bf16=True)
    assert (cfg.hidden, cfg.layers, cfg.batch_size, tr.lr) == (256, 2, 32, 4e-3)
    assert cfg.dropout == 0.3 and "small-text recipe" in why
    assert cfg.weight_drop == 0.3      # read 40 times: (40 - 20) / 50, at most 0.3
    assert tr.precision == "fp32"      # bf16 is only chosen by measuring it


def test_large_text_gets_the_fast_unregularised_recipe():
    # 2,000 steps of 64 x 32 tokens over 4M tokens: ~1 pass -> 1 layer, batch 64, lr 8e-3
    cfg, tr, why = recipe.choose(LMConfig(), TrainConfig(steps=2000), 4_000_000, never, vocab_size=V)
    passes = 2000 * 64 * 32 / 4_000_000
    assert (cfg.hidden, cfg.layers, cfg.batch_size, tr.lr) == (256, 1, 64, 8e-3)
    assert cfg.dropout == pytest.approx(round(passes / 80, 3))
    assert cfg.weight_drop == 0.0                          # a text read once: nothing to memorise
    assert f"~{passes:.1f} times" in why


def test_user_choices_are_kept():
    cfg, tr, _ = recipe.choose(LMConfig(hidden=64, layers=3, dropout=0.0, batch_size=8),
                               TrainConfig(epochs=40, lr=1e-3), 100_000, never, vocab_size=V)
    assert (cfg.hidden, cfg.layers, cfg.dropout, cfg.batch_size, tr.lr) == (64, 3, 0.0, 8, 1e-3)
    same, same_tr, why = recipe.choose(cfg, tr, 100_000, never, vocab_size=V)
    assert same == cfg and why == "" and same_tr.precision == "fp32"
    _, sgd, _ = recipe.choose(LMConfig(), TrainConfig(optimizer="sgd", epochs=1), 10_000, never, vocab_size=V)
    assert sgd.lr is None and sgd.learning_rate == 1.0      # the textbook's SGD keeps its rate
    bf, bf_tr, _ = recipe.choose(LMConfig(), TrainConfig(minutes=1, precision="bf16"), 10_000,
                                 Speeds(), vocab_size=V, bf16=True)
    assert bf_tr.precision == "bf16"


# -- a budget in minutes ------------------------------------------------------------------------
def params(hidden: int, layers: int, embedding: int = 64, vocab: int = V) -> tuple[int, int]:
    """(all parameters, parameters outside the embedding table) of a real LSTM language model."""
    model = LanguageModel(vocab, "lstm", hidden, layers, 0.0, embedding)
    total = sum(p.numel() for p in model.parameters())
    return total, total - vocab * embedding


class Speeds:
    """A made-up machine: tokens/s = ``scale`` / (``overhead`` + compute parameters), bf16 ``gain``
    times faster; records what was measured."""

    def __init__(self, scale: float = 3e10, overhead: float = 50_000, gain: float = 2.0):
        self.scale, self.overhead, self.gain, self.calls = scale, overhead, gain, []

    def __call__(self, hidden: int, precision: str) -> float:
        self.calls.append((hidden, precision))
        return self.rate(params(hidden, 1)[1], precision)

    def rate(self, compute: int, precision: str) -> float:
        return self.scale / (self.overhead + compute) * (self.gain if precision == "bf16" else 1.0)


def brute_force(minutes: float, text: int, speeds: Speeds, precision: str) -> tuple[int, int]:
    """The documented rule, by enumeration: the largest model reading >= 5 tokens per parameter (3 if
    it reads the text at most twice) with <= 6 parameters per training token (else the smallest)."""
    fits, every = [], []
    for h in (128, 256, 384, 512, 768, 1024):
        for n in (1, 2):
            total, compute = params(h, n)
            tokens = minutes * 60 * speeds.rate(compute, precision)
            every.append((total, n, h))
            if tokens >= (3 if tokens <= 2 * text else 5) * total and total <= 6 * text:
                fits.append((total, -n, h))
    if not fits:
        total, n, h = min(every)
        return h, n
    total, n, h = max(fits)
    return h, -n


@pytest.mark.parametrize("minutes,text", [(1.5, 900_000), (10, 900_000), (30, 900_000), (3, 170_000),
                                          (10 / 60, 900_000), (120, 1_000), (120, 10 ** 9),
                                          (10 / 60, 10 ** 9), (1.5, 5_000_000), (10, 5_000_000)])
def test_minutes_budget_sizes_the_model_by_the_documented_rule(minutes, text):
    speeds = Speeds(overhead=0)         # time proportional to compute: the time model is exact
    record = {}
    cfg, tr, why = recipe.choose(LMConfig(), TrainConfig(minutes=minutes), text, speeds,
                                 vocab_size=V, bf16=True, record=record)
    assert tr.precision == "bf16"                       # measured 2x faster
    assert (cfg.hidden, cfg.layers) == brute_force(minutes, text, speeds, "bf16")
    probes = [(256, "fp32"), (256, "bf16"), (512, "bf16")]
    assert speeds.calls == probes + ([(cfg.hidden, "bf16")] if cfg.hidden > 512 else [])
    base_lr = 8e-3 if cfg.layers == 1 else 4e-3
    assert tr.lr == pytest.approx(base_lr * min(1, 256 / cfg.hidden), rel=1e-3)     # 4 digits
    assert cfg.batch_size == (64 if cfg.layers == 1 else 32)
    tokens = minutes * 60 * speeds.rate(params(cfg.hidden, cfg.layers)[1], "bf16")
    assert record["passes"] == pytest.approx(tokens / text, rel=0.02)        # the time model is exact here
    assert cfg.dropout == pytest.approx(min(0.3, round(record["passes"] / 80, 3)), abs=1e-3)
    assert cfg.weight_drop == pytest.approx(min(0.3, max(0.0, record["passes"] - 20) / 50), abs=1e-3)
    assert record["chosen"]["weight_drop"] == cfg.weight_drop
    assert record["chosen"]["hidden"] == cfg.hidden and record["chosen"]["precision"] == "bf16"
    assert f"{cfg.layers} x lstm({cfg.hidden}), bf16" in why and "256: " in why


def test_the_extremes():
    def pick(minutes, text):
        cfg, _, _ = recipe.choose(LMConfig(), TrainConfig(minutes=minutes), text, Speeds(), vocab_size=V)
        return cfg
    ten_seconds = pick(10 / 60, 900_000)                  # reads ~1 pass: 3 tokens per parameter do
    assert (ten_seconds.hidden, ten_seconds.layers) == (128, 2) == brute_force(10 / 60, 900_000, Speeds(),
                                                                               "fp32")
    assert (pick(120, 1_000).hidden, pick(120, 1_000).layers) == (128, 1)     # a tiny text: nothing fits
    assert pick(120, 1_000).dropout == 0.3 == pick(120, 1_000).weight_drop   # read ~10^5 times
    huge = pick(120, 10 ** 9)                                                  # 2 hours on 1 GB
    assert huge.hidden >= 768 and huge.dropout < 0.05 and huge.weight_drop == 0.0
    sizes = [pick(m, 900_000) for m in (1.5, 10, 30)]                           # grows with the budget
    grown = [params(c.hidden, c.layers)[0] for c in sizes]
    assert grown == sorted(grown)
    assert sizes[0].hidden < sizes[2].hidden or sizes[0].layers < sizes[2].layers


def test_bf16_only_when_native_and_measured_faster():
    for bf16, gain, want, probes in ((False, 2.0, "fp32", 2), (True, 1.1, "fp32", 3), (True, 1.3, "bf16", 3)):
        speeds = Speeds(gain=gain)
        _, tr, _ = recipe.choose(LMConfig(), TrainConfig(minutes=5), 900_000, speeds, vocab_size=V, bf16=bf16)
        assert tr.precision == want and len(speeds.calls) == probes
        assert ("bf16" in {p for _, p in speeds.calls}) == bf16


def test_a_user_width_is_probed_itself_and_only_the_depth_is_chosen():
    speeds = Speeds()
    cfg, tr, _ = recipe.choose(LMConfig(hidden=384), TrainConfig(minutes=30), 900_000, speeds, vocab_size=V)
    assert cfg.hidden == 384 and speeds.calls == [(384, "fp32")]
    rate = lambda n: speeds.rate(params(384, n)[1], "fp32")                   # noqa: E731
    fits = [n for n in (1, 2) if 30 * 60 * rate(n) >= 5 * params(384, n)[0]]
    assert cfg.layers == max(fits)
    tied, _, _ = recipe.choose(LMConfig(embedding=200, tie_weights=True), TrainConfig(minutes=5), 900_000,
                               Speeds(), vocab_size=V)
    assert tied.hidden == 200


def test_time_model_interpolates_the_probes_and_extrapolates_conservatively():
    t = recipe.time_model({100: 1e-3, 400: 2.5e-3})         # seconds per token at 100 and 400 parameters
    assert t(100) == pytest.approx(1e-3) and t(400) == pytest.approx(2.5e-3)
    assert t(250) == pytest.approx(1.75e-3)                    # between: linear
    assert t(50) == pytest.approx(0.75e-3)                     # below: the line, fixed cost 0.5e-3 kept
    assert t(800) == pytest.approx(5e-3)                       # beyond: proportional to the last
    assert recipe.time_model({100: 1e-3, 400: 1.5e-3})(10) > 0
    assert recipe.time_model({100: 1e-3, 400: 8e-3})(50) == pytest.approx(0.5e-3)   # no negative cost
    assert recipe.time_model({100: 1e-3})(300) == pytest.approx(3e-3)


def test_a_chosen_width_beyond_the_probes_is_measured_and_the_choice_redone():
    # a machine where, past 512 units, a parameter costs more the larger the model (its matrices
    # leave the cache): the time per token is convex in the compute parameters
    class Cache(Speeds):
        def rate(self, compute, precision):
            return super().rate(compute, precision) / (1 + max(0, compute - 1_300_000) / 500_000)
    speeds = Cache(overhead=0)
    cfg, _, _ = recipe.choose(LMConfig(), TrainConfig(minutes=30), 900_000, speeds, vocab_size=V)
    first = recipe.choose(LMConfig(), TrainConfig(minutes=30), 900_000, Speeds(overhead=0), vocab_size=V)[0]
    assert first.hidden > 512 and len(speeds.calls) == 3 and speeds.calls[2][0] == first.hidden
    assert params(cfg.hidden, cfg.layers)[0] < params(first.hidden, first.layers)[0]
    total, compute = params(cfg.hidden, cfg.layers)
    assert 1800 * speeds.rate(compute, "fp32") >= 5 * total


def test_probe_measures_a_positive_speed_and_leaves_the_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    speed = recipe.probe_tokens_per_second(11, LMConfig(hidden=8, embedding=4, seq_len=4),
                                           torch.device("cpu"), seconds=0.01)
    assert speed > 0
    assert torch.equal(torch.rand(3), expected)


def test_the_faster_thread_count_is_kept_and_both_are_measured():
    seen = []

    def probe(n):
        seen.append(n)
        return {1: 5_000.0, 4: 20_000.0}[n]
    assert recipe.fastest_threads(probe, 4) == (4, {1: 5_000.0, 4: 20_000.0}) and sorted(seen) == [1, 4]
    busy = lambda n: {1: 9_000.0, 4: 700.0}[n]          # spin-waiting threads on a busy machine
    assert recipe.fastest_threads(busy, 4) == (1, {1: 9_000.0, 4: 700.0})
    assert recipe.fastest_threads(lambda n: 3.0, 1) == (1, {1: 3.0})
    assert recipe.fastest_threads(lambda n: 3.0, 2)[0] == 2   # a tie keeps all threads


def test_a_minutes_run_records_the_thread_count_it_measured(tmp_path, data_dir):
    import json

    from rnnkit.tasks import language_model as lm
    text = tmp_path / "t.txt"
    text.write_text((data_dir / "timemachine.txt").read_text()[:3000])
    before = torch.get_num_threads()
    lm.train(str(text), out=tmp_path / "run", minutes=0.02, hidden=8, embedding=4, seq_len=8,
             sample_length=0, progress=False, echo=None)
    assert torch.get_num_threads() in (1, before)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    flat = json.dumps(config)
    assert '"threads"' in flat
    measured = [v for v in _walk(config) if isinstance(v, dict) and "threads" in v
                and isinstance(v["threads"], dict)]
    assert measured and set(measured[0]["threads"]) == {str(n) for n in {1, before}}
    chosen = [v["threads"] for v in _walk(config)
              if isinstance(v, dict) and isinstance(v.get("threads"), int)]
    best = max(measured[0]["threads"].items(), key=lambda kv: (kv[1], int(kv[0])))[0]
    assert chosen == [int(best)]
    torch.set_num_threads(before)


def _walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


@pytest.mark.parametrize("passes,expected", [(5, 0.0), (20, 0.0), (25, 0.1), (35, 0.3), (500, 0.3)])
def test_weight_drop_rises_with_the_passes_beyond_twenty(passes, expected):
    # an epoch budget reads the text exactly ``passes`` times (the 2-layer recipe above 30 passes)
    cfg, _, why = recipe.choose(LMConfig(), TrainConfig(epochs=passes), 100_000, never, vocab_size=V)
    assert cfg.weight_drop == pytest.approx(expected)
    assert f"weight_drop {expected:g}" in why


def test_weight_drop_is_kept_when_given_and_left_off_for_cells_without_a_recurrent_matrix():
    given, _, _ = recipe.choose(LMConfig(weight_drop=0.0), TrainConfig(epochs=100), 100_000, never,
                                vocab_size=V)
    assert given.weight_drop == 0.0 and given.dropout == 0.3
    for cell in ("mingru", "minlstm"):     # their gates read only x_t: weight drop is refused for them
        cfg, _, _ = recipe.choose(LMConfig(cell=cell), TrainConfig(epochs=100), 100_000, never, vocab_size=V)
        assert cfg.weight_drop == 0.0
        LanguageModel(V, **cfg.model_kwargs())          # and the model builds
    gru, _, _ = recipe.choose(LMConfig(cell="gru"), TrainConfig(epochs=100), 100_000, never, vocab_size=V)
    assert gru.weight_drop == 0.3
    model = LanguageModel(V, **gru.model_kwargs())
    assert model.rnn.regularizers.weight_drop == 0.3
