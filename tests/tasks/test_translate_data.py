"""Translation data: the textbook normalisation, the split that keeps a source's translations
together, vocabularies, and bad input named by file and line."""
from __future__ import annotations

import pytest

from rnnkit.tasks.translate_data import (encode_sources, load_translation_data, make_batch,
                                         normalize_sentence, read_pairs, split_pairs)


def test_textbook_normalisation_of_french_punctuation_and_non_breaking_spaces():
    assert normalize_sentence("Va\u202f!") == "va !"
    assert normalize_sentence("Qui\u00a0?") == "qui ?"
    assert normalize_sentence("He's calm, I think.") == "he's calm , i think ."
    assert normalize_sentence("  J'ai  faim!") == "j'ai faim !"


def test_the_real_file_reads_and_the_split_never_shares_a_source(data_dir):
    d = load_translation_data(str(data_dir / "fra-eng.txt"), max_pairs=4000, dev=0.1, test=0.1, seed=3)
    assert len(d.train) + len(d.dev) + len(d.test) == 4000
    sources = [{" ".join(p.src) for p in part} for part in (d.train, d.dev, d.test)]
    assert not (sources[0] & sources[1]) and not (sources[0] & sources[2]) and not (sources[1] & sources[2])
    # alternative translations exist in this file, so the property is not vacuous
    assert len(d.test) > len(sources[2])
    assert all(len(p.src) <= 10 and len(p.tgt) <= 10 for p in d.train)
    assert d.tgt_vocab.tokens[:4] == ["<unk>", "<pad>", "<bos>", "<eos>"]
    again = load_translation_data(str(data_dir / "fra-eng.txt"), max_pairs=4000, dev=0.1, test=0.1, seed=3)
    assert [p.line for p in again.test] == [p.line for p in d.test]


def test_reverse_swaps_the_sides(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("Go.\tVa !\tCC-BY 2.0 (France) Attribution\nHi.\tSalut !\n", encoding="utf-8")
    assert [(p.src, p.tgt) for p in read_pairs(f)] == [(["go", "."], ["va", "!"]),
                                                         (["hi", "."], ["salut", "!"])]
    assert read_pairs(f, reverse=True)[0].src == ["va", "!"]


def test_bad_pairs_name_file_and_line(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("Go.\tVa !\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.txt, line 2: expected 'source<TAB>target.*no tab"):
        read_pairs(f)
    f.write_text("Go.\tVa !\nHi.\t  \n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.txt, line 2: the target side is empty"):
        read_pairs(f)
    with pytest.raises(FileNotFoundError, match="is not a file"):
        read_pairs(tmp_path / "missing.txt")


def test_unknown_words_are_counted_and_long_inputs_cut_with_a_warning(real_data_dir):
    d = load_translation_data(str(real_data_dir / "fra-eng.txt"), max_pairs=2000)
    src, lengths, unknown = encode_sources(d.src_vocab, [["go", "zyzzyva", "."]])
    assert unknown == 1 and src[1, 0] == d.src_vocab.unk_id and int(lengths[0]) == 4  # <eos> added
    limit = "1 sentence.* longer than the model's limit of 10 words.*sentence 1, 12 words"
    with pytest.warns(UserWarning, match=limit):
        src, lengths, _ = encode_sources(d.src_vocab, [["go"] * 12], 10, warn=True)
    assert int(lengths[0]) == 11


def test_batches_are_padded_and_shifted():
    from rnnkit.data import WordVocab
    from rnnkit.tasks.translate_data import Pair
    v = WordVocab(["a", "b", "c"])
    b = make_batch([Pair(["a"], ["b", "c"], 1), Pair(["a", "b", "c"], ["c"], 2)], v, v)
    assert b.src[:, 1].tolist() == [4, 5, 6, v.eos_id]
    assert b.src[:, 0].tolist() == [4, v.eos_id, v.pad_id, v.pad_id]
    assert b.tgt_in[:, 0].tolist() == [v.bos_id, 5, 6] and b.tgt_out[:, 0].tolist() == [5, 6, v.eos_id]
    assert b.tgt_out[:, 1].tolist() == [6, v.eos_id, v.pad_id]


def test_split_fractions_count_sources():
    from rnnkit.tasks.translate_data import Pair
    pairs = [Pair([str(i % 50)], ["x"], i) for i in range(200)]   # 50 sources, 4 translations each
    train, dev, test = split_pairs(pairs, 0.1, 0.2, seed=0)
    assert len({p.src[0] for p in test}) == 10 and len(test) == 40
    assert len({p.src[0] for p in dev}) == 5 and len(train) == 140


def test_the_validation_sample_spreads_over_a_length_sorted_split(data_dir):
    """The pairs files are sorted by length; the BLEU sample must not be their shortest sentences."""
    from rnnkit.tasks.translate import dev_sample
    d = load_translation_data(str(data_dir / "fra-eng.txt"), max_pairs=6000, dev=0.2, test=0.05, seed=0)
    n = 50
    part = dev_sample(d.dev, n)
    lines = [p.line for p in part]
    assert len(part) == n and lines == sorted(set(lines)) and part[0] is d.dev[0]
    assert {id(p) for p in part} <= {id(p) for p in d.dev}
    gaps = [b - a for a, b in zip(lines, lines[1:])]          # even spread: no gap far above the mean
    assert max(gaps) < 3 * (lines[-1] - lines[0]) / (n - 1)
    mean = lambda ps: sum(len(p.src) for p in ps) / len(ps)  # noqa: E731
    assert abs(mean(part) - mean(d.dev)) < 0.5 < mean(d.dev) - mean(d.dev[:n])
    assert dev_sample(d.dev[:7], n) == d.dev[:7]
