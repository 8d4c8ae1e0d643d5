"""Classification data: reading labelled TSV/CSV files and folders the tests write (malformed ones
included), the stratified and cross-validation splits, truncation warnings."""
from __future__ import annotations

import csv
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from rnnkit.data import WordVocab
from rnnkit.tasks.classify.config import ClassifyConfig
from rnnkit.tasks.classify.data import encode, read_labelled, read_splits, stratified_split


def write(path, text: str):
    path.write_bytes(text.encode("utf-8"))
    return path


def test_tsv_splits_on_newline_only_and_keeps_quotes(tmp_path):
    # U+0085 (NEL) inside a text, an unbalanced quote, trailing spaces before the tab, CRLF, blank lines
    f = write(tmp_path / "a.txt", 'A "great phone \tone\r\nworst\u0085 ever  \t0\n\n  \nok, fine\t1\n')
    ex = read_labelled(f)
    assert ex.texts == ['A "great phone', "worst\u0085 ever", "ok, fine"]
    assert ex.labels == ["one", "0", "1"]
    assert [n for _, n in ex.where] == [1, 2, 5]


def test_text_with_tabs_keeps_all_but_the_last_column(tmp_path):
    ex = read_labelled(write(tmp_path / "a.tsv", "left\tright\tpos\n"))
    assert ex.texts == ["left\tright"] and ex.labels == ["pos"]


def test_named_and_numbered_columns(tmp_path):
    f = write(tmp_path / "a.tsv", "id\tsentence\tpolarity\n7\tgood one\tpos\n8\tbad one\tneg\n")
    ex = read_labelled(f, text_col="sentence", label_col="polarity")
    assert ex.texts == ["good one", "bad one"] and ex.labels == ["pos", "neg"]
    assert [n for _, n in ex.where] == [2, 3]
    g = write(tmp_path / "b.tsv", "pos\tgood one\nneg\tbad one\n")
    ex = read_labelled(g, text_col="1", label_col="0")
    assert ex.texts == ["good one", "bad one"] and ex.labels == ["pos", "neg"]
    with pytest.raises(ValueError, match=r"--label-col 'stars' is not a column; its header has "
                                         r"\['id', 'sentence', 'polarity'\]"):
        read_labelled(f, text_col="sentence", label_col="stars")


def test_csv_is_read_with_quoting(tmp_path):
    rows = [["text", "label"], ['He said "hi", then left', "a"], ["multi\nline", "b"]]
    f = tmp_path / "a.csv"
    with open(f, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    ex = read_labelled(f, text_col="text", label_col="label")
    assert ex.texts == ['He said "hi", then left', "multi\nline"] and ex.labels == ["a", "b"]


@pytest.mark.parametrize("content, message", [
    ("", r"a\.txt: the file is empty; expected lines of text<TAB>label"),
    ("\n \n", r"a\.txt: the file is empty"),
    ("good\t1\nno separator here\n", r"a\.txt, line 2: expected text<TAB>label .* found no tab in "
                                     r"'no separator here'"),
    ("good\t1\nbad\t \n", r"a\.txt, line 2: the label is empty"),
    ("good\t1\n \t0\n", r"a\.txt, line 2: the text is empty"),
])
def test_malformed_files_name_file_line_and_expectation(tmp_path, content, message):
    with pytest.raises(ValueError, match=message):
        read_labelled(write(tmp_path / "a.txt", content))


def cfg(path, **kw) -> ClassifyConfig:
    return ClassifyConfig(data=str(path), **kw)


def test_single_class_is_refused(tmp_path):
    f = write(tmp_path / "one.tsv", "".join(f"text {i}\tpos\n" for i in range(20)))
    with pytest.raises(ValueError, match=r"single class 'pos' in all 20 training examples"):
        read_splits(cfg(f))


def test_folder_with_train_dev_test_and_unseen_dev_label(tmp_path):
    write(tmp_path / "train.tsv", "a\tx\nb\ty\nc\tx\n")
    write(tmp_path / "dev.tsv", "d\tx\n")
    write(tmp_path / "test.tsv", "e\ty\nf\tx\n")
    write(tmp_path / "README.txt", "not data\n")
    s = read_splits(cfg(tmp_path))
    assert (s.train.texts, s.val.texts, s.test.texts) == (["a", "b", "c"], ["d"], ["e", "f"])
    write(tmp_path / "dev.tsv", "d\tx\ne\tz\n")
    with pytest.raises(ValueError, match=r"dev\.tsv, line 2: label 'z' was not seen in training; the "
                                         r"model knows \['x', 'y'\]"):
        read_splits(cfg(tmp_path))
    with pytest.raises(ValueError, match="has a test file"):
        read_splits(cfg(tmp_path, folds=5, fold=0))


def test_pooled_folder_is_split_stratified(tmp_path):
    write(tmp_path / "a_labelled.txt", "".join(f"a{i}\t{i % 2}\n" for i in range(100)))
    write(tmp_path / "b_labelled.txt", "".join(f"b{i}\t{i % 2}\n" for i in range(100)))
    write(tmp_path / "readme.txt", "no tab here\n")
    s = read_splits(cfg(tmp_path, val_fraction=0.1, test_fraction=0.2))
    assert (len(s.train), len(s.val), len(s.test)) == (144, 16, 40)
    assert Counter(s.test.labels) == {"0": 20, "1": 20}
    assert not set(s.train.texts) & set(s.val.texts) and not set(s.train.texts) & set(s.test.texts)
    again = read_splits(cfg(tmp_path, val_fraction=0.1, test_fraction=0.2))
    assert again.test.texts == s.test.texts                      # seeded: the same split
    other = read_splits(cfg(tmp_path, val_fraction=0.1, test_fraction=0.2, split_seed=1))
    assert other.test.texts != s.test.texts


def test_folds_partition_the_examples_and_keep_class_balance():
    labels = ["a"] * 53 + ["b"] * 31 + ["c"] * 16
    seen = []
    for k in range(10):
        tr, va, te = stratified_split(labels, val_fraction=0.1, test_fraction=0.0, folds=10, fold=k,
                                      seed=3)
        assert sorted(tr + va + te) == list(range(100)) and not set(tr) & set(te)
        assert abs(len(te) - 10) <= 1
        counts = Counter(labels[i] for i in te)
        assert all(abs(counts[c] - n / 10) < 1.5 for c, n in (("a", 53), ("b", 31), ("c", 16)))
        seen += te
    assert sorted(seen) == list(range(100))          # every example is tested exactly once


def test_texts_longer_than_max_len_are_cut_with_a_counted_warning():
    vocab = WordVocab(["a", "b"])
    ex = SimpleNamespace(texts=["a b a b a", "a", "b b b b b b"], where=[("f", 1), ("f", 2), ("f", 3)])
    with pytest.warns(UserWarning, match=r"2 of 3 texts are longer than max_len=4 tokens and were cut"):
        ids = encode(vocab, ex, 4)
    assert [len(x) for x in ids] == [4, 1, 4]
    assert np.array_equal(ids[0], vocab.encode("a b a b"))
    with pytest.raises(ValueError, match=r"f, line 2: the text has no tokens"):
        encode(vocab, SimpleNamespace(texts=["a", "\u0085"], where=[("f", 1), ("f", 2)]), None)
