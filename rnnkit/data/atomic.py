"""The one way rnnkit writes a file: atomically, durably, with a temporary name no other writer shares.

Every file rnnkit writes (run folders, vocabularies, plots, downloads, saved models) goes through
:func:`atomic_write` (bytes or text in memory) or :func:`atomic_path` (for a library that writes to a
file name itself: safetensors, matplotlib, h5py). Both:

1. write to a temporary file in the destination's folder, named ``.<name>.<random>.tmp`` by
   ``tempfile.mkstemp`` (unique to this writer, so two writers never collide);
2. flush and ``fsync`` it (the bytes are on disk before the name points at them);
3. give it the permissions ``open()`` would (``mkstemp`` alone makes it private, 0o600);
4. ``os.replace`` it over the destination (atomic on POSIX and Windows), then ``fsync`` the folder
   so the rename itself survives a power cut.

A crash or a full disk leaves the old file or the new one, never half of one; the temporary file
is removed on any error.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)
#: permission bits of the files rnnkit writes: what ``open()`` would give under this umask
FILE_MODE = 0o666 & ~_UMASK


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mode: int = FILE_MODE) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; on a clean exit it is synced and renamed
    over ``path``, on an error it is removed and ``path`` is untouched.

    >>> with atomic_path("run/model.safetensors") as tmp:
    ...     safetensors.torch.save_model(model, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the library closed it; sync what it wrote
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(path: str | os.PathLike, data: bytes | str, *, mode: int = FILE_MODE) -> None:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically and durably (module docstring)."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with atomic_path(path, mode=mode) as tmp:
        with open(tmp, "wb") as f:
            f.write(payload)
