"""Reading text files: strict decoding with byte offsets, newline normalisation, streaming encode.

Every text that enters rnnkit goes through :func:`read_text` (a whole file) or :func:`iter_text_chunks`
(a big file, chunk by chunk), which apply the same rules:

- decoded with ``encoding`` (default ``"utf-8"``) and ``errors`` (default ``"strict"``); an undecodable
  byte raises ``ValueError`` naming the file and the **byte offset** of the bad byte, and suggests
  ``--errors replace`` (``errors="replace"`` puts U+FFFD in its place);
- ``"\\r\\n"`` (Windows line ends) becomes ``"\\n"``; a lone ``"\\r"`` is kept as it is;
- a UTF-8 byte-order mark at the very start is dropped.

:func:`encode_file` turns a file of any size into one 1-D array of token ids without ever holding the
whole text: it decodes, normalises and encodes chunk by chunk into one preallocated array.
"""
from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from rnnkit.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from rnnkit.data.vocab import Vocab

#: bytes read per chunk when streaming a file
CHUNK_BYTES = 1 << 22
#: files at least this big get a progress bar when ``progress=None``
PROGRESS_MIN_BYTES = 16 << 20

_BOM = "\ufeff"


def _check_codec(encoding: str, errors: str) -> None:
    if not isinstance(encoding, str):
        raise TypeError(f"encoding must be a str such as 'utf-8', got {encoding!r}")
    if not isinstance(errors, str):
        raise TypeError(f"errors must be a str such as 'strict' or 'replace', got {errors!r}")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"encoding: unknown text encoding {encoding!r}; expected one such as 'utf-8' "
                         "or 'latin-1'") from None
    try:
        codecs.lookup_error(errors)
    except LookupError:
        raise ConfigError(f"errors: unknown error handler {errors!r}; expected 'strict', 'replace' "
                         "or 'ignore'") from None


def decode_error(name: str, exc: UnicodeDecodeError, offset: int = 0) -> DataError:
    """A `DataError` (a ``ValueError``) naming the file and the absolute byte offset of an undecodable
    byte.

    ``offset`` is where the decoded buffer starts in the file (for streamed chunks).
    """
    start = offset + exc.start
    bad = exc.object[exc.start:exc.end][:8]
    return DataError(
        f"{name}: cannot decode byte(s) {bytes(bad)!r} at byte offset {start} as {exc.encoding} "
        f"({exc.reason}); pass --errors replace (errors='replace') to substitute U+FFFD, or the "
        f"file's real encoding with --encoding (e.g. latin-1)")


def decode_bytes(data: bytes, name: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Decode a whole file's bytes by the module's rules (see the module docstring).

    ``name`` is what error messages call the source (a path or ``"<stdin>"``).
    """
    _check_codec(encoding, errors)
    try:
        text = data.decode(encoding, errors)
    except UnicodeDecodeError as exc:
        raise decode_error(name, exc) from None
    if text.startswith(_BOM):
        text = text[1:]
    return text.replace("\r\n", "\n")


def read_text(path: str | os.PathLike, encoding: str = "utf-8", errors: str = "strict", *,
              allow_empty: bool = False) -> str:
    """Read a whole text file by the module's rules; ``ValueError`` if it is empty (unless allowed)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"text file {str(path)!r} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder; expected a text file")
    text = decode_bytes(path.read_bytes(), str(path), encoding, errors)
    if not text and not allow_empty:
        raise DataError(f"text file {str(path)!r} is empty; expected some text to train on")
    return text


def iter_text_chunks(path: str | os.PathLike, encoding: str = "utf-8", errors: str = "strict", *,
                     chunk_bytes: int = CHUNK_BYTES, progress: bool | None = None
                     ) -> Iterator[str]:
    """Yield the decoded text of ``path`` in pieces of about ``chunk_bytes`` bytes each.

    The pieces, joined, equal ``read_text(path, encoding, errors)``: a multi-byte character or a
    ``"\\r\\n"`` split across two reads is put together first. Undecodable bytes raise the same
    ``ValueError`` as :func:`read_text`, with the offset counted from the start of the file.
    """
    _check_codec(encoding, errors)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file {str(path)!r} does not exist (or is not a file)")
    if not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be a positive int, got {chunk_bytes!r}")
    size = path.stat().st_size
    show = size >= PROGRESS_MIN_BYTES if progress is None else progress
    decoder = codecs.getincrementaldecoder(encoding)(errors)
    fed = 0           # bytes handed to the decoder so far
    carry = ""        # a trailing "\r" held back until we see whether "\n" follows
    first = True
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, disable=not show,
                                     desc=f"reading {path.name}") as bar:
        while True:
            data = f.read(chunk_bytes)
            final = not data
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(data, final=final)
            except UnicodeDecodeError as exc:
                raise decode_error(str(path), exc, offset=fed - pending) from None
            fed += len(data)
            bar.update(len(data))
            if first and text:
                first = False
                if text.startswith(_BOM):
                    text = text[1:]
            text = carry + text
            carry = ""
            if not final and text.endswith("\r"):
                text, carry = text[:-1], "\r"
            text = text.replace("\r\n", "\n")
            if text:
                yield text
            if final:
                return


def iter_lines(path: str | os.PathLike, encoding: str = "utf-8", errors: str = "strict"
               ) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` for every line of ``path`` (1-based, without its end), streamed by
    `iter_text_chunks` (so an undecodable byte is a `DataError` with its byte offset). A line ends at
    ``"\\n"``, ``"\\r\\n"`` or a lone ``"\\r"`` (what ``open(newline="")`` splits on); a final line
    without an end is yielded too."""
    rest, n = "", 0
    for chunk in iter_text_chunks(path, encoding, errors, progress=False):
        pieces = (rest + chunk).replace("\r", "\n").split("\n")   # "\r\n" is already "\n" here
        rest = pieces.pop()
        for line in pieces:
            n += 1
            yield n, line
    if rest:
        yield n + 1, rest


def encode_file(path: str | os.PathLike, vocab: Vocab, encoding: str = "utf-8",
                errors: str = "strict", *, chunk_bytes: int = CHUNK_BYTES,
                progress: bool | None = None) -> np.ndarray:
    """Encode a text file of any size into token ids, shape ``(N,)``, holding one copy of the ids.

    Equal to ``vocab.encode(read_text(path, encoding, errors))`` but streams: each chunk is cut where
    the vocabulary's normalisation and tokenizer cannot straddle the cut (``vocab.safe_cut``), encoded,
    and written into one array preallocated from the file size (an upper bound on the number of
    tokens), which is then shrunk in place. The dtype is ``vocab.dtype`` (the smallest that fits).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file {str(path)!r} does not exist (or is not a file)")
    chunks = iter_text_chunks(path, encoding, errors, chunk_bytes=chunk_bytes, progress=progress)
    out = _encode_pieces(chunks, vocab, path.stat().st_size + 1)
    if len(out) == 0:
        raise DataError(f"text file {str(path)!r} is empty; expected some text to train on")
    return out


def encode_text(text: str, vocab, *, chunk_chars: int = CHUNK_BYTES, progress: bool | None = None,
                desc: str = "encoding") -> np.ndarray:
    """``vocab.encode(text)`` in pieces, into one array of ``vocab.dtype`` (no intermediate copy of
    the ids), with a progress bar when ``progress`` (``None``: for texts of `PROGRESS_MIN_BYTES`
    characters or more)."""
    show = len(text) >= PROGRESS_MIN_BYTES if progress is None else progress
    with tqdm(total=len(text), unit="char", unit_scale=True, disable=not show, desc=desc) as bar:
        def pieces():
            for start in range(0, len(text), chunk_chars):
                piece = text[start:start + chunk_chars]
                yield piece
                bar.update(len(piece))
        return _encode_pieces(pieces(), vocab, len(text) + 1)


def _encode_pieces(pieces: Iterator[str], vocab, capacity: int) -> np.ndarray:
    """Encode consecutive pieces of one text, each cut where the vocabulary's normalisation and
    tokenizer cannot straddle it (``vocab.safe_cut``), into an array preallocated for ``capacity``
    tokens (an upper bound), then shrunk in place."""
    out = np.empty(capacity, dtype=vocab.dtype)
    n = 0
    rest = ""
    for chunk in pieces:
        text = rest + chunk
        cut = vocab.safe_cut(text)
        rest = text[cut:]
        n = _append(out, n, vocab.encode(text[:cut]))
    n = _append(out, n, vocab.encode(rest))
    out.resize((n,), refcheck=False)  # shrink in place: no second copy of the ids
    return out


def _append(out: np.ndarray, n: int, ids: np.ndarray) -> int:
    """Write ``ids`` into ``out[n:]`` (growing ``out`` in place if lower-casing lengthened the text)."""
    end = n + len(ids)
    if end > len(out):
        out.resize((max(end, 2 * len(out)),), refcheck=False)
    out[n:end] = ids
    return end
