"""The tagger's readers and writers (`rnnkit.tasks.tag_data`) on small files the tests write,
malformed ones included, and on the real UD English EWT files (counts from the data's README)."""
from __future__ import annotations

import pytest

from rnnkit.tasks.tag_data import TagDataError, find_splits, read_tagged, tagged_text

# a sentence with comments, a multiword token (2-3: "don't" = "do" + "n't") and an empty node (4.1)
CONLLU = """# sent_id = a1
# text = I don't know it.
1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
4.1\tknow\tknow\tVERB\tVB\t_\t_\t_\t4:conj\tCopyOf=4
5\tit\tit\tPRON\tPRP\t_\t4\tobj\t_\tSpaceAfter=No
6\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = a2
1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_conllu_words_skip_ranges_and_empty_nodes_and_upos_is_the_default(tmp_path):
    tf = read_tagged(write(tmp_path, "a.conllu", CONLLU))
    assert tf.format == "conllu"
    assert [s.words for s in tf.sentences] == [["I", "do", "n't", "know", "it", "."], ["Yes"]]
    assert [s.tags for s in tf.sentences] == [["PRON", "AUX", "PART", "VERB", "PRON", "PUNCT"], ["INTJ"]]
    xpos = read_tagged(tmp_path / "a.conllu", tag_col="xpos")
    assert xpos.sentences[0].tags == ["PRP", "VBP", "RB", "VB", "PRP", "."]
    assert read_tagged(tmp_path / "a.conllu", tag_col="5").sentences[0].tags == xpos.sentences[0].tags
    assert read_tagged(tmp_path / "a.conllu", word_col="lemma").sentences[0].words[2] == "not"


def test_conllu_writer_changes_only_the_tag_column_of_words(tmp_path):
    tf = read_tagged(write(tmp_path, "a.conllu", CONLLU))
    preds = [[f"T{i}" for i in range(len(s))] for s in tf.sentences]
    out = tagged_text(tf, preds).split("\n")
    src = CONLLU.split("\n")
    assert len(out) == len(src)
    changed = [i for i, (a, b) in enumerate(zip(src, out)) if a != b]
    word_rows = [r for s in tf.sentences for r in s.rows]
    assert changed == word_rows                      # comments, 2-3, 4.1 and blank lines untouched
    for r, tag in zip(word_rows, [t for p in preds for t in p]):
        a, b = src[r].split("\t"), out[r].split("\t")
        assert b[3] == tag and a[:3] + a[4:] == b[:3] + b[4:]
    # written back and read again, the predictions are the tags
    again = read_tagged(write(tmp_path, "b.conllu", "\n".join(out)))
    assert [s.tags for s in again.sentences] == preds


def test_columns_conll2003_with_docstart_and_chosen_columns(tmp_path):
    text = ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
            "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n")
    p = write(tmp_path, "eng.train", text)
    tf = read_tagged(p)
    assert tf.format == "columns"
    assert [s.words for s in tf.sentences] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert tf.sentences[1].tags == ["B-PER", "I-PER"]                      # the last column
    assert read_tagged(p, tag_col="2").sentences[0].tags == ["NNP", "VBZ", "JJ"]
    out = tagged_text(tf, [["X", "Y", "Z"], ["P", "Q"]])
    assert out.split("\n")[2] == "EU NNP B-NP X" and out.startswith("-DOCSTART- -X- -X- O\n\n")
    # a words-only file gets its tag column appended
    words = read_tagged(write(tmp_path, "w.txt", "Peter\nran\n\nHi\n"), need_tags=False)
    assert tagged_text(words, [["A", "B"], ["C"]]) == "Peter A\nran B\n\nHi C\n"


def test_blank_line_inside_a_conllu_sentence_is_named(tmp_path):
    bad = CONLLU.replace("4\tknow\tknow\tVERB", "\n4\tknow\tknow\tVERB", 1)
    p = write(tmp_path, "bad.conllu", bad)
    with pytest.raises(TagDataError) as e:
        read_tagged(p)
    msg = str(e.value)
    line = bad.split("\n").index("4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_") + 1
    assert f"bad.conllu:{line}:" in msg and "word ID 4, expected 1" in msg and "blank line" in msg


@pytest.mark.parametrize("mutate, expect", [
    (lambda t: t.replace("5\tit\tit\tPRON\tPRP\t_\t4\tobj\t_\tSpaceAfter=No", "5\tit\tit\tPRON"),
     "4 tab-separated column(s), expected 10"),
    (lambda t: t.replace("5\tit", "7\tit"), "word ID 7, expected 5"),
    (lambda t: t.replace("2-3\tdon't", "2-2\tdon't"), "multiword token range 2-2"),
    (lambda t: t.replace("4.1\tknow", "3.1\tknow"), "empty node 3.1"),
    (lambda t: t.replace("6\t.", "x\t."), "ID 'x'"),
    (lambda t: t.replace("\n\n# sent_id = a2", "\n# late\n\n# sent_id = a2"), "comment line after"),
])
def test_malformed_conllu_lines_are_named(tmp_path, mutate, expect):
    bad = mutate(CONLLU)
    assert bad != CONLLU
    with pytest.raises(TagDataError, match=r"bad\.conllu:\d+: ") as e:
        read_tagged(write(tmp_path, "bad.conllu", bad))
    assert expect in str(e.value)


def test_other_bad_files(tmp_path):
    with pytest.raises(TagDataError, match="empty.conllu: the file is empty; expected tagged sentences"):
        read_tagged(write(tmp_path, "empty.conllu", "\n\n"))
    with pytest.raises(TagDataError, match=r"c.txt:2: 3 whitespace-separated column\(s\), expected 2"):
        read_tagged(write(tmp_path, "c.txt", "a X\nb Y Z\n"))
    with pytest.raises(TagDataError, match=r"u.conllu:1: no tag \('_'\) in column 4"):
        read_tagged(write(tmp_path, "u.conllu", "1\ta\ta\t_\t_\t_\t0\troot\t_\t_\n"))
    # the same file is fine to tag (prediction input has no tags)
    assert read_tagged(tmp_path / "u.conllu", need_tags=False).sentences[0].words == ["a"]
    with pytest.raises(TagDataError, match="words only"):
        read_tagged(write(tmp_path, "w.txt", "a\nb\n"))
    with pytest.raises(TagDataError, match="--tag-col 'upos' names a CoNLL-U column"):
        read_tagged(write(tmp_path, "ok.txt", "a X\nb Y\n"), tag_col="upos")
    with pytest.raises(TagDataError, match=r"expected a name \(id, .*\), a column number 1..10"):
        read_tagged(write(tmp_path, "a.conllu", CONLLU), tag_col="11")


def test_find_splits_by_name(tmp_path):
    for name in ("xx_yyy-ud-train.conllu", "xx_yyy-ud-dev.conllu", "xx_yyy-ud-test.conllu", "README.md"):
        write(tmp_path, name, CONLLU)
    assert {k: [p.name for p in v] for k, v in find_splits(tmp_path).items()} == {
        "train": ["xx_yyy-ud-train.conllu"], "dev": ["xx_yyy-ud-dev.conllu"],
        "test": ["xx_yyy-ud-test.conllu"]}
    write(tmp_path, "xx_yyy-ud-train.txt", "raw text, as UD ships it beside the .conllu")
    write(tmp_path, "xx_yyy-ud-train-b.conllu", CONLLU)       # a part split over two files
    assert [p.name for p in find_splits(tmp_path)["train"]] == ["xx_yyy-ud-train-b.conllu",
                                                                 "xx_yyy-ud-train.conllu"]
    other = tmp_path / "conll"
    other.mkdir()
    for name in ("eng.train", "eng.testa", "eng.testb"):
        write(other, name, "a X\n")
    assert {k: [p.name for p in v] for k, v in find_splits(other).items()} == {
        "train": ["eng.train"], "dev": ["eng.testa"], "test": ["eng.testb"]}
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(TagDataError, match="no training file"):
        find_splits(empty)


def test_a_folder_without_dev_holds_out_the_end_of_train(tmp_path):
    from rnnkit.tasks.tag import TagConfig
    from rnnkit.tasks.tag_api import load_tag_data
    one = "".join(f"1\tw{i}\tw\t{'NOUN' if i % 2 else 'VERB'}\t_\t_\t0\troot\t_\t_\n\n" for i in range(10))
    write(tmp_path, "xx-ud-train-a.conllu", one)
    write(tmp_path, "xx-ud-train-b.conllu", one.replace("\tw", "\tv"))
    d = load_tag_data(TagConfig(data=str(tmp_path), dev_fraction=0.25))
    assert [s.words[0] for s in d.train] == [f"w{i}" for i in range(10)] + [f"v{i}" for i in range(5)]
    assert [s.words[0] for s in d.dev] == [f"v{i}" for i in range(5, 10)]
    assert d.tag_column == "UPOS" and "last 5 sentences" in d.dev_name


def test_real_ewt_counts(real_data_dir):
    folder = real_data_dir / "ud-english-ewt"
    if not folder.is_dir():
        pytest.skip("UD English EWT is not in the shared data folder")
    splits = find_splits(folder)
    dev = read_tagged(splits["dev"][0])
    # the data README: 2,001 sentences and 25,147 words (integer IDs) in the dev file
    assert len(dev.sentences) == 2001 and dev.tokens == 25147
    assert len({t for s in dev.sentences for t in s.tags}) == 17          # the UPOS tag set
