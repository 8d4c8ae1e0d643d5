"""Corpora: lookup order, checked downloads from a local server, folders, stdin, the stdlib corpus."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rnnkit.data import corpora
from rnnkit.data.corpora import (CORPORA, download_file, known_corpora, load_corpus, resolve_named,
                                 stdlib_files, val_file_mask)
from rnnkit.errors import DataError


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def http_dir(tmp_path):
    """A local HTTP server over a temporary folder: yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=root))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """No RNNKIT_DATA, an empty cache in tmp, downloads allowed: returns the cache folder."""
    monkeypatch.delenv("RNNKIT_DATA", raising=False)
    monkeypatch.delenv("RNNKIT_OFFLINE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "rnnkit"


def _fake_corpus(monkeypatch, name, text, url):
    """Point a known name at ``url`` with the checksum of ``text``."""
    info = dataclasses.replace(CORPORA[name], url=url, sha256=hashlib.sha256(text).hexdigest(),
                               size=len(text))
    monkeypatch.setitem(CORPORA, name, info)
    return info


def test_timemachine_from_rnnkit_data(real_data_dir, monkeypatch):
    monkeypatch.setenv("RNNKIT_DATA", str(real_data_dir))
    c = load_corpus("timemachine")
    whole = (real_data_dir / "timemachine.txt").read_text(encoding="utf-8")
    assert c.train_text + c.val_text == whole and c.name == "timemachine"
    assert c.train_chars + c.val_chars == 178_979 and c.val_chars == round(0.1 * 178_979)
    assert resolve_named("timemachine") == real_data_dir / "timemachine.txt"
    assert corpora.sha256_file(real_data_dir / "timemachine.txt") == CORPORA["timemachine"].sha256


def test_lookup_order(env, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    env.mkdir(parents=True)
    _fake_corpus(monkeypatch, "timemachine", b"from the cache\n", "http://127.0.0.1:9/none")
    (env / "timemachine.txt").write_text("from the cache\n")
    assert resolve_named("timemachine") == env / "timemachine.txt"            # cache
    monkeypatch.setenv("RNNKIT_DATA", str(data))
    assert resolve_named("timemachine") == env / "timemachine.txt"            # not in RNNKIT_DATA
    (data / "timemachine.txt").write_text("from RNNKIT_DATA\n")
    assert resolve_named("timemachine") == data / "timemachine.txt"           # RNNKIT_DATA first
    explicit = tmp_path / "mine.txt"
    explicit.write_text("explicit\n")
    assert resolve_named("timemachine", path=explicit) == explicit            # explicit path first
    with pytest.raises(FileNotFoundError, match="nothere.txt"):
        resolve_named("timemachine", path=tmp_path / "nothere.txt")
    assert load_corpus("timemachine", val_fraction=0).train_text == "from RNNKIT_DATA\n"
    monkeypatch.chdir(tmp_path)
    assert load_corpus("mine.txt", val_fraction=0).train_text == "explicit\n"   # a path wins


def test_a_tampered_cached_copy_is_detected(env, monkeypatch):
    text = b"The Time Traveller (for so it will be convenient to speak of him)\n"
    _fake_corpus(monkeypatch, "timemachine", text, "http://127.0.0.1:9/none")
    env.mkdir(parents=True)
    (env / "timemachine.txt").write_bytes(text)
    assert resolve_named("timemachine") == env / "timemachine.txt"
    (env / "timemachine.txt").write_bytes(text.replace(b"Time", b"Tame"))
    with pytest.raises(DataError, match="does not have the SHA-256 it was downloaded with.*delete it"):
        resolve_named("timemachine")


def test_alias_counts_only_with_the_right_checksum(env, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    monkeypatch.setenv("RNNKIT_OFFLINE", "1")
    text = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
    _fake_corpus(monkeypatch, "shakespeare", text, "http://127.0.0.1:9/none")
    (tmp_path / "input.txt").write_bytes(b"some other input\n")
    with pytest.raises(FileNotFoundError, match="downloads are off"):
        resolve_named("shakespeare")
    (tmp_path / "input.txt").write_bytes(text)
    assert resolve_named("shakespeare") == tmp_path / "input.txt"


def test_download_with_correct_checksum(env, http_dir, monkeypatch):
    root, base = http_dir
    text = b"The Time Traveller (for so it will be convenient to speak of him)\r\n" * 50
    (root / "tm.txt").write_bytes(text)
    _fake_corpus(monkeypatch, "timemachine", text, f"{base}/tm.txt")
    c = load_corpus("timemachine", progress=False)
    assert (env / "timemachine.txt").read_bytes() == text
    assert sorted(os.listdir(env)) == ["timemachine.txt"]                      # no .part left
    assert c.train_text + c.val_text == text.decode().replace("\r\n", "\n")   # CRLF -> LF
    (root / "tm.txt").unlink()
    assert resolve_named("timemachine") == env / "timemachine.txt"            # now from the cache


def test_download_with_wrong_checksum(env, http_dir, tmp_path, monkeypatch):
    root, base = http_dir
    (root / "tm.txt").write_bytes(b"tampered text\n")
    _fake_corpus(monkeypatch, "timemachine", b"the real text\n", f"{base}/tm.txt")
    with pytest.raises(ValueError, match=r"SHA-256 is [0-9a-f]{64}, expected [0-9a-f]{64}"):
        resolve_named("timemachine", progress=False)
    assert not env.exists() or os.listdir(env) == []
    dest = tmp_path / "d" / "x.txt"
    good = hashlib.sha256(b"tampered text\n").hexdigest()
    assert download_file(f"{base}/tm.txt", dest, good, progress=False).read_bytes() == b"tampered text\n"


def test_offline_with_no_copy_says_where_to_put_it(env, monkeypatch):
    _fake_corpus(monkeypatch, "timemachine", b"x", "http://127.0.0.1:9/timemachine.txt")  # refused
    with pytest.raises(FileNotFoundError) as err:
        resolve_named("timemachine", progress=False)
    msg = str(err.value)
    assert "download from http://127.0.0.1:9/timemachine.txt failed" in msg
    assert "$RNNKIT_DATA/timemachine.txt" in msg and str(env / "timemachine.txt") in msg
    with pytest.raises(FileNotFoundError, match="downloads are off; put a copy of timemachine.txt"):
        load_corpus("timemachine", download=False)


def test_unknown_name_lists_the_known_ones(env):
    assert known_corpora() == ["shakespeare", "stdlib", "timemachine"]
    with pytest.raises(ValueError, match="unknown corpus name 'wikitext'; known names: "
                                         "shakespeare, stdlib, timemachine"):
        load_corpus("wikitext")
    with pytest.raises(ValueError, match="unknown corpus name"):
        resolve_named("wikitext")
    with pytest.raises(FileNotFoundError, match="no/such.txt"):
        load_corpus("no/such.txt")


def test_single_file_tail_split_and_errors(tmp_path):
    p = tmp_path / "story.txt"
    p.write_text("0123456789" * 10)
    c = load_corpus(p, val_fraction=0.25)
    assert (c.name, c.train_chars, c.val_chars) == ("story", 75, 25)
    assert c.val_text == ("0123456789" * 10)[75:]
    assert load_corpus(str(p), val_fraction=0).val_text == ""
    with pytest.raises(ValueError, match="val_fraction must be in \\[0, 1\\), got 1.5"):
        load_corpus(p, val_fraction=1.5)
    with pytest.raises(ValueError, match="split must be 'tail', 'spread', 'file' or None"):
        load_corpus(p, split="random")
    with pytest.raises(ValueError, match="split='file' needs several files"):
        load_corpus(p, split="file")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match=r"empty\.txt' is empty"):
        load_corpus(tmp_path / "empty.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok text\n\x80 then more")
    with pytest.raises(ValueError, match=r"bad\.txt: .* at byte offset 8 .*--errors replace"):
        load_corpus(bad)
    assert "\ufffd" in load_corpus(bad, errors="replace", val_fraction=0).train_text


def test_folder_is_sorted_and_split_by_file(tmp_path):
    folder = tmp_path / "books"
    (folder / "sub").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    names = [f"{i:02d}.txt" for i in range(19)] + ["sub/zz.txt"]
    for name in names:
        (folder / name).write_text(f"text of {name}")                      # no final newline
    (folder / ".hidden" / "x.txt").write_text("hidden")
    (folder / "notes.md").write_text("not a txt")
    c = load_corpus(folder)
    assert c.val_files == ("09.txt", "sub/zz.txt") and len(c.train_files) == 18
    assert c.train_text == "".join(f"text of {n}\n" for n in names if n not in c.val_files)
    assert c.val_text == "text of 09.txt\ntext of sub/zz.txt\n"
    assert load_corpus(folder).train_text == c.train_text                # deterministic
    tail = load_corpus(folder, split="tail", val_fraction=0.5)
    assert tail.train_text + tail.val_text == "".join(f"text of {n}\n" for n in names)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="holds no .txt files"):
        load_corpus(tmp_path / "nothing")


def test_val_file_mask():
    assert [i for i, v in enumerate(val_file_mask(30, 0.1)) if v] == [9, 19, 29]
    assert [i for i, v in enumerate(val_file_mask(5, 0.1)) if v] == [4]
    assert not any(val_file_mask(5, 0))
    assert sum(val_file_mask(110, 0.1)) == 11


def test_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("a\r\nb 😀\n".encode() * 10)))
    c = load_corpus("-", val_fraction=0.1)
    assert c.name == "<stdin>" and c.train_text + c.val_text == "a\nb 😀\n" * 10
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))
    with pytest.raises(ValueError, match="standard input is empty"):
        load_corpus("-")


def test_stdlib_corpus_is_deterministic_and_a_few_mb():
    a, b = load_corpus("stdlib"), load_corpus("stdlib")
    assert a.train_text == b.train_text and a.val_text == b.val_text
    assert a.train_files == b.train_files and a.val_files == b.val_files
    total = a.train_chars + a.val_chars
    assert 1_000_000 <= total <= corpora.STDLIB_MAX_BYTES
    files = stdlib_files()
    assert [p.name for p in files] == sorted(p.name for p in files)
    assert not any(p.name.startswith("_") or p.name == "this.py" for p in files)
    assert len(a.val_files) == max(1, round(0.1 * len(files)))
    assert set(a.val_files).isdisjoint(a.train_files)
    assert 0.03 < a.val_chars / total < 0.25
    assert "def " in a.train_text and "import " in a.val_text


def lines_text(n_lines: int, seed: int = 0) -> str:
    import random
    rng = random.Random(seed)
    return "".join("".join(rng.choice("abcde ") for _ in range(rng.randint(0, 120))) + "\n"
                   for _ in range(n_lines))


@pytest.mark.parametrize("n_lines,fraction", [(3000, 0.1), (900, 0.25), (40, 0.1)])
def test_spread_split_holds_out_line_aligned_blocks_over_the_whole_text(tmp_path, n_lines, fraction):
    from rnnkit.data.corpora import SPREAD_BLOCKS, SPREAD_MIN_BLOCK, spread_cuts
    text = lines_text(n_lines)
    p = tmp_path / "t.txt"
    p.write_text(text)
    c = load_corpus(p, val_fraction=fraction, split="spread")
    cuts = spread_cuts(text, fraction)
    n_val = round(len(text) * fraction)
    k = max(1, min(SPREAD_BLOCKS, n_val // SPREAD_MIN_BLOCK))
    assert len(cuts) == k
    # the blocks, in order, and the text between them partition the text
    assert c.val_text == "".join(text[a:b] for a, b in cuts)
    pieces, pos = [], 0
    for a, b in cuts:
        assert pos <= a <= b
        pieces.append(text[pos:a])
        pos = b
    assert c.train_text == "".join(pieces) and pos == len(text)
    assert len(c.train_text) + len(c.val_text) == len(text)
    for j, (a, b) in enumerate(cuts):
        # each block ends its tenth of the text and starts a line, within a line's length of its share
        assert a == 0 or text[a - 1] == "\n"
        assert b == len(text) or text[b - 1] == "\n"
        assert abs(b - round((j + 1) * len(text) / k)) <= 122
        assert abs((b - a) - n_val / k) <= 2 * 122
    assert load_corpus(p, val_fraction=fraction, split="spread").val_text == c.val_text   # deterministic


def test_spread_split_without_line_breaks_cuts_at_the_character(tmp_path):
    from rnnkit.data.corpora import spread_cuts
    text = "x" * 200_000
    assert spread_cuts(text, 0.1) == [((j + 1) * 20_000 - 2_000, (j + 1) * 20_000) for j in range(10)]
    # blocks of at least SPREAD_MIN_BLOCK characters: a shorter text has fewer
    half = [((j + 1) * 20_000 - 2_000, (j + 1) * 20_000) for j in range(5)]
    assert spread_cuts(text[:100_000], 0.1) == half
    p = tmp_path / "t.txt"
    p.write_text("ab")
    with pytest.raises(ValueError, match="too few to split off"):
        load_corpus(p, val_fraction=0.1, split="spread")
    assert load_corpus(p, val_fraction=0.0, split="spread").train_text == "ab"


def test_default_split_is_files_for_folders_and_spread_for_one_text(tmp_path):
    from rnnkit.data.corpora import default_split
    one = tmp_path / "one.txt"
    one.write_text("x\n")
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    assert default_split(one) == "spread" and default_split(str(folder)) == "spread"
    (folder / "b.txt").write_text("b\n")
    assert default_split(str(folder)) == "file"
    assert default_split("stdlib") == "file" and default_split("-") == "spread"
    assert default_split("timemachine") == "spread"
