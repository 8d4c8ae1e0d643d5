"""Labelled texts for classification: reading TSV/CSV files and folders, splitting, encoding.

A file holds one example per line: ``text<TAB>label`` (the label is the last column, the text the rest;
the UCI sentiment files), or named columns ``--text-col/--label-col`` under a header. TSV lines are split
on ``"\\n"`` only (``str.splitlines`` would also split on U+0085 and friends, which occur inside texts)
and never unquoted: a ``"`` is part of the text. A ``.csv`` file (or ``--delimiter comma``) is read with
the `csv` module, quotes included. Blank lines are skipped; every other malformed line is an error
naming the file, the line and what was expected.

A folder holds either ``train``/``dev``/``test`` files (``dev`` may be called ``valid``/``val``; dev and
test are optional) or labelled files to pool (every .txt/.tsv/.csv file but a readme): what no file
provides is split off the training examples, stratified by label with a seeded shuffle
(``--val-fraction``, ``--test-fraction``, or ``--folds K --fold i`` for cross-validation).
"""
from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.data import CharVocab, read_text
from rnnkit.data.padded import truncate, word_vocab_from_tokens
from rnnkit.data.vocab import Vocab, normalize, tokenize
from rnnkit.errors import ConfigError, DataError

SUFFIXES = (".txt", ".tsv", ".csv")
ROLES = {"train": ("train",), "dev": ("dev", "valid", "val", "validation"), "test": ("test",)}


@dataclass
class Examples:
    """Texts and their labels, with where each came from (for error messages)."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    where: list[tuple[str, int]] = field(default_factory=list)   # (file, 1-based line)

    def __len__(self) -> int:
        return len(self.texts)

    def extend(self, other: Examples) -> None:
        self.texts += other.texts
        self.labels += other.labels
        self.where += other.where

    def subset(self, idx) -> Examples:
        return Examples([self.texts[i] for i in idx], [self.labels[i] for i in idx],
                        [self.where[i] for i in idx])


def _column(spec: str | None, header: list[str] | None, path: str, what: str) -> int | None:
    """The index of the column ``spec`` names (a header name or a 0-based number)."""
    if spec is None:
        return None
    if header is not None and spec in header:
        return header.index(spec)
    if spec.isdigit():
        return int(spec)
    shown = f"its header has {header}" if header is not None else "it has no header"
    raise ConfigError(f"{path}: --{what} {spec!r} is not a column; {shown}")


def read_labelled(path: str | Path, *, text_col: str | None = None, label_col: str | None = None,
                  delimiter: str | None = None, encoding: str = "utf-8", errors: str = "strict"
                  ) -> Examples:
    """The examples of one labelled file (module docstring); `rnnkit.errors.DataError` naming file and
    line for an empty file, an undecodable byte or a malformed line."""
    path = Path(path)
    name = str(path)
    text = read_text(path, encoding, errors, allow_empty=True)
    if delimiter not in (None, "tab", "comma"):
        raise ConfigError(f"delimiter: expected 'tab' or 'comma' (or None: by the file's suffix), got "
                          f"{delimiter!r}")
    sep = {"tab": "\t", "comma": ","}[delimiter] if delimiter else ("," if path.suffix == ".csv" else "\t")
    sep_name = "comma" if sep == "," else "tab"
    form = "text<TAB>label" if sep == "\t" else "text,label"
    if sep == ",":
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            rows = [(reader.line_num, row) for row in reader]
        except csv.Error as exc:   # e.g. a field over the csv module's size limit (131,072 characters)
            raise DataError(f"{name}, line {reader.line_num}: {exc}; expected CSV rows of {form}") from None
    else:
        rows = [(i + 1, line.split("\t")) for i, line in enumerate(text.split("\n"))]
    rows = [(n, r) for n, r in rows if any(c.strip() for c in r)]       # blank lines
    if not rows:
        raise DataError(f"{name}: the file is empty; expected lines of {form}")
    named = any(c is not None and not c.isdigit() for c in (text_col, label_col))
    header = None
    if named:
        header = [c.strip() for c in rows[0][1]]
        rows = rows[1:]
    ti = _column(text_col, header, name, "text-col")
    li = _column(label_col, header, name, "label-col")
    out = Examples()
    for n, row in rows:
        if ti is None and li is None:
            if len(row) < 2:
                raise DataError(f"{name}, line {n}: expected {form} (the label after the last "
                                 f"{sep_name}); found no {sep_name} in {sep.join(row)[:80]!r}")
            txt, label = sep.join(row[:-1]), row[-1]
        else:
            need = max(i for i in (ti, li) if i is not None) + 1
            if len(row) < need:
                raise DataError(f"{name}, line {n}: expected at least {need} {sep_name}-separated "
                                 f"columns (text column {ti}, label column {li}), found {len(row)} in "
                                 f"{sep.join(row)[:80]!r}")
            label = row[li if li is not None else -1]
            txt = row[ti] if ti is not None else sep.join(c for i, c in enumerate(row) if i != li)
        txt, label = txt.strip(), label.strip()
        if not label:
            raise DataError(f"{name}, line {n}: the label is empty; expected a label after the text")
        if not txt:
            raise DataError(f"{name}, line {n}: the text is empty; expected a text before the label")
        out.texts.append(txt)
        out.labels.append(label)
        out.where.append((name, n))
    if not out.texts:
        raise DataError(f"{name}: the file has a header but no examples")
    return out


def find_files(folder: Path) -> dict[str, list[Path]]:
    """A folder's labelled files by role: ``{"train": [...], "dev": [...], "test": [...]}``, or
    ``{"pool": [...]}`` when no file is called train."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
                   and not p.name.startswith(".") and not p.stem.lower().startswith(("readme", "license")))
    roles: dict[str, list[Path]] = {}
    for p in files:
        stem = p.stem.lower()
        for role, names in ROLES.items():
            if any(stem == n or stem.endswith((f"-{n}", f"_{n}", f".{n}")) for n in names):
                roles.setdefault(role, []).append(p)
    if "train" in roles:
        return roles
    if not files:
        raise DataError(f"{folder}: the folder holds no labelled files (expected .txt, .tsv or .csv "
                         f"files: train/dev/test, or files to split)")
    return {"pool": files}


def stratified_split(labels: list[str], *, val_fraction: float, test_fraction: float,
                     folds: int | None, fold: int | None, seed: int, need_test: bool = True
                     ) -> tuple[list[int], list[int], list[int]]:
    """``(train, val, test)`` indices: within each label, a seeded shuffle; ``folds``: the examples
    dealt round-robin into K folds per label (fold ``fold`` is the test set), else the first
    ``test_fraction`` of each label; then ``val_fraction`` of each label's rest is the validation set."""
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    dealt = 0
    for label in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == label]
        idx = [idx[j] for j in rng.permutation(len(idx))]
        if not need_test:
            held, rest = [], idx
        elif folds is not None:
            pos = [(dealt + j) % folds for j in range(len(idx))]
            dealt += len(idx)
            held = [i for i, f in zip(idx, pos) if f == fold]
            rest = [i for i, f in zip(idx, pos) if f != fold]
        else:
            k = round(len(idx) * test_fraction)
            held, rest = idx[:k], idx[k:]
        k = round(len(rest) * val_fraction)
        test += held
        val += rest[:k]
        train += rest[k:]
    return sorted(train), sorted(val), sorted(test)


@dataclass
class Splits:
    train: Examples
    val: Examples
    test: Examples | None
    source: str          # what the data was, for messages


def read_splits(cfg) -> Splits:
    """Read ``cfg.data`` (a file or folder) and split it as the configuration says."""
    if not cfg.data:
        raise ConfigError("data: give the labelled texts with --data PATH (a TSV/CSV file or a folder)")
    path = Path(cfg.data)
    if not path.exists():
        raise FileNotFoundError(f"data: {cfg.data!r} does not exist; expected a TSV/CSV file of "
                                f"text<TAB>label lines or a folder of them")
    opts = dict(text_col=cfg.text_col, label_col=cfg.label_col, delimiter=cfg.delimiter,
                encoding=cfg.encoding, errors=cfg.errors)

    def read_all(paths) -> Examples:
        ex = Examples()
        for p in paths:
            ex.extend(read_labelled(p, **opts))
        return ex

    roles = find_files(path) if path.is_dir() else {"pool": [path]}
    pool = read_all(roles.get("train") or roles["pool"])
    dev = read_all(roles["dev"]) if roles.get("dev") else None
    test = read_all(roles["test"]) if roles.get("test") else None
    if cfg.folds is not None and (test is not None):
        raise ConfigError(f"data: {cfg.data} has a test file; --folds/--fold cross-validate over data "
                         f"without one (drop the test file from the folder or --folds)")
    check_classes(pool, cfg.data)
    need_test = test is None and (cfg.folds is not None or cfg.test_fraction > 0)
    tr, va, te = stratified_split(pool.labels, val_fraction=cfg.val_fraction if dev is None else 0.0,
                                  test_fraction=cfg.test_fraction, folds=cfg.folds, fold=cfg.fold,
                                  seed=cfg.split_seed, need_test=need_test)
    splits = Splits(pool.subset(tr), dev if dev is not None else pool.subset(va),
                    test if test is not None else (pool.subset(te) if te else None), str(path))
    check_classes(splits.train, cfg.data)
    known = set(splits.train.labels)
    for part in (splits.val, splits.test):
        if part is not None:
            check_known_labels(part, sorted(known))
    return splits


def check_classes(ex: Examples, source: str) -> None:
    classes = sorted(set(ex.labels))
    if len(classes) < 2:
        raise DataError(f"{source}: the label column holds a single class {classes[0]!r} in all "
                         f"{len(ex):,} training examples; a classifier needs at least 2 classes "
                         f"(is --label-col the right column?)")


def check_known_labels(ex: Examples, labels: list[str]) -> None:
    """`rnnkit.errors.DataError` naming file and line of the first label the model does not know."""
    known = set(labels)
    for label, (name, n) in zip(ex.labels, ex.where):
        if label not in known:
            raise DataError(f"{name}, line {n}: label {label!r} was not seen in training; the model "
                             f"knows {labels}")


def sort_labels(labels) -> list[str]:
    """Distinct labels, in numeric order when they are all integers (``2`` before ``10``)."""
    distinct = set(labels)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def build_vocab(cfg, texts: list[str]) -> Vocab:
    """The token vocabulary of the training texts, at the configured level."""
    if cfg.level == "char":
        return CharVocab.from_text("".join(texts), lower=cfg.lower)
    tokens = (tokenize(normalize(t, cfg.lower)) for t in texts)
    return word_vocab_from_tokens(tokens, min_freq=cfg.min_freq, max_size=cfg.max_vocab, lower=cfg.lower)


def encode(vocab: Vocab, ex: Examples, max_len: int | None, *, what: str = "texts"
           ) -> list[np.ndarray]:
    """Token ids of each text, cut to ``max_len`` (a warning counts the cut ones). A text without
    any token (only spaces and control characters) is an error naming its file and line."""
    ids = [vocab.encode(t).astype(np.int64) for t in ex.texts]
    for seq, (name, n) in zip(ids, ex.where):
        if len(seq) == 0:
            raise DataError(f"{name}, line {n}: the text has no tokens; expected at least one word "
                             f"or character")
    ids, cut = truncate(ids, max_len)
    if cut:
        warnings.warn(f"{cut:,} of {len(ids):,} {what} are longer than max_len={max_len} tokens and "
                      f"were cut to {max_len} (raise --max-len to keep more)", stacklevel=2)
    return ids
