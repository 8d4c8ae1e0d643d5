"""`rnnkit train --task classify` end to end on a slice of the UCI sentiment sentences: a seconds-long run
beats chance on held-out sentences; `rnnkit predict --input` and `rnnkit evaluate --data` agree with
each other and with scikit-learn's metrics (the oracle); bad input is refused by file and line."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli.main import main

sk_metrics = pytest.importorskip("sklearn.metrics")

SENTIMENT = Path(os.environ.get("RNNKIT_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data")
                 ) / "sentiment-labelled-sentences"
FILES = ("amazon_cells_labelled.txt", "yelp_labelled.txt", "imdb_labelled.txt")
N_TRAIN, N_TEST = 400, 100     # sentences per file: 1,200 to train on, 300 held out


@pytest.fixture(scope="module")
def sentiment_slice(tmp_path_factory) -> Path:
    if not SENTIMENT.is_dir():
        pytest.skip(f"the sentiment data set is not in {SENTIMENT} (set RNNKIT_DATA)")
    folder = tmp_path_factory.mktemp("sentiment")
    train, test = [], []
    for name in FILES:
        lines = (SENTIMENT / name).read_bytes().decode("utf-8").split("\n")   # not splitlines: NEL
        lines = [ln for ln in lines if ln.strip()]
        train += lines[:N_TRAIN]
        test += lines[-N_TEST:]
    (folder / "train.tsv").write_text("\n".join(train) + "\n", encoding="utf-8")
    (folder / "test.tsv").write_text("\n".join(test) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def run(sentiment_slice, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("classify") / "run"
    assert main(["train", "--task", "classify", "--data", str(sentiment_slice), "--hidden", "32",
                 "--embedding", "32", "--epochs", "6", "--batch-size", "16", "--ema", "0", "--lr", "0.005",
                 "--subwords", "4000",
                 "--out", str(out),
                 "--no-progress"]) == 0
    return out


def gold_and_texts(path: Path) -> tuple[list[str], list[str]]:
    rows = [ln.rsplit("\t", 1) for ln in path.read_text(encoding="utf-8").split("\n") if ln.strip()]
    return [t.strip() for t, _ in rows], [y.strip() for _, y in rows]


def test_a_short_run_beats_chance_and_predict_agrees_with_evaluate(run, sentiment_slice, tmp_path, capsys):
    capsys.readouterr()
    texts, gold = gold_and_texts(sentiment_slice / "test.tsv")
    inputs = tmp_path / "texts.txt"
    inputs.write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["predict", str(run), "--input", str(inputs)]) == 0
    lines = capsys.readouterr().out.rstrip("\n").split("\n")
    assert len(lines) == len(texts)
    pred, probs = [], []
    for line, text in zip(lines, texts):
        label, p, text_back = line.split("\t")
        other_label, q = p.split()[1:]                      # "0.8123  1 0.1877": the other class
        pred.append(label)
        probs.append(float(p.split()[0]) + float(q))
        assert text_back == text and {label, other_label} == {"0", "1"}
    assert np.allclose(probs, 1.0, atol=2e-4)                 # probabilities of all classes sum to 1
    accuracy = sk_metrics.accuracy_score(gold, pred)
    # 300 balanced sentences: chance is 50%, and >= 60% has probability < 0.0003 under chance
    assert accuracy >= 0.6, f"accuracy {accuracy:.3f} on held-out sentences does not beat chance"

    assert main(["evaluate", str(run), "--data", str(sentiment_slice / "test.tsv")]) == 0
    report = capsys.readouterr().out
    acc, f1 = map(float, re.search(r"accuracy ([\d.]+), macro-F1 ([\d.]+) on 300 examples", report).groups())
    assert acc == pytest.approx(accuracy, abs=5e-5)
    assert f1 == pytest.approx(sk_metrics.f1_score(gold, pred, average="macro"), abs=5e-5)
    p, r, f, s = sk_metrics.precision_recall_fscore_support(gold, pred, labels=["0", "1"], zero_division=0)
    for i, label in enumerate(["0", "1"]):
        row = re.search(rf"^{label}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)$", report, re.M).groups()
        assert tuple(map(float, row)) == pytest.approx((p[i], r[i], f[i], s[i]), abs=5e-5)
    matrix = sk_metrics.confusion_matrix(gold, pred, labels=["0", "1"])
    printed = report.split("columns: predicted)\n")[1].strip().split("\n")[1:]
    assert [[int(v) for v in row.split()[1:]] for row in printed] == matrix.tolist()
    # without --data: the run's own test file
    assert main(["evaluate", str(run)]) == 0
    assert "(test):\naccuracy" in capsys.readouterr().out


def test_prediction_and_evaluation_refuse_bad_input(run, tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a fine phone\t1\nawful\t7\n", encoding="utf-8")
    assert main(["evaluate", str(run), "--data", str(bad)]) != 0
    assert "bad.tsv, line 2: label '7' was not seen in training; the model knows ['0', '1']" in \
        capsys.readouterr().err
    bad.write_text("a fine phone\t1\nno label here\n", encoding="utf-8")
    assert main(["evaluate", str(run), "--data", str(bad)]) != 0
    assert "bad.tsv, line 2: expected text<TAB>label" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    assert main(["predict", str(run), "--input", str(empty)]) != 0
    assert "empty.txt' is empty; expected one text per line" in capsys.readouterr().err


def test_single_class_training_data_is_refused(tmp_path, capsys):
    data = tmp_path / "one.tsv"
    data.write_text("".join(f"sentence {i}\tpos\n" for i in range(30)), encoding="utf-8")
    assert main(["train", "--task", "classify", "--data", str(data), "--steps", "1",
                 "--out", str(tmp_path / "r"), "--no-progress"]) != 0
    assert "single class 'pos' in all" in capsys.readouterr().err
