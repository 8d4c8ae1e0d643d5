"""Tagged sentences in and out: CoNLL-U (Universal Dependencies) and CoNLL-2003-style column files.

A file is read into a `TagFile`: its lines as read (so a writer can give the file back with only the
tag column changed) and its sentences (`Sentence`: words, tags and the line of each word).

CoNLL-U, as UD defines it (https://universaldependencies.org/format.html): ten tab-separated columns
``ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC``; ``#`` comment lines before a sentence's
tokens; a blank line ends each sentence. Words are the lines whose ID is an integer (1, 2, 3, ... within
a sentence); a multiword token's range line (``1-2``, e.g. "don't" over "do" + "n't") and an empty
node (``1.1``) are not words: they are kept as they are and never tagged. What is malformed here: a
line with another number of columns, an ID that breaks the sequence (the sign of a blank line inside
a sentence, which ends it early), an ID of another shape, a comment after a sentence's tokens.

Columns (CoNLL-2003): whitespace- or tab-separated columns, the same number on every line, a blank
line between sentences, ``-DOCSTART-`` lines between documents.

Columns are chosen by name for CoNLL-U (``form``, ``upos``, ``xpos``, ...) or by 1-based number for
both formats (``last`` for the last column); the defaults are FORM/UPOS, and first/last.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from rnnkit.data.atomic import atomic_write
from rnnkit.data.textio import read_text
from rnnkit.errors import ConfigError, DataError

CONLLU_COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
FORMATS = ("auto", "conllu", "columns")
DOCSTART = "-DOCSTART-"
#: what a file of each split is named like (UD: ``en_ewt-ud-train.conllu``; CoNLL-2003: ``eng.testa``)
SPLIT_WORDS = {"train": ("train",), "dev": ("dev", "valid", "val", "testa"), "test": ("test", "testb")}
_NOT_DATA = (".md", ".json", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".py", ".pdf", ".html")


class TagDataError(DataError):
    """A tagged file is malformed; the message names the file, the line and what was expected (a
    `rnnkit.errors.DataError`, so also a ``ValueError``)."""


@dataclass
class Sentence:
    """One sentence: ``words`` and ``tags`` (``"_"`` where the file has no tag), for each word
    the 0-based index of its line in the file (``rows``), and the values of each auxiliary column
    read beside the tags (``aux[k][i]``: column k's value for word i; see `read_aux`)."""

    words: list[str]
    tags: list[str]
    rows: list[int]
    aux: list[list[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.words)


@dataclass
class TagFile:
    """A file as read: its format, its lines, the tag column (0-based) and its sentences."""

    path: str
    format: str                     # "conllu" or "columns"
    lines: list[str]
    tag_index: int
    word_index: int
    sentences: list[Sentence] = field(default_factory=list)
    separator: str | None = "\t"    # None: runs of whitespace (column files without tabs)
    columns: int = 10
    aux_indices: list[int] = field(default_factory=list)   # 0-based columns read into Sentence.aux

    @property
    def tokens(self) -> int:
        return sum(len(s) for s in self.sentences)


# -- choosing columns and formats ---------------------------------------------------------------
def column_index(spec: str | None, fmt: str, columns: int, role: str, where: str) -> int:
    """The 0-based column ``spec`` names (``None``: FORM/UPOS for CoNLL-U, first/last otherwise);
    ``role`` (word, tag or aux) names the option in messages."""
    flag = "--aux-cols" if role == "aux" else f"--{role}-col"
    if spec is None:
        if fmt == "conllu":
            return CONLLU_COLUMNS.index("form" if role == "word" else "upos")
        return 0 if role == "word" else columns - 1
    s = spec.strip().lower()
    if s == "last":
        return columns - 1
    if s in CONLLU_COLUMNS:
        if fmt != "conllu":
            raise TagDataError(f"{where}: {flag} {spec!r} names a CoNLL-U column, but the file "
                               f"is in columns; give a 1-based column number or 'last'")
        return CONLLU_COLUMNS.index(s)
    if s.isdigit() and 1 <= int(s) <= columns:
        return int(s) - 1
    names = f"a name ({', '.join(CONLLU_COLUMNS)}), " if fmt == "conllu" else ""
    raise TagDataError(f"{where}: {flag} {spec!r}: expected {names}a column number 1..{columns} "
                       f"or 'last'")


def sniff_format(path: str, lines: list[str]) -> str:
    """``conllu`` for a ``.conllu`` file or one whose first token line has 10 tab-separated fields
    starting with an integer ID; ``columns`` otherwise."""
    if path.endswith(".conllu"):
        return "conllu"
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        return "conllu" if len(parts) == 10 and re.fullmatch(r"\d+(-\d+|\.\d+)?", parts[0]) else "columns"
    return "columns"


# -- reading ------------------------------------------------------------------------------------
def read_tagged(path, *, fmt: str = "auto", word_col: str | None = None, tag_col: str | None = None,
                encoding: str = "utf-8", errors: str = "strict", need_tags: bool = True) -> TagFile:
    """Read ``path`` (CoNLL-U or columns, ``fmt="auto"`` sniffs). ``need_tags=False`` (prediction
    input) accepts unannotated tags (``_``) and, in column files, a single word column. Further
    columns are read by `read_aux`."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, got {fmt!r}")
    path = str(path)
    text = read_text(path, encoding, errors, allow_empty=True)
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    if not any(ln.strip() for ln in lines):
        raise TagDataError(f"{path}: the file is empty; expected tagged sentences (CoNLL-U or columns, "
                           f"one token per line, a blank line after each sentence)")
    fmt = sniff_format(path, lines) if fmt == "auto" else fmt
    tf = _read_conllu(path, lines) if fmt == "conllu" else _read_columns(path, lines, need_tags)
    if tf.columns == 1:          # words only: what a file to tag may be
        if need_tags:
            raise TagDataError(f"{path}: one column per line (words only); expected a word and a tag "
                               f"column to train or evaluate on")
        tf.word_index = tf.tag_index = 0
    else:
        tf.word_index = column_index(word_col, fmt, tf.columns, "word", path)
        tf.tag_index = column_index(tag_col, fmt, tf.columns, "tag", path)
    if tf.tag_index == tf.word_index and tf.columns > 1:
        raise TagDataError(f"{path}: the word and the tag column are the same (column "
                           f"{tf.tag_index + 1}); choose them with --word-col and --tag-col")
    if not tf.sentences:
        raise TagDataError(f"{path}: no sentences, only comments or document markers; expected token "
                           f"lines")
    sep = tf.separator
    for s in tf.sentences:
        for row in s.rows:
            parts = lines[row].split(sep)
            s.words.append(parts[tf.word_index])
            s.tags.append(parts[tf.tag_index] if tf.columns > 1 else "_")
    if need_tags:
        _check_tagged(tf)
    return tf


def read_aux(tf: TagFile, aux_cols) -> None:
    """Fill each sentence's ``aux`` with the values, as written (``_`` where a word has none), of the
    columns ``aux_cols`` names (CoNLL-U names or 1-based numbers, as ``--tag-col`` takes them); none
    may be the word or the tag column."""
    tf.aux_indices = [column_index(spec, tf.format, tf.columns, "aux", tf.path) for spec in aux_cols]
    for k in tf.aux_indices:
        if k in (tf.word_index, tf.tag_index):
            raise TagDataError(f"{tf.path}: --aux-cols names column {k + 1}, which is the "
                               f"{'word' if k == tf.word_index else 'tag'} column; expected other "
                               f"columns to learn beside the tags")
    for s in tf.sentences:
        rows = [tf.lines[row].split(tf.separator) for row in s.rows]
        s.aux = [[parts[k] for parts in rows] for k in tf.aux_indices]


def _read_conllu(path: str, lines: list[str]) -> TagFile:
    tf = TagFile(path, "conllu", lines, tag_index=3, word_index=1)
    rows: list[int] = []
    expected = 1                   # the next word's ID
    in_tokens = False              # a token line of the current sentence has been read
    last_blank = None              # the line number of the last blank line (for the error message)
    for i, line in enumerate(lines):
        where = f"{path}:{i + 1}"
        if not line.strip():
            if rows or in_tokens:
                tf.sentences.append(Sentence([], [], rows))
            rows, expected, in_tokens, last_blank = [], 1, False, i + 1
            continue
        if line.startswith("#"):
            if in_tokens:
                raise TagDataError(f"{where}: a comment line after the sentence's token lines; "
                                   f"CoNLL-U puts comments before a sentence's first token (is a "
                                   f"blank line missing before it?)")
            continue
        parts = line.split("\t")
        if len(parts) != 10:
            hint = " (the columns must be separated by tabs)" if len(parts) == 1 and " " in line else ""
            raise TagDataError(f"{where}: {len(parts)} tab-separated column(s), expected 10 (ID FORM "
                               f"LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC){hint}: {line[:60]!r}")
        tid = parts[0]
        in_tokens = True
        if tid.isdigit():
            if int(tid) != expected:
                raise TagDataError(f"{where}: word ID {tid}, expected {expected}" + _id_hint(
                    expected, last_blank, i))
            rows.append(i)
            expected += 1
        elif re.fullmatch(r"\d+-\d+", tid):       # a multiword token over the words that follow
            a, b = map(int, tid.split("-"))
            if a != expected or b <= a:
                raise TagDataError(f"{where}: multiword token range {tid}, expected {expected}-N with "
                                   f"N > {expected}" + _id_hint(expected, last_blank, i))
        elif re.fullmatch(r"\d+\.\d+", tid):      # an empty node after word n (0: before the first)
            if int(tid.split(".")[0]) != expected - 1:
                raise TagDataError(f"{where}: empty node {tid}, expected {expected - 1}.M (it follows "
                                   f"word {expected - 1})")
        else:
            raise TagDataError(f"{where}: ID {tid!r}; expected an integer, a range like 1-2 "
                               f"(multiword token) or a decimal like 1.1 (empty node)")
    if rows:
        tf.sentences.append(Sentence([], [], rows))
    return tf


def _id_hint(expected: int, last_blank: int | None, i: int) -> str:
    if expected == 1 and last_blank is not None and last_blank == i:
        return (f" (a sentence starts at 1; the blank line {last_blank} ended the sentence before: "
                f"a blank line inside a sentence is malformed)")
    return " (IDs run 1, 2, 3, ... within a sentence; a blank line ends a sentence)"


def _read_columns(path: str, lines: list[str], need_tags: bool) -> TagFile:
    first = next(i for i, ln in enumerate(lines) if ln.strip())
    sep = "\t" if "\t" in lines[first] else None
    ncols = len(lines[first].split(sep))
    tf = TagFile(path, "columns", lines, tag_index=ncols - 1, word_index=0, separator=sep, columns=ncols)
    rows: list[int] = []
    for i, line in enumerate(lines):
        if not line.strip():
            if rows:
                tf.sentences.append(Sentence([], [], rows))
            rows = []
            continue
        parts = line.split(sep)
        if len(parts) != ncols:
            how = "tab-separated" if sep else "whitespace-separated"
            raise TagDataError(f"{path}:{i + 1}: {len(parts)} {how} column(s), expected {ncols} like "
                               f"line {first + 1}: {line[:60]!r}")
        if parts[0] == DOCSTART:      # a document boundary ends a sentence, it is no token
            if rows:
                tf.sentences.append(Sentence([], [], rows))
            rows = []
            continue
        if sep == "\t" and any(not p for p in parts):
            raise TagDataError(f"{path}:{i + 1}: an empty column; expected {ncols} non-empty "
                               f"tab-separated columns: {line[:60]!r}")
        rows.append(i)
    if rows:
        tf.sentences.append(Sentence([], [], rows))
    return tf


def _check_tagged(tf: TagFile) -> None:
    """Every word of a file to train or evaluate on has a tag."""
    for s in tf.sentences:
        for row, tag in zip(s.rows, s.tags):
            if tag in ("", "_"):
                raise TagDataError(f"{tf.path}:{row + 1}: no tag ({tag!r}) in column {tf.tag_index + 1}"
                                   f"; expected every word to be tagged (choose the column with "
                                   f"--tag-col)")


# -- writing ------------------------------------------------------------------------------------
def tagged_text(tf: TagFile, predictions: list[list[str]]) -> str:
    """``tf``'s text with each word's tag column replaced by its prediction (a column appended to
    a words-only column file); every other line and column as read."""
    if len(predictions) != len(tf.sentences):
        raise ConfigError(f"{len(predictions)} predicted sentences for {len(tf.sentences)} in {tf.path}")
    out = list(tf.lines)
    join = tf.separator if tf.separator is not None else " "
    for s, tags in zip(tf.sentences, predictions):
        if len(tags) != len(s):
            raise ConfigError(f"{tf.path}:{s.rows[0] + 1}: {len(tags)} tags for a sentence of {len(s)} words")
        for row, tag in zip(s.rows, tags):
            parts = out[row].split(tf.separator)
            if tf.columns == 1:
                parts.append(tag)
            else:
                parts[tf.tag_index] = tag
            out[row] = join.join(parts)
    return "\n".join(out) + "\n"


def write_tagged(path, tf: TagFile, predictions: list[list[str]]) -> None:
    atomic_write(path, tagged_text(tf, predictions))


# -- data folders -------------------------------------------------------------------------------
def find_splits(folder) -> dict[str, list[Path]]:
    """The ``train``/``dev``/``test`` files of ``folder`` by name (``*train*``, ``*dev*`` or
    ``*valid*``, ``*test*``), each a list: a treebank may split a part over several files (UD Czech
    PDT: ``cs_pdt-ud-train-c.conllu``, ``-train-l``, ...), read one after another. A missing dev or
    test part is left out; a missing train part is an error."""
    folder = Path(folder)
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")
             and not p.name.lower().endswith(_NOT_DATA) and not p.name.upper().startswith(("README",
                                                                                            "LICENSE"))]
    found: dict[str, list[Path]] = {}
    for split, words in SPLIT_WORDS.items():
        pattern = re.compile(r"(^|[^a-z])(" + "|".join(words) + r")([^a-z]|$)")
        hits = [p for p in files if pattern.search(p.name.lower())]
        if split == "test":  # CoNLL-2003's testa is its dev set
            hits = [p for p in hits if "testa" not in p.name.lower()]
        conllu = [p for p in hits if p.suffix == ".conllu"]   # UD also ships the raw text as .txt
        hits = conllu or hits
        if hits:
            found[split] = hits
    if "train" not in found:
        raise TagDataError(f"{folder}: no training file; expected a file named like *train* (UD: "
                           f"xx_yyy-ud-train.conllu) beside *dev* and *test* ones, found "
                           f"{[p.name for p in files][:10]}")
    return found
