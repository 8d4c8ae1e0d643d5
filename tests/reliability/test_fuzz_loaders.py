"""Every loader fuzzed with hypothesis: random bytes, truncations, insertions (NUL bytes among them),
wrong encodings, huge lines, arbitrary Unicode. A loader may return or raise rnnkit's own error
(`rnnkit.errors.RnnkitError`); anything else escaping is a crash. Every loader is called directly, as
a user of the Python API would: not through `rnnkit.errors.data_errors`, the boundary the training
flow puts around ``load_data`` (a ``ValueError``, ``UnicodeDecodeError`` or ``csv.Error`` of a loader
escaping here is a failure even though that boundary would have caught it).

Crashes found are kept below as explicit regression cases (``REGRESSIONS``).

To fuzz a new loader: add ``(name, sample, call)`` to `LOADERS`; ``call(path)`` reads ``path`` (the
fuzzed bytes, in a file named ``input`` with the suffix ``call.suffix``, ``.txt`` if it has none).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.errors import RnnkitError

EXAMPLES = int(os.environ.get("RNNKIT_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TEXT = "The Time Traveller (for so it will be convenient to speak of him)\nwas expounding.\n" * 3
VOCAB = json.dumps({"format": "rnnkit.vocab", "version": 1, "type": "char",
                    "tokens": ["<unk>", " ", "a", "b"], "lower": False,
                    "letters_only": False})
CONFIG = json.dumps({"format": "rnnkit.run", "version": 2, "task": "lm", "run_id": "00", "files": {},
                     "lm": {}, "train": {}, "model": {}})
PAIRS = "Go.\tVa !\nHi.\tSalut !\nRun!\tCours !\n"
LABELLED = "Wow... Loved this place.\t1\nCrust is not good.\t0\nNot tasty.\t0\n"
CONLLU = ("# sent_id = 1\n# text = The cat sat .\n1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n"
          "2\tcat\tcat\tNOUN\tNN\t_\t3\tnsubj\t_\t_\n3\tsat\tsit\tVERB\tVBD\t_\t0\troot\t_\t_\n"
          "4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_\n\n")
CSV = '"Month","Passengers"\n"1949-01",112\n"1949-02",118\n"1949-03",132\n"1949-04",129\n'


def _text(path):
    from rnnkit.data.textio import read_text
    return read_text(path)


def _corpus(path):
    from rnnkit.data import load_corpus
    return load_corpus(str(path), val_fraction=0.2)


def _vocab(path):
    from rnnkit.data import load_vocab
    return load_vocab(path)


def _config(path):
    from rnnkit.train import RunFolder
    folder = Path(path).parent / "run"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_bytes(Path(path).read_bytes())
    return RunFolder(folder).read_config()


def _task_loader(module: str, function: str, suffix: str = ".txt", **kw):
    """``module.function(path, **kw)``, called directly (no boundary around it)."""
    def call(path):
        import importlib
        return getattr(importlib.import_module(module), function)(path, **kw)
    call.suffix = suffix
    return call


def _translation_data(path):
    from rnnkit.tasks.translate_data import load_translation_data
    return load_translation_data(str(path), max_pairs=50, dev=0.2, test=0.2)


def _labelled_splits(path):
    """The classifier's whole reading: a folder of train/dev files (both the fuzzed file)."""
    from rnnkit.tasks.classify.config import ClassifyConfig
    from rnnkit.tasks.classify.data import read_splits
    folder = Path(path).parent / "folder"
    folder.mkdir(exist_ok=True)
    for name in ("train.txt", "dev.txt"):
        (folder / name).write_bytes(Path(path).read_bytes())
    return read_splits(ClassifyConfig(data=str(folder)))


LOADERS = [
    ("plain text", TEXT, _text),
    ("corpus file", TEXT, _corpus),
    ("vocab JSON", VOCAB, _vocab),
    ("config JSON", CONFIG, _config),
    ("TSV pairs (translate)", PAIRS, _task_loader("rnnkit.tasks.translate_data", "read_pairs")),
    ("translation data (split, vocabularies)", PAIRS, _translation_data),
    ("labelled TSV (classify)", LABELLED, _task_loader("rnnkit.tasks.classify.data", "read_labelled")),
    ("labelled CSV (classify)", LABELLED.replace("\t", ","),
     _task_loader("rnnkit.tasks.classify.data", "read_labelled", ".csv")),
    ("labelled folder (classify splits)", LABELLED, _labelled_splits),
    ("CoNLL-U (tag)", CONLLU, _task_loader("rnnkit.tasks.tag_data", "read_tagged")),
    ("columns (tag)", "EU NNP B-ORG\nrejects VBZ O\n\nPeter NNP B-PER\n",
     _task_loader("rnnkit.tasks.tag_data", "read_tagged", fmt="columns")),
    ("CSV series (forecast)", CSV, _task_loader("rnnkit.tasks.forecast_data", "load_series")),
]


def payloads(sample: bytes):
    """Bytes near ``sample`` and far from it."""
    n = len(sample)
    return st.one_of(
        st.binary(max_size=600),
        st.integers(0, n).map(lambda k: sample[:k]),                                 # truncations
        st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=12)).map(
            lambda t: sample[:t[0]] + t[1] + sample[t[0]:]),                          # insertions
        st.tuples(st.integers(0, n), st.sampled_from([b"\x00", b"\t", b"\n", b"\r", b"\"", b"{"])).map(
            lambda t: sample[:t[0]] + t[1] * 3 + sample[t[0]:]),                      # NUL, separators
        st.sampled_from(["utf-16", "utf-32", "latin-1", "cp1252"]).map(
            lambda enc: sample.decode("utf-8", "replace").encode(enc, "replace")),   # wrong encodings
        st.integers(1, 4).map(lambda k: sample[:20] + b"x" * (250_000 * k) + b"\n" + sample[20:]),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),     # any Unicode
    )


def check_one(call, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("input" + getattr(call, "suffix", ".txt"))
        path.write_bytes(data)
        try:
            call(path)
        except RnnkitError:
            pass                 # a clear refusal of rnnkit's own


@pytest.mark.parametrize("name, sample, call", LOADERS, ids=[n for n, _, _ in LOADERS])
def test_only_rnnkit_errors_escape(name, sample, call):
    sample = sample.encode("utf-8")
    check_one(call, sample)      # the valid sample itself loads

    @FUZZ
    @given(payloads(sample))
    def fuzz(data):
        check_one(call, data)

    fuzz()


#: crashes the fuzzing found, kept as cases: (loader, bytes)
REGRESSIONS = [
    ("vocab JSON", b"[" * 100_000),                          # RecursionError in json: now a DataError
    ("config JSON", b"[" * 100_000),
    ("vocab JSON", b'{"format": "rnnkit.vocab", "version": 1, "type": "char", "tokens": 5}'),
    ("config JSON", b'{"format": "rnnkit.run", "version": 2, "task": "lm", "run_id": "0", "files": 3}'),
    ("config JSON", b'{"format": "rnnkit.run", "version": 2, "task": "lm", "run_id": "0", '
                    b'"files": {"../x": "0"}}'),
    # found fuzzing the tasks' loaders called directly (before, only the training boundary caught them)
    ("TSV pairs (translate)", b"Go.\tVa !\nHi.\t\x80Salut\n"),           # UnicodeDecodeError
    ("TSV pairs (translate)", b"Go.\tVa !\nno tab\n"),                    # ValueError
    ("translation data (split, vocabularies)", b"Go.\tVa !\n"),           # nothing left to train on
    ("CSV series (forecast)", b'"Month","P"\n"' + b"x" * 200_000 + b'",1\n'),   # csv.Error: field limit
    ("CSV series (forecast)", b'"Month","P"\n"1949-01",x\n'),              # ValueError
    ("labelled CSV (classify)", b'"' + b"x" * 200_000 + b'",1\n'),          # csv.Error: field limit
    ("labelled TSV (classify)", b"Loved it.\t1\nno label here\n"),         # ValueError
    ("CoNLL-U (tag)", b"1\tThe\tthe\tDET\tDT\t_\t0\troot\t_\t_\n2\tcat\n"),   # ValueError (TagDataError)
    ("corpus file", b"ab"),                                                # too short to split
]


@pytest.mark.parametrize("name, data", REGRESSIONS)
def test_found_crashes_stay_fixed(name, data):
    call = dict((n, c) for n, _, c in LOADERS)[name]
    with pytest.raises(RnnkitError):
        check_one_strict(call, data)


def check_one_strict(call, data: bytes):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("input" + getattr(call, "suffix", ".txt"))
        path.write_bytes(data)
        return call(path)


# -- run folders: every file slot fuzzed, with its checksum made to match (to reach the parsers) ----
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from rnnkit.tasks import lm
    root = tmp_path_factory.mktemp("fuzz-run")
    text = root / "t.txt"
    text.write_text(TEXT * 10)
    lm.train(str(text), out=root / "run", steps=2, hidden=8, embedding=4, batch_size=2, seq_len=8,
             sample_length=0, threads=1, progress=False, echo=None)
    return root / "run"


SLOTS = ["config.json", "vocab.json", "checkpoint.json", "model.safetensors", "last.safetensors",
         "trainer_state.pt", "history.jsonl"]


def plant(run: Path, slot: str, data: bytes, fix_checksums: bool) -> None:
    """Put ``data`` in ``slot`` of the run; with ``fix_checksums``, update the checksums that bind it
    (config.json's "files", the manifest's), as a careful attacker would."""
    manifest = json.loads((run / "checkpoint.json").read_text())
    if slot in ("model.safetensors", "last.safetensors", "trainer_state.pt", "history.jsonl"):
        target = run / manifest["folder"] / slot
        target.unlink()
        target.write_bytes(data)
        if fix_checksums:
            manifest["files"][slot] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            (run / "checkpoint.json").write_text(json.dumps(manifest))
    else:
        (run / slot).write_bytes(data)
        if fix_checksums and slot == "vocab.json":
            config = json.loads((run / "config.json").read_text())
            config["files"]["vocab.json"] = hashlib.sha256(data).hexdigest()
            (run / "config.json").write_text(json.dumps(config))


def load_everything(run: Path) -> None:
    """What the commands do with a run folder: load it, generate, evaluate, read its state."""
    from rnnkit.tasks import lm
    from rnnkit.train import RunFolder
    try:
        loaded = lm.load(run)
        lm.generate(loaded, "a", 3, seed=0, unk="replace")
        folder = RunFolder(run)
        folder.load_trainer_state()
        folder.read_history()
    except RnnkitError:
        pass


@pytest.mark.parametrize("slot", SLOTS)
def test_run_folder_slots(tiny_run, tmp_path_factory, slot):
    import shutil
    original = (tiny_run / slot).read_bytes() if (tiny_run / slot).is_file() else \
        (tiny_run / json.loads((tiny_run / "checkpoint.json").read_text())["folder"] / slot).read_bytes()

    @settings(max_examples=max(10, EXAMPLES // 5), deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(payloads(original[:4000]), st.booleans())
    def fuzz(data, fix):
        run = tmp_path_factory.mktemp("copy") / "run"
        shutil.copytree(tiny_run, run)
        plant(run, slot, data, fix)
        load_everything(run)

    fuzz()
