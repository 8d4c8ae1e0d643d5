"""`benchmarks/bench_lm_budget.py` on a tiny corpus and budget: both contenders train and are scored,
and the plain model's scoring equals a direct computation. No time or quality is asserted."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_lm_budget.py"
spec = importlib.util.spec_from_file_location("bench_lm_budget", _PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


@pytest.mark.parametrize("min_stream", [5_000, 1_000, 300])
def test_streamed_scoring_equals_each_stream_read_from_a_zero_state(min_stream):
    torch.manual_seed(0)
    model = bench.PlainLSTM(7, hidden=8, embedding=4).eval()
    ids = torch.randint(0, 7, (4_321,))
    N = len(ids)
    B = max(1, min(64, (N - 1) // min_stream))
    L = (N - 1) // B
    bounds = [(b * L, (b + 1) * L) for b in range(B - 1)] + [((B - 1) * L, N - 1)]
    total = 0.0
    with torch.no_grad():
        for lo, hi in bounds:      # the last stream also reads the tokens left over
            logits, _ = model(ids[lo:hi].view(1, -1))
            total += F.cross_entropy(logits[0].double(), ids[lo + 1:hi + 1], reduction="sum").item()
    got = bench.nats_per_char(model, ids, min_stream=min_stream, chunk=50)
    assert math.isclose(got, total / (N - 1), rel_tol=1e-6)


def test_a_tiny_table(tmp_path, data_dir, capsys, monkeypatch):
    monkeypatch.setattr(bench, "PLAIN", {"hidden": 16, "embedding": 8, "batch": 4, "seq": 16, "lr": 2e-3})
    text = tmp_path / "tiny.txt"
    text.write_text((data_dir / "timemachine.txt").read_text()[:20_000])
    rows = bench.main(["--corpora", str(text), "--budgets", "0.01", "--work", str(tmp_path / "w"),
                       "--json", str(tmp_path / "rows.json")])
    assert len(rows) == 1 and rows[0]["corpus"] == "tiny" and rows[0]["plain_steps"] >= 1
    assert all(math.isfinite(rows[0][k]) for k in ("rnnkit", "plain"))
    assert rows[0]["rnnkit"] < math.log(100) and rows[0]["plain"] < math.log(100)
    assert "| tiny | 20,000 | 0.01 min |" in capsys.readouterr().out
    assert (tmp_path / "rows.json").exists()
    rows = bench.main(["--corpora", str(text), "--budgets", "0.01", "--work", str(tmp_path / "w2"),
                       "--no-plain"])
    assert rows[0]["plain"] is None and math.isfinite(rows[0]["rnnkit"])
    assert "| tiny | 20,000 | 0.01 min |" in capsys.readouterr().out.replace("not run", "")
    monkeypatch.setattr(bench, "PLAIN", {"hidden": 16, "embedding": 8, "batch": 4, "seq": 16, "lr": 2e-3})
    rows = bench.main(["--corpora", str(text), "--budgets", "0.01", "--work", str(tmp_path / "w3"),
                       "--no-rnnkit"])
    assert rows[0]["rnnkit"] is None and math.isfinite(rows[0]["plain"]) and rows[0]["plain_steps"] >= 1
    assert "| tiny | 20,000 | 0.01 min | not run |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--corpora", str(text), "--no-plain", "--no-rnnkit"])
