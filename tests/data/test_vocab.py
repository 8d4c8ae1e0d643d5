"""Vocabularies: normalisation, encode/decode round trips, dtypes, JSON files and their errors."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.textio import read_text
from rnnkit.data.vocab import (CharVocab, Vocab, WordVocab, detokenize, dtype_for, load_vocab,
                               normalize, tokenize)

UNICODE_TEXT = "Héllo, wörld! 😀 日本語 — naïve café\n\tZürich 🇫🇷 end\n"


def test_normalize_d2l():
    text = "The Time Machine, by H. G. Wells [1898]\n\n\nI\nÉtienne's 42 cats"
    assert normalize(text, letters_only=True) == "the time machine by h g wells i tienne s cats"
    assert normalize(text, lower=True) == text.lower()
    assert normalize(text) is text


def test_char_roundtrip_unicode_and_emoji():
    v = CharVocab.from_text(UNICODE_TEXT)
    ids = v.encode(UNICODE_TEXT)
    assert ids.shape == (len(UNICODE_TEXT),) and ids.dtype == np.uint8
    assert v.decode(ids) == UNICODE_TEXT
    assert v.decode(torch.from_numpy(ids.astype(np.int64))) == UNICODE_TEXT
    assert v.decode(ids.tolist()) == UNICODE_TEXT
    assert len(v) == len(set(UNICODE_TEXT)) + 1 and v.tokens[0] == "<unk>" and v.unk_id == 0
    assert v.tokens[1:] == sorted(set(UNICODE_TEXT))


def test_char_roundtrip_of_a_crlf_file(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes(UNICODE_TEXT.replace("\n", "\r\n").encode("utf-8"))
    text = read_text(path)
    v = CharVocab.from_text(text)
    assert "\r" not in v.index and v.decode(v.encode(text)) == UNICODE_TEXT


def test_char_roundtrip_of_invalid_utf8_with_replace(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"caf\xc3\xa9 \xc3\x28 ok")
    with pytest.raises(ValueError, match="at byte offset 6 "):
        read_text(path)
    text = read_text(path, errors="replace")
    v = CharVocab.from_text(text)
    assert text == "café \ufffd( ok" and v.decode(v.encode(text)) == text


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1), st.text())
def test_char_roundtrip_property(train, other):
    v = CharVocab.from_text(train)
    assert v.decode(v.encode(train)) == train
    ids = v.encode(other)
    assert len(ids) == len(other)
    expected = [v.index.get(c, 0) for c in other]
    assert ids.tolist() == expected


def test_unknown_chars_map_to_unk():
    v = CharVocab.from_text("abc ")
    assert v.encode("abxc").tolist() == [2, 3, 0, 4]
    assert v.decode(v.encode("abxc")) == "ab<unk>c"
    assert v.unknown_chars("a😀b zz") == ["z", "😀"]
    assert v.unknown_chars("cab") == []


def test_char_options_apply_at_encode():
    v = CharVocab.from_text("The Time Machine!", letters_only=True)
    assert v.tokens == ["<unk>", " ", *sorted(set("themachin"))]
    assert v.decode(v.encode("THE...TIME")) == "the time"
    low = CharVocab.from_text("AbC", lower=True)
    assert low.decode(low.encode("ABC")) == "abc"


def test_timemachine_d2l_vocab_has_28_tokens(real_data_dir):
    text = read_text(real_data_dir / "timemachine.txt")
    v = CharVocab.from_text(text, letters_only=True)
    assert len(v) == 28
    assert v.decode(v.encode(text[:200])) == normalize(text[:200], letters_only=True)


def test_dtype_is_smallest_that_fits():
    assert dtype_for(256) == np.uint8 and dtype_for(257) == np.int16
    assert dtype_for(32767) == np.int16 and dtype_for(32768) == np.int32
    v = CharVocab.from_text("".join(chr(0x4E00 + i) for i in range(300)))
    ids = v.encode(chr(0x4E00 + 299))
    assert ids.dtype == np.int16 and ids.tolist() == [300]


def test_decode_rejects_bad_ids():
    v = CharVocab.from_text("ab")
    with pytest.raises(ValueError, match=r"id 7 out of range; expected ids in \[0, 3\)"):
        v.decode([0, 7])
    with pytest.raises(ValueError, match=r"shape \(N,\), got shape \(1, 2\)"):
        v.decode([[0, 1]])
    with pytest.raises(TypeError, match="integer ids"):
        v.decode(np.array([0.5]))
    assert v.decode([]) == ""


def test_tokenize_and_detokenize():
    assert tokenize("Hi, you! Don't stop.\nNew  line\t😀") == \
        ["Hi", ",", "you", "!", "Don't", "stop", ".", "\n", "New", "line", "😀"]
    assert detokenize(tokenize("Hi, you (all)! Bye.\nNext")) == "Hi, you (all)! Bye.\nNext"


def test_word_vocab_build_and_roundtrip():
    text = "the cat sat on the mat .\nthe cat ran ."
    v = WordVocab.from_text(text)
    assert v.tokens[:4] == ["<unk>", "<pad>", "<bos>", "<eos>"]
    assert (v.unk_id, v.pad_id, v.bos_id, v.eos_id) == (0, 1, 2, 3)
    assert v.tokens[4:7] == ["the", ".", "cat"]             # by count, ties by the word
    assert v.decode(v.encode(text)) == "the cat sat on the mat.\nthe cat ran."
    assert v.encode("the dog").tolist() == [4, 0]
    assert v.unknown_tokens("the dog and the bird") == ["and", "bird", "dog"]
    assert v.decode([2, 4, 6, 3, 1], skip_special=True) == "the cat"
    small = WordVocab.from_text(text, min_freq=2)
    assert small.tokens[4:] == ["the", ".", "cat"]
    capped = WordVocab.from_text(text, max_size=5)
    assert capped.tokens == ["<unk>", "<pad>", "<bos>", "<eos>", "the"]
    assert WordVocab.from_text("A a", lower=True).tokens[4:] == ["a"]


def test_word_vocab_bad_arguments():
    with pytest.raises(ValueError, match="min_freq must be an int >= 1, got 0"):
        WordVocab.from_text("a", min_freq=0)
    with pytest.raises(ValueError, match="max_size must be None or an int >= 4"):
        WordVocab.from_text("a", max_size=2)
    with pytest.raises(TypeError, match="lower must be a bool"):
        CharVocab.from_text("a", lower="yes")


@pytest.mark.parametrize("make", [
    lambda: CharVocab.from_text(UNICODE_TEXT + "\ud800"),     # a lone surrogate survives too
    lambda: CharVocab.from_text(UNICODE_TEXT, letters_only=True),
    lambda: WordVocab.from_text(UNICODE_TEXT, min_freq=1, max_size=50, lower=True),
])
def test_json_round_trip(tmp_path, make):
    v = make()
    path = tmp_path / "sub" / "vocab.json"
    v.to_json(path)
    assert os.listdir(path.parent) == ["vocab.json"]           # no temporary file left behind
    back = load_vocab(path)
    assert type(back) is type(v) and back == v
    assert back.tokens == v.tokens and back.lower == v.lower and back.letters_only == v.letters_only
    assert type(v).from_json(path) == v and Vocab.from_json(path) == v
    sample = UNICODE_TEXT[:20]
    assert back.encode(sample).tolist() == v.encode(sample).tolist()


def test_json_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_vocab(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json.*not valid JSON"):
        load_vocab(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match=r"other\.json.*not an rnnkit vocabulary"):
        load_vocab(other)
    path = tmp_path / "v.json"
    CharVocab.from_text("ab").to_json(path)
    with pytest.raises(ValueError, match=r"holds a CharVocab .* not a WordVocab"):
        WordVocab.from_json(path)
    d = json.loads(path.read_text())
    d["tokens"] = ["<unk>", "a", "a"]
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"v\.json.*corrupt.*duplicates"):
        load_vocab(path)
    d["type"] = "bytes"
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"\"type\" is 'bytes'; expected one of \['char', 'word'\]"):
        load_vocab(path)
