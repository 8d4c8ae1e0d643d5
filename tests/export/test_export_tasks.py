"""Every task's model exported to ONNX (run in onnxruntime) and to .pt2 (run in a fresh process that
cannot import rnnkit), compared with rnnkit itself on a whole padded batch: forecasting (and the
scaling a consumer applies from export.json), classification (and the padding invariance of the
exported graph), tagging with a CRF (emission scores, the CRF's scores in export.json) and translation
(encoder + one-step decoder: 25 greedy steps against rnnkit's own greedy decoding, same tokens).

Each task trains for two steps on a tiny slice (one run per module, shared by its tests)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.export import MANIFEST, export_run, load_runner
from rnnkit.tasks import base, get_task

TOL = 1e-5
FRESH = Path(__file__).with_name("fresh_graphs.py")
TINY = dict(steps=2, progress=False, echo=None)


def export_both(run: Path, root: Path) -> dict[str, Path]:
    return {fmt: export_run(run, fmt, root / f"export-{fmt}").path for fmt in ("onnx", "pt2")}


def run_fresh(folder: Path, calls, tmp: Path, greedy=None) -> dict:
    """The .pt2 graphs of ``folder`` in a new interpreter with torch and without rnnkit."""
    torch.save({"calls": calls, "greedy": greedy}, tmp / "inputs.pt")
    site = str(Path(torch.__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([sys.executable, "-I", "-S", str(FRESH), site, str(folder),
                           str(tmp / "inputs.pt"), str(tmp / "outputs.pt")],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = torch.load(tmp / "outputs.pt", weights_only=True)
    assert not any(m == "rnnkit" or m.startswith("rnnkit.") for m in out["modules"])
    return out


def compare_all(got, want, what, assert_close):
    assert len(got) == len(want), f"{what}: {len(got)} outputs, rnnkit gives {len(want)}"
    for i, (a, b) in enumerate(zip(got, want)):
        if b.dtype == torch.bool:
            assert torch.equal(a, b), f"{what}: output {i} (a mask) differs"
        else:
            assert_close(a, b, f"{what}: output {i}", TOL)


def check_both_formats(exports, graph: str, inputs, want, tmp_path, assert_close):
    """ONNX in onnxruntime and the .pt2 in a fresh process give rnnkit's outputs ``want``."""
    compare_all(load_runner("onnx", exports["onnx"] / f"{graph}.onnx")(*inputs), want,
                f"{graph} ONNX in onnxruntime", assert_close)
    fresh = run_fresh(exports["pt2"], [(graph, list(inputs))], tmp_path)
    compare_all(fresh["calls"][0], want, f"{graph} .pt2 in a fresh process", assert_close)


def padded(rows: list[list[int]], pad: int, extra: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, T + extra)`` ids padded with ``pad`` and the lengths ``(B,)``."""
    T = max(map(len, rows)) + extra
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    return ids, torch.tensor([len(r) for r in rows])


# -- forecasting ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def forecast(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    run = root / "run"
    base.train(get_task("forecast"), out=run, data=str(data_dir / "timeseries" / "airline-passengers.csv"),
               hidden=8, lookback=24, horizon=6, quantiles="0.1,0.5,0.9", **TINY)
    return run, export_both(run, root)


def test_forecast_exports_give_rnnkits_numbers(forecast, tmp_path, assert_close):
    run, exports = forecast
    task = get_task("forecast").load(run)
    origins = list(range(task.lookback, task.lookback + 9))
    x, _, _ = task.windows(origins)                                     # (9, L, C) scaled
    with torch.no_grad():
        want = (task.model(x),)
    check_both_formats(exports, "model", (x,), want, tmp_path, assert_close)


def test_forecast_scaling_in_export_json_reproduces_rnnkits_forecasts(forecast, data_dir):
    """A consumer with the raw series, export.json and model.onnx gets `forecast_at`'s numbers."""
    run, exports = forecast
    manifest = json.loads((exports["onnx"] / MANIFEST).read_text())
    s = manifest["scaling"]
    assert s == {**json.loads((run / "config.json").read_text())["scaling"], "normalize": "window",
                 "in": s["in"], "out": s["out"]}
    with open(data_dir / "timeseries" / "airline-passengers.csv", newline="") as f:
        raw = np.array([float(r[1]) for r in list(csv.reader(f))[1:]])
    L, H, season = s["lookback"], manifest["horizon"], s["season"]
    mean, std, k = s["mean"][0], s["std"][0], s["std"][0] / s["step_std"]
    origins = list(range(L, L + 9))
    x = np.stack([(raw[t - L:t] - mean) / std for t in origins])        # (B, L) z-scores
    x = (x - x[:, -1:]) * k                                             # each window from its last value
    if s["reference"] == "seasonal":
        ref = np.stack([[raw[t - season + h % season] for h in range(H)] for t in origins])
    else:
        ref = np.stack([np.full(H, raw[t - 1]) for t in origins])
    onnx = load_runner("onnx", exports["onnx"] / "model.onnx")
    y = onnx(torch.tensor(x[:, :, None], dtype=torch.float32))[0]
    forecast = (y.double().numpy() / k + (ref[:, :, None] - mean) / std) * std + mean   # (B, H, Q)
    want = get_task("forecast").load(run).forecast_at(origins)
    np.testing.assert_allclose(forecast, want, rtol=1e-5, atol=1e-4)
    assert manifest["quantiles"] == [0.1, 0.5, 0.9]


def test_cli_exports_a_forecast_run(forecast, tmp_path, capsys):
    run, _ = forecast
    assert main(["export", str(run), "--format", "pt2", "--out", str(tmp_path / "e")]) == 0
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["config.json", MANIFEST, "model.pt2"]


# -- classification ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classify(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("classify")
    lines = (data_dir / "sentiment-labelled-sentences" / "amazon_cells_labelled.txt").read_text(
        encoding="utf-8").splitlines()[:80]
    (root / "tiny.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = root / "run"
    base.train(get_task("classify"), out=run, data=str(root / "tiny.txt"), cell="lstm", hidden=8,
               embedding=8, layers=2, pooling="attention", **TINY)
    return run, export_both(run, root)


def classify_batch(run, extra: int = 0):
    from rnnkit.tasks.classify import load
    loaded = load(run)
    V = loaded.model.vocab_size
    g = torch.Generator().manual_seed(5)
    rows = [torch.randint(2, V, (n,), generator=g).tolist() for n in (9, 3, 1, 6)]
    return loaded, rows, *padded(rows, loaded.pad_id, extra)


def subword_ids(loaded, rows, time: int):
    """The rows' words' n-gram ids ``(B, time, S)``, as rnnkit computes them (None without subwords)."""
    from rnnkit.tasks.classify.subwords import encode_subwords, pad_subwords
    buckets = loaded.model.subwords
    if not buckets:
        return None
    return pad_subwords([encode_subwords([loaded.vocab.tokens[i] for i in r], buckets) for r in rows],
                        time)


def model_inputs(loaded, rows, ids, lengths) -> tuple:
    """What the classifier reads: ids, lengths, and its subword ids and text n-gram ids where it was
    built with them (as rnnkit computes them from the rows' words)."""
    from rnnkit.tasks.classify.nbsvm import pad_ngrams, text_ngram_ids
    inputs = (ids, lengths)
    if loaded.model.subwords:
        inputs += (subword_ids(loaded, rows, ids.shape[1]),)
    if loaded.model.ngrams:
        inputs += (pad_ngrams([text_ngram_ids([loaded.vocab.tokens[i] for i in r], loaded.model.ngrams)
                               for r in rows]),)
    return inputs


def test_classify_exports_give_rnnkits_numbers_on_a_padded_batch(classify, tmp_path, assert_close):
    run, exports = classify
    loaded, rows, ids, lengths = classify_batch(run)
    inputs = model_inputs(loaded, rows, ids, lengths)
    # the default classifier reads subword features and, for its n-gram branch, word n-grams
    assert len(inputs) == 4 and loaded.model.subwords and loaded.model.ngrams
    with torch.no_grad():
        want = (loaded.model(*inputs),)
    check_both_formats(exports, "model", inputs, want, tmp_path, assert_close)


def test_classify_exported_graph_is_padding_invariant(classify, assert_close):
    """Each text alone (no padding) and in a batch padded 5 steps past its longest text, with
    garbage ids in the padding: the same logits from the exported graph."""
    run, exports = classify
    loaded, rows, ids, lengths = classify_batch(run, extra=5)
    ids = ids.masked_fill(torch.arange(ids.shape[1]) >= lengths.unsqueeze(1), 7)   # not <pad>
    onnx = load_runner("onnx", exports["onnx"] / "model.onnx")
    together = onnx(*model_inputs(loaded, rows, ids, lengths))[0]
    for i, r in enumerate(rows):
        alone = onnx(*model_inputs(loaded, [r], torch.tensor([r]), torch.tensor([len(r)])))[0]
        assert_close(together[i:i + 1], alone, f"text {i} batched and padded vs alone", TOL)


def test_a_classifier_ensemble_exports_as_one_graph_of_its_mean_probabilities(data_dir, tmp_path,
                                                                               assert_close):
    """``--ensemble 2``: the graph's softmax is the mean of the two members' probabilities (each
    member run alone in rnnkit), in onnxruntime and in a fresh process."""
    lines = (data_dir / "sentiment-labelled-sentences" / "yelp_labelled.txt").read_text(
        encoding="utf-8").splitlines()[:60]
    (tmp_path / "tiny.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    base.train(get_task("classify"), out=run, data=str(tmp_path / "tiny.txt"), cell="gru", hidden=6,
               embedding=6, bidirectional=False, subwords=200, ngrams=300, ensemble=2, **TINY)
    exports = export_both(run, tmp_path)
    assert json.loads((exports["onnx"] / "export.json").read_text())["ensemble"] == 2
    loaded, rows, ids, lengths = classify_batch(run)
    inputs = model_inputs(loaded, rows, ids, lengths)
    assert len(inputs) == 4 and loaded.model.ngrams == 300   # with the NB n-gram branch's ids
    with torch.no_grad():
        members = torch.stack([torch.softmax(m(*inputs), 1) for m in loaded.model.members])
    got = load_runner("onnx", exports["onnx"] / "model.onnx")(*inputs)[0]
    assert_close(torch.softmax(got, 1), members.mean(0), "ensemble ONNX vs the members' mean", TOL)
    with torch.no_grad():
        want = (loaded.model(*inputs),)
    check_both_formats(exports, "model", inputs, want, tmp_path, assert_close)


# -- tagging (with a CRF) ---------------------------------------------------------------------------
def _tag_run(data_dir, tmp_path_factory, **options):
    root = tmp_path_factory.mktemp("tag")
    src = data_dir / "ud-english-ewt"
    for name, n in (("en_ewt-ud-train.conllu", 60), ("en_ewt-ud-dev.conllu", 15)):
        blocks = src.joinpath(name).read_text(encoding="utf-8").split("\n\n")[:n]
        (root / "data").mkdir(exist_ok=True)
        (root / "data" / name).write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    run = root / "run"
    base.train(get_task("tag"), out=run, data=str(root / "data"), hidden=8, embedding=8,
               char_embedding=4, char_hidden=4, layers=2, **options, **TINY)
    return run, export_both(run, root)


@pytest.fixture(scope="module")
def tag(data_dir, tmp_path_factory):
    return _tag_run(data_dir, tmp_path_factory, crf=True)


def _tag_inputs(run):
    from rnnkit.tasks.tag_api import load
    from rnnkit.tasks.tag_data import Sentence
    from rnnkit.tasks.tag_encode import encode, make_batch
    loaded = load(run)
    words = [["The", "cat", "sat", "on", "the", "mat", "."], ["Hello", "!"], ["Zyzzyva"]]
    sentences = [Sentence(w, ["_"] * len(w), list(range(len(w)))) for w in words]
    split = encode(sentences, loaded.vocabs, max_word_chars=loaded.config.max_word_chars, with_tags=False)
    batch = make_batch(split, list(range(len(words))))
    return loaded, batch, (batch.words, batch.lengths, batch.chars, batch.char_lengths, batch.forms)


def test_tag_export_with_the_character_cnn(data_dir, tmp_path_factory, tmp_path, assert_close):
    run, exports = _tag_run(data_dir, tmp_path_factory, char_encoder="cnn", char_widths="1,2,3")
    loaded, batch, inputs = _tag_inputs(run)
    with torch.no_grad():
        want = (loaded.model(batch),)
    check_both_formats(exports, "model", inputs, want, tmp_path, assert_close)
    assert json.loads((exports["onnx"] / MANIFEST).read_text())["vocabulary"]["char_widths"] == [1, 2, 3]


def test_tag_exports_give_rnnkits_emission_scores_and_crf(tag, tmp_path, assert_close):
    from rnnkit.tasks.tag_api import load
    from rnnkit.tasks.tag_data import Sentence
    from rnnkit.tasks.tag_encode import encode, make_batch
    run, exports = tag
    loaded = load(run)
    words = [["The", "cat", "sat", "on", "the", "mat", "."], ["Hello", "!"], ["Zyzzyva"]]
    sentences = [Sentence(w, ["_"] * len(w), list(range(len(w)))) for w in words]
    split = encode(sentences, loaded.vocabs, max_word_chars=loaded.config.max_word_chars, with_tags=False)
    batch = make_batch(split, list(range(len(words))))
    inputs = (batch.words, batch.lengths, batch.chars, batch.char_lengths, batch.forms)
    with torch.no_grad():
        want = (loaded.model(batch),)
    assert want[0].shape[:2] == (3, 7)
    check_both_formats(exports, "model", inputs, want, tmp_path, assert_close)

    # Viterbi by the consumer from export.json's CRF scores: rnnkit's own tags
    manifest = json.loads((exports["onnx"] / MANIFEST).read_text())
    crf = manifest["crf"]
    emissions = load_runner("onnx", exports["onnx"] / "model.onnx")(*inputs)[0]
    trans, start, end = (torch.tensor(crf[k], dtype=torch.float64) for k in ("transitions", "start", "end"))
    for i, n in enumerate(batch.lengths.tolist()):
        e = emissions[i, :n].double()
        score, back = start + e[0], []
        for t in range(1, n):
            best, arg = (score.unsqueeze(1) + trans).max(0)
            back.append(arg)
            score = best + e[t]
        path = [int((score + end).argmax())]
        for arg in reversed(back):
            path.append(int(arg[path[-1]]))
        assert path[::-1] == loaded.model.decode(batch)[i], f"sentence {i}: Viterbi from export.json"


# -- translation ------------------------------------------------------------------------------------
STEPS = 25


@pytest.fixture(scope="module")
def translate(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("translate")
    lines = (data_dir / "fra-eng.txt").read_text(encoding="utf-8").splitlines()[:1500]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = root / "run"
    base.train(get_task("translate"), out=run, data=str(root / "pairs.txt"), max_pairs=300, cell="lstm",
               hidden=8, embedding=8, layers=2, eval_sentences=8, beam=1, **TINY)
    return run, export_both(run, root)


def test_translate_greedy_steps_outside_python_match_rnnkit(translate, tmp_path, assert_close):
    from rnnkit.decode import greedy
    from rnnkit.tasks.translate import load
    run, exports = translate
    loaded = load(run)
    model, sv, tv = loaded.model, loaded.src_vocab, loaded.tgt_vocab
    g = torch.Generator().manual_seed(11)
    rows = [torch.randint(4, len(sv), (n,), generator=g).tolist() + [sv.eos_id] for n in (6, 2, 4)]
    src, src_len = padded(rows, sv.pad_id)
    with torch.no_grad():
        memory, keys, mask, state = model.encode(src.t(), src_len)
    check_both_formats(exports, "encoder", (src, src_len), (memory, keys, mask, *state), tmp_path,
                       assert_close)

    # rnnkit's own greedy decoding (its stepper and rnnkit.decode.greedy), no <eos> stop
    stepper, seen = model.stepper(), []

    def step(tokens, st):
        scores, st = stepper.step(tokens, st)
        seen.append(scores)
        return scores, st
    scores, st = stepper.prime(src.t(), src_len, tv.bos_id)
    seen.append(scores)
    want_tokens = greedy(step, scores, st, STEPS)
    want_lp = torch.stack(seen[:STEPS], 1)

    n = len(state)
    onnx_enc = load_runner("onnx", exports["onnx"] / "encoder.onnx")
    onnx_dec = load_runner("onnx", exports["onnx"] / "decoder.onnx")
    memory, keys, mask, *st = onnx_enc(src, src_len)
    token, tokens, lps = torch.full((3,), tv.bos_id), [], []
    for _ in range(STEPS):
        lp, *rest = onnx_dec(token, *st, memory, keys, mask)
        st, token = rest[:n], lp.argmax(-1)
        tokens.append(token)
        lps.append(lp)
    fresh = run_fresh(exports["pt2"], [], tmp_path, greedy={"src": src, "src_len": src_len, "steps": STEPS,
                                                            "n_state": n, "bos": tv.bos_id})["greedy"]
    for what, got_tokens, got_lp in (("ONNX", torch.stack(tokens, 1), torch.stack(lps, 1)),
                                     (".pt2 in a fresh process", fresh["tokens"], fresh["log_probs"])):
        assert torch.equal(got_tokens, want_tokens), f"{what}: greedy tokens differ from rnnkit's"
        assert_close(got_lp, want_lp, f"{what}: log-probabilities over {STEPS} steps", TOL)


def test_translate_manifest_names_the_decoding_contract(translate):
    _, exports = translate
    m = json.loads((exports["onnx"] / MANIFEST).read_text())
    dec = m["graphs"]["decoder"]
    assert [i["name"] for i in dec["inputs"]] == ["token", "h", "c", "memory", "keys", "src_mask"]
    assert [o["name"] for o in dec["outputs"]] == ["log_probs", "h_n", "c_n", "attention"]
    assert dec["outputs"][3]["shape"] == ["batch", "source"]
    assert m["graphs"]["encoder"]["inputs"][0]["shape"] == ["batch", "source"]
    assert set(m["files"]) == {"src_vocab.json", "tgt_vocab.json", "config.json"}
