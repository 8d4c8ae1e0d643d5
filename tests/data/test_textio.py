"""Reading text: CRLF, byte-order marks, invalid UTF-8 with byte offsets, streaming decode and encode."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.data.textio import encode_file, encode_text, iter_text_chunks, read_text
from rnnkit.data.vocab import CharVocab, WordVocab

MIXED = "line one\r\nläne twö 😀\r\n\r\nend\rx, y; don't stop.\n日本語のテキスト\r\n"


def test_crlf_becomes_lf_and_bom_is_dropped(tmp_path):
    p = tmp_path / "crlf.txt"
    p.write_bytes(b"\xef\xbb\xbf" + MIXED.encode("utf-8"))
    assert read_text(p) == MIXED.replace("\r\n", "\n")
    assert "\r" in read_text(p)                       # a lone CR is kept


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
def test_streamed_chunks_join_to_the_whole_text(tmp_path, chunk):
    p = tmp_path / "t.txt"
    p.write_bytes(b"\xef\xbb\xbf" + (MIXED * 3).encode("utf-8"))
    assert "".join(iter_text_chunks(p, chunk_bytes=chunk)) == read_text(p)


def test_invalid_utf8_names_file_and_byte_offset(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes("héllo ".encode() + b"\xff\xfe world")          # bad byte at offset 7
    with pytest.raises(ValueError, match=r"bad\.txt: cannot decode .* at byte offset 7 .*--errors "
                                         r"replace"):
        read_text(p)
    for chunk in (1, 3, 4, 100):
        with pytest.raises(ValueError, match="at byte offset 7 "):
            list(iter_text_chunks(p, chunk_bytes=chunk))
    assert read_text(p, errors="replace") == "héllo \ufffd\ufffd world"
    assert "".join(iter_text_chunks(p, errors="replace", chunk_bytes=2)) == "héllo \ufffd\ufffd world"
    trunc = tmp_path / "trunc.txt"
    trunc.write_bytes(b"abc\xe6\x97")                             # cut inside a character
    with pytest.raises(ValueError, match="at byte offset 3 "):
        list(iter_text_chunks(trunc, chunk_bytes=2))


def test_empty_missing_and_bad_codec(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.txt' is empty"):
        read_text(empty)
    assert read_text(empty, allow_empty=True) == ""
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="unknown text encoding 'utf-9'"):
        read_text(empty, encoding="utf-9")
    with pytest.raises(ValueError, match="unknown error handler 'skip'"):
        read_text(empty, errors="skip")
    with pytest.raises(ValueError, match=r"empty\.txt' is empty"):
        encode_file(empty, CharVocab.from_text("a"))


@pytest.mark.parametrize("make", [
    lambda t: CharVocab.from_text(t),
    lambda t: CharVocab.from_text(t, letters_only=True),
    lambda t: CharVocab.from_text(t[: len(t) // 2], lower=True),     # with unknown characters
    lambda t: WordVocab.from_text(t),
    lambda t: WordVocab.from_text(t, letters_only=True),
])
@pytest.mark.parametrize("chunk", [3, 17, 1 << 20])
def test_encode_file_equals_encode_of_the_whole_text(tmp_path, make, chunk):
    text = (MIXED + "Hello,,, -- world!!  42 times...\n") * 20
    p = tmp_path / "t.txt"
    p.write_bytes(text.encode("utf-8"))
    vocab = make(read_text(p))
    ids = encode_file(p, vocab, chunk_bytes=chunk, progress=False)
    expected = vocab.encode(read_text(p))
    assert ids.dtype == vocab.dtype and ids.base is None        # owns its memory: the one copy
    np.testing.assert_array_equal(ids, expected)


def test_encode_file_on_real_data(data_dir):
    p = data_dir / "timemachine.txt"
    vocab = CharVocab.from_text(read_text(p), letters_only=True)
    ids = encode_file(p, vocab, chunk_bytes=4096, progress=False)
    np.testing.assert_array_equal(ids, vocab.encode(read_text(p)))


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_encode_text_in_pieces_equals_encode_of_the_whole_text(chunk):
    text = (MIXED + "Hello,,, -- world!!  42 times...\n") * 7
    for vocab in (CharVocab.from_text(text, letters_only=True), WordVocab.from_text(text),
                  CharVocab.from_text(text[:40], lower=True)):
        ids = encode_text(text, vocab, chunk_chars=chunk, progress=False)
        assert ids.dtype == vocab.dtype and ids.base is None
        np.testing.assert_array_equal(ids, vocab.encode(text))
