"""Text corpora for language models: named data sets, local files and folders, stdin, the stdlib.

``load_corpus(spec)`` accepts

- a path to a text file, or to a folder of ``.txt`` files (all of them, recursively, hidden ones
  skipped, in sorted order of their relative paths; each file's text ends with a newline when joined);
- ``"-"``: standard input;
- a known name (:data:`CORPORA`): ``timemachine``, ``shakespeare``, looked up in this order: an explicit
  path (``path=`` of :func:`resolve_named`); ``$RNNKIT_DATA/<file>`` when that variable is set; the cache
  ``$XDG_CACHE_HOME/rnnkit`` (or ``~/.cache/rnnkit``); then a download into the cache from the
  canonical address, checked against its SHA-256 (not when ``download=False`` or ``RNNKIT_OFFLINE=1``);
- ``"stdlib"``: the embedded default, the Python standard library's own source (see :func:`stdlib_files`),
  needing no network and no data file.

A path that exists wins over a name. Text is decoded by :mod:`rnnkit.data.textio`'s rules (strict UTF-8
by default with the byte offset of a bad byte in the error; CRLF -> LF).
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
import sysconfig
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from rnnkit.data.atomic import atomic_path
from rnnkit.data.textio import decode_bytes, read_text
from rnnkit.errors import ConfigError, DataError


@dataclass(frozen=True)
class CorpusInfo:
    """A named corpus: its file name, where it comes from and its SHA-256."""

    name: str
    filename: str
    sha256: str
    url: str
    size: int                                   # bytes
    aliases: tuple[str, ...] = ()               # other names of the same file (checked by SHA-256)


CORPORA: dict[str, CorpusInfo] = {
    "timemachine": CorpusInfo(
        "timemachine", "timemachine.txt",
        "8424dbd9532ac81f7e5f0b6add90e6952baea29158309d7d1bf3884f4e12c516",
        "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt", 178_979),
    "shakespeare": CorpusInfo(
        "shakespeare", "tinyshakespeare.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        1_115_394, aliases=("tinyshakespeare/input.txt", "input.txt")),
}
STDLIB = "stdlib"
#: the stdlib corpus takes modules in name order while their total stays within this many bytes
STDLIB_MAX_BYTES = 3_000_000
#: top-level stdlib modules left out: ``this.py`` is ROT13 text, not Python
STDLIB_EXCLUDE = frozenset({"this.py"})


def known_corpora() -> list[str]:
    """Every name ``load_corpus`` knows, sorted."""
    return sorted([*CORPORA, STDLIB])


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/rnnkit``, or ``~/.cache/rnnkit`` when that variable is unset or empty."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnkit"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_file(url: str, dest: str | os.PathLike, sha256: str, *, progress: bool = True,
                  timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` if its SHA-256 is ``sha256``; return ``dest``.

    Streams into a temporary file next to ``dest`` (hashing as it goes, with a tqdm bar), then renames it
    into place, so ``dest`` is never half-written. A wrong checksum raises `DataError` (``dest`` is
    left untouched); a network failure raises the ``OSError`` of urllib.
    """
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        h = hashlib.sha256()
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, disable=not progress,
                      desc=f"downloading {dest.name}") as bar:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
        got = h.hexdigest()
        if got != sha256:
            raise DataError(f"download of {url}: SHA-256 is {got}, expected {sha256}; the file is "
                            f"corrupt or changed upstream and was not saved to {str(dest)!r}")
    return dest


def _where_to_put(info: CorpusInfo) -> str:
    data = os.environ.get("RNNKIT_DATA")
    env = f"$RNNKIT_DATA/{info.filename} (RNNKIT_DATA={data})" if data else \
        f"$RNNKIT_DATA/{info.filename} (set RNNKIT_DATA to a folder holding it)"
    return (f"put a copy of {info.filename} ({info.size:,} bytes, sha256 {info.sha256}, from "
            f"{info.url}) at {env}, or at {cache_dir() / info.filename}, or pass the file's path "
            f"instead of the name {info.name!r}")


def resolve_named(name: str, *, path: str | os.PathLike | None = None, download: bool = True,
                  progress: bool = True) -> Path:
    """The local file of the named corpus ``name``, downloading it into the cache if need be.

    Order: ``path``; ``$RNNKIT_DATA/<file>``; the cache (its copy checked against the SHA-256: a
    changed one is a `DataError`); a checked download (skipped when ``download=False`` or
    ``$RNNKIT_OFFLINE`` is ``1``). `ConfigError` for an unknown name;
    ``FileNotFoundError`` saying where to put the file when no copy can be had.
    """
    if name not in CORPORA:
        raise ConfigError(f"unknown corpus name {name!r}; known names: {', '.join(known_corpora())}")
    info = CORPORA[name]
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"corpus {name!r}: the given path {str(path)!r} is not a file")
        return path
    folders = [Path(os.environ["RNNKIT_DATA"])] if os.environ.get("RNNKIT_DATA") else []
    folders.append(cache_dir())
    for folder in folders:
        if (folder / info.filename).is_file():
            if folder == cache_dir() and sha256_file(folder / info.filename) != info.sha256:
                # rnnkit put it there after checking it: a different file now was tampered with or
                # damaged (a copy of one's own goes in $RNNKIT_DATA, which is not checked)
                raise DataError(f"corpus {name!r}: the cached copy {folder / info.filename} does not have "
                                f"the SHA-256 it was downloaded with ({info.sha256}); it was changed or "
                                f"damaged: delete it and rnnkit downloads it again")
            return folder / info.filename
        for alias in info.aliases:  # a generic name such as input.txt counts only if it is this file
            if (folder / alias).is_file() and sha256_file(folder / alias) == info.sha256:
                return folder / alias
    if not download or os.environ.get("RNNKIT_OFFLINE") == "1":
        raise FileNotFoundError(f"corpus {name!r} not found and downloads are off; "
                                f"{_where_to_put(info)}")
    try:
        return download_file(info.url, cache_dir() / info.filename, info.sha256, progress=progress)
    except OSError as exc:
        raise FileNotFoundError(f"corpus {name!r} not found locally and the download from "
                                f"{info.url} failed ({exc}); {_where_to_put(info)}") from exc


def stdlib_files(max_bytes: int = STDLIB_MAX_BYTES) -> list[Path]:
    """The files of the ``stdlib`` corpus, in order.

    The running interpreter's top-level standard-library modules (``sysconfig.get_paths()["stdlib"]``
    ``/*.py``; so no tests, ``idlelib``, packages or ``site-packages``), leaving out private ones (a name
    starting with ``_``, such as ``_pydecimal.py``, which repeats ``decimal``) and ``this.py``, sorted by
    name and taken while their total size stays within ``max_bytes`` (3 MB: about 110 modules,
    ``abc.py`` to ``s*.py``, on CPython 3.11). The same interpreter always gives the same files.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted((p for p in root.glob("*.py")
                    if not p.name.startswith("_") and p.name not in STDLIB_EXCLUDE and p.is_file()),
                   key=lambda p: p.name)
    chosen, total = [], 0
    for p in files:
        total += p.stat().st_size
        if total > max_bytes:
            break
        chosen.append(p)
    if not chosen:
        raise FileNotFoundError(f"stdlib corpus: no Python modules found in {str(root)!r}")
    return chosen


@dataclass
class Corpus:
    """A text split into training and validation parts; sizes are in characters."""

    name: str
    train_text: str = field(repr=False)
    val_text: str = field(repr=False)
    source: str = ""                              # path, folder, URL-named file or "<stdin>"
    train_files: tuple[str, ...] = ()             # when split by file
    val_files: tuple[str, ...] = ()

    @property
    def train_chars(self) -> int:
        return len(self.train_text)

    @property
    def val_chars(self) -> int:
        return len(self.val_text)

    def __repr__(self) -> str:
        return (f"Corpus(name={self.name!r}, train_chars={self.train_chars:,}, "
                f"val_chars={self.val_chars:,}, source={self.source!r})")


def val_file_mask(n: int, val_fraction: float) -> list[bool]:
    """Which of ``n`` files go to validation: ``k = max(1, round(n*val_fraction))`` evenly spaced
    ones, the last file always among them (``val_fraction=0.1``: files 9, 19, 29, ...)."""
    if val_fraction == 0:
        return [False] * n
    k = max(1, round(n * val_fraction))
    chosen = {math.ceil((j + 1) * n / k) - 1 for j in range(k)}
    return [i in chosen for i in range(n)]


#: the spread split holds out this many blocks of the text (fewer when they would be shorter than
#: `SPREAD_MIN_BLOCK` characters) ...
SPREAD_BLOCKS = 10
SPREAD_MIN_BLOCK = 2_000
#: ... and moves each cut back to the start of its line when one begins this close before it
SNAP_CHARS = 500


def default_split(spec: str | os.PathLike) -> str:
    """What ``split=None`` means for a new language-model run on ``spec``: ``"file"`` for the stdlib
    and a folder of several files, else ``"spread"``. (`load_corpus` itself keeps reading ``None``
    as ``"tail"`` for one text: runs recorded with ``null`` were split that way.)"""
    if spec == STDLIB and not Path(spec).exists():
        return "file"
    path = Path(spec) if spec != "-" else None
    if path is not None and path.is_dir():
        try:
            return "file" if len(_folder_files(path)) > 1 else "spread"
        except DataError:
            return "spread"     # load_corpus names the problem
    return "spread"


def spread_cuts(text: str, val_fraction: float, blocks: int = SPREAD_BLOCKS) -> list[tuple[int, int]]:
    """The ``[start, end)`` character ranges of the validation blocks of `split="spread"`: the text cut
    into ``k`` equal segments (``k = SPREAD_BLOCKS``, fewer for a short text), the last
    ``val_fraction`` of each held out, each cut moved back to the start of its line (within
    `SNAP_CHARS`), so that validation samples the whole text and training reads all of its span: a
    text sorted by length, or one whose style drifts, is not judged by its end alone."""
    n = len(text)
    n_val = round(n * val_fraction)
    k = max(1, min(blocks, n_val // SPREAD_MIN_BLOCK))

    def snap(i: int, low: int) -> int:
        j = text.rfind("\n", max(low, i - SNAP_CHARS), i)
        return j + 1 if j >= 0 and j + 1 > low else i
    cuts, low = [], 0
    for j in range(k):
        end = n if j == k - 1 else round((j + 1) * n / k)
        start = end - (round((j + 1) * n_val / k) - round(j * n_val / k))
        start = snap(start, low)
        end = n if j == k - 1 else max(start, snap(end, start))
        cuts.append((start, end))
        low = end
    return cuts


def _split_spread(name: str, source: str, text: str, val_fraction: float) -> Corpus:
    if val_fraction == 0:
        return Corpus(name, text, "", source)
    cuts = spread_cuts(text, val_fraction)
    val = "".join(text[a:b] for a, b in cuts)
    train = "".join(text[b0:a] for (_, b0), (a, _) in zip([(0, 0), *cuts], cuts))
    if not val or not train:
        raise DataError(f"{source}: {len(text)} characters are too few to split off "
                        f"val_fraction={val_fraction} for validation")
    return Corpus(name, train, val, source)


def _check_split_args(val_fraction: float, split: str | None) -> None:
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise TypeError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if split not in (None, "tail", "file", "spread"):
        raise ConfigError(f"split must be 'tail', 'spread', 'file' or None (file for a folder, else "
                          f"tail), got {split!r}")


def _join(texts: Iterable[str]) -> str:
    """Files' texts joined, each ending with a newline."""
    return "".join(t if t.endswith("\n") else t + "\n" for t in texts)


def _split_text(name: str, source: str, text: str, val_fraction: float, split: str | None) -> Corpus:
    """One text split by ``split``: ``"spread"`` (`spread_cuts`), else the tail."""
    if split == "spread":
        return _split_spread(name, source, text, val_fraction)
    return _split_tail(name, source, text, val_fraction)


def _split_tail(name: str, source: str, text: str, val_fraction: float) -> Corpus:
    n_val = round(len(text) * val_fraction)
    if val_fraction > 0 and (n_val == 0 or n_val == len(text)):
        raise DataError(f"{source}: {len(text)} characters are too few to split off "
                        f"val_fraction={val_fraction} for validation")
    cut = len(text) - n_val
    return Corpus(name, text[:cut], text[cut:], source)


def _split_files(name: str, source: str, files: list[Path], val_fraction: float, encoding: str,
                 errors: str, root: Path | None = None) -> Corpus:
    mask = val_file_mask(len(files), val_fraction)
    if all(mask):
        raise DataError(f"{source}: {len(files)} file(s) are too few to hold val_fraction="
                        f"{val_fraction} out for validation and keep some for training; use "
                        f"split='tail'")
    train: list[str] = []
    val: list[str] = []
    for p, is_val in zip(files, mask):
        (val if is_val else train).append(read_text(p, encoding, errors))
    label = (lambda p: p.relative_to(root).as_posix()) if root else (lambda p: p.name)
    return Corpus(name, _join(train), _join(val), source,
                  tuple(label(p) for p, v in zip(files, mask) if not v),
                  tuple(label(p) for p, v in zip(files, mask) if v))


def _folder_files(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.rglob("*.txt") if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(folder).parts)),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise DataError(f"folder {str(folder)!r} holds no .txt files; expected one or more")
    return files


def load_corpus(spec: str | os.PathLike, *, val_fraction: float = 0.1, split: str | None = None,
                encoding: str = "utf-8", errors: str = "strict", download: bool = True,
                progress: bool = True) -> Corpus:
    """Load a corpus (see the module docstring for ``spec``) split into training and validation.

    ``split="tail"``: the last ``val_fraction`` of the characters is validation (what ``None`` means
    for a single file, stdin and a named corpus). ``split="spread"``: blocks spread over the text, a
    ``val_fraction`` of each tenth (:func:`spread_cuts`; a new language-model run's default for one
    text, :func:`default_split`). ``split="file"``: whole files, evenly spaced, go to validation (see
    :func:`val_file_mask`; the default for a folder and ``stdlib``). ``val_fraction=0`` leaves
    ``val_text`` empty.
    """
    _check_split_args(val_fraction, split)
    if isinstance(spec, str) and spec == "-":
        if split == "file":
            raise ConfigError("split='file' needs several files; standard input is one text")
        text = decode_bytes(sys.stdin.buffer.read(), "<stdin>", encoding, errors)
        if not text:
            raise DataError("standard input is empty; expected some text to train on")
        return _split_text("<stdin>", "<stdin>", text, val_fraction, split)
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"corpus spec must be a name, a path or '-', got {type(spec).__name__}")
    path = Path(spec)
    if isinstance(spec, str) and not path.exists():
        if spec == STDLIB:
            files = stdlib_files()
            root = files[0].parent
            name = f"stdlib (Python {sys.version.split()[0]})"
            if split in ("tail", "spread"):
                text = _join(read_text(p, encoding, errors) for p in files)
                return _split_text(name, str(root), text, val_fraction, split)
            return _split_files(name, str(root), files, val_fraction, encoding, errors, root)
        if spec in CORPORA:
            if split == "file":
                raise ConfigError(f"split='file' needs several files; corpus {spec!r} is one file")
            path = resolve_named(spec, download=download, progress=progress)
            return _split_text(spec, str(path), read_text(path, encoding, errors), val_fraction, split)
        if os.sep not in spec and "/" not in spec and not path.suffix:
            raise ConfigError(f"unknown corpus name {spec!r}; known names: "
                              f"{', '.join(known_corpora())}; or give the path of a text file or of a "
                              f"folder of .txt files, or '-' for standard input")
        raise FileNotFoundError(f"corpus file or folder {spec!r} does not exist")
    if not path.exists():
        raise FileNotFoundError(f"corpus file or folder {str(path)!r} does not exist")
    if path.is_dir():
        files = _folder_files(path)
        if split in ("tail", "spread") or (split is None and len(files) == 1):
            text = _join(read_text(p, encoding, errors) for p in files)
            return _split_text(path.name, str(path), text, val_fraction, split)
        return _split_files(path.name, str(path), files, val_fraction, encoding, errors, path)
    if split == "file":
        raise ConfigError(f"split='file' needs several files; {str(path)!r} is one file; "
                          f"use split='tail'")
    return _split_text(path.stem, str(path), read_text(path, encoding, errors), val_fraction, split)
