"""`rnnkit train --task translate`, `rnnkit translate` and `rnnkit evaluate` end to end on a tiny
slice of the real English-French pairs, and bad input reported in one line."""
from __future__ import annotations

import json

import pytest

from rnnkit.cli.main import main

TINY = ["--hidden", "16", "--embedding", "8", "--batch-size", "16", "--threads", "1", "--no-progress",
        "--eval-sentences", "20", "--beam", "2", "--log-every", "2"]


@pytest.fixture
def pairs(tmp_path, data_dir):
    path = tmp_path / "pairs.txt"
    with open(data_dir / "fra-eng.txt", encoding="utf-8") as f:
        path.write_text("".join(next(f) for _ in range(600)), encoding="utf-8")
    return path


def test_train_translate_evaluate(tmp_path, pairs, capsys, real_data_dir):
    run = tmp_path / "run"
    assert main(["train", "--task", "translate", "--data", str(pairs), "--out", str(run), "--steps", "6",
                 "--eval-every", "3", *TINY]) == 0
    out = capsys.readouterr().out
    assert "greedy: BLEU" in out and "beam2: BLEU" in out
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert metrics["pairs"] > 0 and "bleu_greedy" in metrics and "chrf_beam2" in metrics
    assert (run / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "src_vocab.json").exists() and (run / "tgt_vocab.json").exists()

    assert main(["translate", str(run), "he is calm .", "go !", "--beam", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    inputs = tmp_path / "in.txt"
    inputs.write_text("he is calm .\n\ngo !\n", encoding="utf-8")
    assert main(["translate", str(run), "--input", str(inputs)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2

    with pytest.warns(UserWarning, match="cut to their first 10 words"):
        assert main(["translate", str(run), " ".join(["go"] * 14)]) == 0
    with pytest.warns(UserWarning, match=r"1 word\(s\) are not in the run's source vocabulary.*zyzzyva"):
        assert main(["translate", str(run), "go zyzzyva !"]) == 0
    capsys.readouterr()

    assert main(["evaluate", str(run)]) == 0
    assert "greedy: BLEU" in capsys.readouterr().out


def test_bad_pairs_are_one_line_naming_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("Go.\tVa !\nHi. Salut !\n", encoding="utf-8")
    assert main(["train", "--task", "translate", "--data", str(bad), "--out", str(tmp_path / "r"),
                 "--steps", "1", "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "bad.txt, line 2: expected 'source<TAB>target" in err and "Traceback" not in err


def test_evaluate_on_another_pairs_file(tmp_path, pairs, data_dir):
    from rnnkit.tasks import translate as tr
    run = tmp_path / "run"
    tr.train(str(pairs), out=run, steps=2, hidden=8, embedding=8, batch_size=16, threads=1, progress=False,
             echo=None, eval_sentences=5, beam=1)
    other = tmp_path / "other.txt"
    with open(data_dir / "fra-eng.txt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(900)][600:]
    other.write_text("".join(lines), encoding="utf-8")
    r = tr.evaluate(run, str(other), beam=2)
    assert r["split"] == "all" and r["pairs"] == 300 and "bleu_beam2" in r and "chrf_greedy" in r
