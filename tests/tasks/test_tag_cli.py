"""``rnnkit train --task tag`` / ``evaluate`` / ``predict`` end to end on a slice of UD English EWT: a
seconds-long run beats the most-frequent-tag baseline counted on the same slice; predict writes the
file back with the predicted column; bad input is refused with the file and line."""
from __future__ import annotations

import io
import json
from collections import Counter, defaultdict

import pytest

from rnnkit.cli.main import build_parser, main
from rnnkit.tasks.tag_data import read_tagged

TRAIN_SENTENCES, DEV_SENTENCES = 500, 150


def _slice(src, n: int) -> str:
    """The first ``n`` sentences of a CoNLL-U file (blocks end at a blank line)."""
    blocks = src.read_text(encoding="utf-8").split("\n\n")
    return "\n\n".join(blocks[:n]) + "\n\n"


@pytest.fixture(scope="module")
def ewt_slice(tmp_path_factory, data_dir):
    ewt = data_dir / "ud-english-ewt"
    if not ewt.is_dir():
        pytest.skip("UD English EWT is not in the shared data folder")
    folder = tmp_path_factory.mktemp("ewt")
    (folder / "xx_ewt-ud-train.conllu").write_text(_slice(ewt / "en_ewt-ud-train.conllu", TRAIN_SENTENCES))
    (folder / "xx_ewt-ud-dev.conllu").write_text(_slice(ewt / "en_ewt-ud-dev.conllu", DEV_SENTENCES))
    (folder / "xx_ewt-ud-test.conllu").write_text(_slice(ewt / "en_ewt-ud-test.conllu", DEV_SENTENCES))
    return folder


def most_frequent_tag_accuracy(train, test) -> float:
    counts: dict = defaultdict(Counter)
    for s in train:
        for w, t in zip(s.words, s.tags):
            counts[w][t] += 1
    overall = Counter(t for s in train for t in s.tags).most_common(1)[0][0]
    pairs = [(w, t) for s in test for w, t in zip(s.words, s.tags)]
    hits = sum((counts[w].most_common(1)[0][0] if w in counts else overall) == t for w, t in pairs)
    return hits / len(pairs)


def _run(argv):
    args = build_parser(argv).parse_args(argv)
    return args.handler(args)


@pytest.fixture(scope="module")
def trained(ewt_slice, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "tagger"
    argv = ["train", "--task", "tag", "--data", str(ewt_slice), "--out", str(run), "--steps", "150",
            "--eval-every", "75", "--hidden", "48", "--embedding", "48", "--char-hidden", "24",
            "--char-embedding", "16", "--layers", "1", "--batch-size", "16", "--lr", "0.01",
            "--threads", "1", "--no-progress"]
    result = _run(argv)
    return run, result


def test_a_short_run_beats_the_most_frequent_tag(ewt_slice, trained, real_data_dir):
    run, result = trained
    assert result.status == "finished" and result.step == 150
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "tag" and config["tag"]["tag_col"] is None
    out = io.StringIO()
    args = build_parser(["evaluate", str(run)]).parse_args(["evaluate", str(run)])
    r = args.handler(args, out=out)     # the run's own test split
    train = read_tagged(ewt_slice / "xx_ewt-ud-train.conllu").sentences
    test = read_tagged(ewt_slice / "xx_ewt-ud-test.conllu").sentences
    baseline = most_frequent_tag_accuracy(train, test)
    assert r["words"] == sum(len(s) for s in test)
    print(f"tagger {r['accuracy']:.4f} vs most frequent tag {baseline:.4f}")
    assert r["accuracy"] > baseline, f"tagger {r['accuracy']:.4f} vs most frequent tag {baseline:.4f}"
    text = out.getvalue()
    assert f"token accuracy {r['accuracy']:.4f}" in text and "NOUN" in text


def test_predict_file_and_text(ewt_slice, trained, tmp_path, capsys):
    run, _ = trained
    src = ewt_slice / "xx_ewt-ud-test.conllu"
    out = tmp_path / "pred.conllu"
    preds = _run(["predict", str(run), "--input", str(src), "--output", str(out)])
    gold, got = read_tagged(src), read_tagged(out)
    assert [s.words for s in got.sentences] == [s.words for s in gold.sentences]
    assert [s.tags for s in got.sentences] == preds
    # every other column is as it was
    for a, b in zip(src.read_text().split("\n"), out.read_text().split("\n")):
        if a and a[0].isdigit() and "\t" in a and a.split("\t")[0].isdigit():
            pa, pb = a.split("\t"), b.split("\t")
            assert pa[:3] + pa[4:] == pb[:3] + pb[4:]
        else:
            assert a == b
    assert main(["predict", str(run), "The dog barked .", "Hi !"]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    assert len(lines) == 2 and lines[0].startswith("The/") and lines[1].split()[1].startswith("!/")


def test_bad_input_is_named(tmp_path, capsys):
    bad = tmp_path / "xx-ud-train.conllu"
    bad.write_text("1\tA\ta\tDET\t_\t_\t0\troot\t_\t_\n\n2\tcat\tcat\tNOUN\t_\t_\t0\troot\t_\t_\n")
    assert main(["train", "--task", "tag", "--data", str(bad), "--steps", "1", "--out",
                 str(tmp_path / "r")]) != 0
    err = capsys.readouterr().err
    assert f"{bad}:3: word ID 2, expected 1" in err and "blank line" in err
    one = tmp_path / "one.conllu"
    one.write_text("1\tA\ta\tX\t_\t_\t0\troot\t_\t_\n\n1\tB\tb\tX\t_\t_\t0\troot\t_\t_\n\n"
                   "1\tC\tc\tX\t_\t_\t0\troot\t_\t_\n")
    assert main(["train", "--task", "tag", "--data", str(one), "--steps", "1", "--out",
                 str(tmp_path / "r2")]) != 0
    assert "holds a single tag ('X')" in capsys.readouterr().err


def test_an_unseen_gold_tag_is_counted_wrong_and_reported(trained, ewt_slice, tmp_path):
    run, _ = trained
    src = (ewt_slice / "xx_ewt-ud-test.conllu").read_text().split("\n")
    rows = [i for i, line in enumerate(src) if line[:1].isdigit() and line.split("\t")[0].isdigit()]
    for i in rows[:3]:
        parts = src[i].split("\t")
        parts[3] = "NEWTAG"
        src[i] = "\t".join(parts)
    f = tmp_path / "new.conllu"
    f.write_text("\n".join(src))
    out = io.StringIO()
    argv = ["evaluate", str(run), "--data", str(f)]
    args = build_parser(argv).parse_args(argv)
    r = args.handler(args, out=out)
    assert r["unknown_tags"] == {"NEWTAG": 3}
    assert "note: 3 words have a gold tag the run never saw in training (counted wrong): ['NEWTAG']" \
        in out.getvalue()
    assert r["tags"]["NEWTAG"]["recall"] == 0.0 and r["tags"]["NEWTAG"]["support"] == 3


def test_resuming_continues_exactly(ewt_slice, tmp_path):
    common = ["train", "--task", "tag", "--data", str(ewt_slice), "--hidden", "16", "--embedding", "16",
              "--char-hidden", "8", "--char-embedding", "8", "--layers", "1", "--batch-size", "8",
              "--log-every", "1", "--eval-every", "3", "--threads", "1", "--no-progress", "--max-len", "4",
              "--schedule", "constant"]  # a cosine would end with the first budget
    with pytest.warns(UserWarning, match=r"training sentences are longer than --max-len 4 words"):
        _run(common + ["--steps", "6", "--out", str(tmp_path / "a")])
    with pytest.warns(UserWarning):
        _run(common + ["--steps", "3", "--out", str(tmp_path / "b")])
    with pytest.warns(UserWarning):
        _run(["train", "--resume", str(tmp_path / "b"), "--steps", "6", "--no-progress"])

    def losses(run):
        return [r["loss"] for r in map(json.loads, (run / "history.jsonl").read_text().split("\n")[:-1])
                if r["split"] == "train"]
    assert len(losses(tmp_path / "a")) == 6
    assert losses(tmp_path / "b") == losses(tmp_path / "a")
