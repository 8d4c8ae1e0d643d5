"""The word-level activation report of a tagger and of a classifier in a real headless Chromium: units
of both directions listed, each word coloured by the chosen unit's recorded activation, the picker
(click, search, sort) changing the colouring and the list, one line per sentence (text), and the
hover showing the tagger's tag probabilities / the classifier's label probabilities and attention
weight; and ``rnnkit explain`` end to end on a CoNLL-U file and on labelled lines."""
from __future__ import annotations

import json
import re

import numpy as np

from rnnkit.cli.main import main
from rnnkit.viz import activations, render_report
from rnnkit.viz.report import WORD_CHUNK

SENTENCES = "\n".join(["The cat sat on the mat .", "I saw John in New York yesterday !",
                       "Where is the station ?"] * 30)
TEXTS = "\n".join(["Great phone , works well .", "It broke after a day and support never answered .",
                   "Not bad at all", "terrible battery"] * 10)

# Runs inside the page after its own script: drives the picker and the hover through real DOM events
# and writes what it saw into <pre id="test-result"> for --dump-dom.
PROBE = """
<script>
function runProbe() {
  var R = {}, list = document.getElementById("unit-list");
  function spans() { return document.querySelectorAll("#text .chunk.rendered span"); }
  function colours(n) {
    var out = [], s = spans();
    for (var i = 0; i < Math.min(n, s.length); i++) out.push(getComputedStyle(s[i]).backgroundColor);
    return out;
  }
  R.units = Array.prototype.map.call(list.children, function (li) { return li.firstChild.textContent; });
  R.chunks = document.querySelectorAll("#text .chunk").length;
  R.first_chunk_text = document.querySelector("#text .chunk.rendered").textContent;
  R.before = colours(40);
  R.tips = [];
  [3, 9].forEach(function (i) {
    spans()[i].dispatchEvent(new MouseEvent("mousemove", {bubbles: true, clientX: 50, clientY: 50}));
    R.tips.push(document.getElementById("tip").innerText);
  });
  list.querySelector('li[data-unit="TARGET"]').dispatchEvent(new MouseEvent("click", {bubbles: true}));
  R.after = colours(40);
  R.selected = list.querySelector("li.selected").firstChild.textContent;
  var sel = document.getElementById("unit-sort");
  sel.value = "SORT";
  sel.dispatchEvent(new Event("change", {bubbles: true}));
  R.sorted_first = list.children[0].firstChild.textContent;
  var search = document.getElementById("unit-search");
  search.value = "L1b";
  search.dispatchEvent(new Event("input", {bubbles: true}));
  R.search = Array.prototype.map.call(list.children, function (li) { return li.firstChild.textContent; });
  var pre = document.createElement("pre");
  pre.id = "test-result";
  pre.textContent = JSON.stringify(R);
  document.body.appendChild(pre);
}
</script>
"""


def rgba(css: str) -> tuple[float, ...]:
    nums = [float(v) for v in re.findall(r"[\d.]+", css)]
    return (nums[0], nums[1], nums[2], nums[3] if len(nums) > 3 else 1.0)


def check_page(chromium, acts, tmp_path, sort_by: str) -> tuple[dict, dict]:
    page = render_report(acts, title="test")
    assert "http://" not in page and "https://" not in page     # nothing to fetch at view time
    data = json.loads(re.search(r'type="application/json">(.*?)</script>', page, re.S).group(1))
    names, matrix = acts.unit_names(), acts.unit_matrix()
    target = 7 if data["initial"] != 7 else 8
    script = PROBE.replace("TARGET", str(target)).replace("SORT", sort_by)
    r = chromium.probe(page, script, tmp_path)
    assert sorted(r["units"]) == sorted(names)                   # every unit, both directions, listed
    q = np.clip(np.round(matrix / np.maximum(1, np.abs(matrix).max(0)) * 127), -127, 127).astype(int)
    for key, u in (("before", data["initial"]), ("after", target)):
        assert len(r[key]) == 40
        for t, css in enumerate(r[key]):
            v = q[t, u] / 127
            want = (214, 39, 40, round(v, 3)) if v >= 0 else (31, 119, 180, round(-v, 3))
            got = rgba(css)
            assert got[:3] == want[:3] and abs(got[3] - want[3]) < 0.01, (key, t, css, want)
    assert r["before"] != r["after"] and r["selected"] == names[target]
    assert r["sorted_first"] == names[int(np.nanargmax(np.abs(acts.correlations()[sort_by])))]
    assert r["search"] and all(n.startswith("L1b ") for n in r["search"])
    # whole sentences (texts) per chunk, one per line
    a, b = acts.segments[0][0], acts.segments[0][1]
    first = r["first_chunk_text"].split("\n")
    assert first[0] == acts.joiner.join(acts.tokens[a:b])
    assert r["chunks"] >= len(acts.tokens) // WORD_CHUNK
    return r, data


def test_tagger_report_in_browser(chromium, tag_run, tmp_path):
    acts = activations(tag_run, SENTENCES)
    r, data = check_page(chromium, acts, tmp_path, "position in sentence")
    for t, tip in zip((3, 9), r["tips"]):
        lines = tip.splitlines()
        assert lines[0].startswith(f"{acts.tokens[t]}, sentence ") and lines[1] == f"tag: {acts.predicted[t]}"
        top = np.argsort(-acts.probs[t])[:data["k"]]
        assert data["k"] == min(5, len(acts.labels)) and len(lines) == 2 + data["k"], tip
        for line, k in zip(lines[2:], top):
            name, pct = line.rsplit(" ", 2)[-2:]
            assert name == acts.labels[k] and abs(float(pct.rstrip("%")) - 100 * acts.probs[t, k]) < 0.5


def test_classifier_report_in_browser(chromium, classify_run, tmp_path):
    acts = activations(classify_run, TEXTS)
    label = f"label {acts.predicted[0]}"
    if np.all(np.isnan(acts.correlations()[label])):    # every text got the same label
        label = "position in text"
    r, data = check_page(chromium, acts, tmp_path, label)
    for t, tip in zip((3, 9), r["tips"]):
        s = int(np.searchsorted([b for _, b in acts.segments], t, side="right"))
        lines = tip.splitlines()
        assert len(lines) == 3 + data["k"] == 3 + len(acts.labels), tip
        assert lines[1] == f"text's label: {acts.predicted[s]}"
        for line, k in zip(lines[2:2 + data["k"]], np.argsort(-acts.probs[s])):
            name, pct = line.rsplit(" ", 2)[-2:]
            assert name == acts.labels[k] and abs(float(pct.rstrip("%")) - 100 * acts.probs[s, k]) < 0.5
        assert lines[-1] == f"attention weight: {acts.attention[t]:.3f}"


def test_explain_command_on_conllu_and_labelled_lines(chromium, tag_run, classify_run, data_dir, tmp_path,
                                                      capsys):
    conllu = tmp_path / "few.conllu"
    blocks = (data_dir / "ud-english-ewt" / "en_ewt-ud-dev.conllu").read_text(encoding="utf-8").split("\n\n")
    conllu.write_text("\n\n".join(blocks[:12]) + "\n\n", encoding="utf-8")
    out = tmp_path / "tag.html"
    assert main(["explain", str(tag_run), "--text", str(conllu), "--out", str(out), "--max-words", "60"]) == 0
    said = capsys.readouterr().out
    m = re.search(r"wrote .*: (\d+) sentence\(s\), ([\d,]+) words \(whole sentence\(s\) up to --max-words "
                  r"60\), \d+ of \d+ units", said)
    assert m, said
    page = out.read_text(encoding="utf-8")
    assert "whose gold tag is" in page                           # CoNLL-U tags read as gold
    assert int(m.group(2)) <= 60
    shot = chromium.screenshot(out, tmp_path / "tag.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    labelled = tmp_path / "labelled.tsv"
    lines = (data_dir / "sentiment-labelled-sentences" / "yelp_labelled.txt").read_text(
        encoding="utf-8").split("\n")
    labelled.write_text("\n".join(ln for ln in lines[:20] if ln.strip()) + "\n", encoding="utf-8")
    out = tmp_path / "classify.html"
    assert main(["explain", str(classify_run), "--text", str(labelled), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert re.search(r"wrote .*: 20 text\(s\), [\d,]+ words, \d+ of \d+ units \(hidden and cell states "
                     r"of 2 bidirectional layer\(s\)\)", said), said
    assert "whose gold label is" in out.read_text(encoding="utf-8")
    assert main(["explain", str(tag_run), "--text", str(conllu), "--max-words", "0"]) != 0
    assert "--max-words must be between 1" in capsys.readouterr().err


def test_long_input_renders_lazily(chromium, classify_run, tmp_path):
    texts = "\n".join([TEXTS] * 60)                                       # 2,400 texts, 13,200 words
    acts = activations(classify_run, texts)
    page = render_report(acts)
    n_chunks = len(json.loads(re.search(r'type="application/json">(.*?)</script>', page, re.S).group(1))
                   ["chunks"])
    assert n_chunks >= len(acts.tokens) // WORD_CHUNK >= 20
    r = chromium.probe(page, """<script>setTimeout(function () {
      var pre = document.createElement("pre"); pre.id = "test-result";
      pre.textContent = JSON.stringify({chunks: document.querySelectorAll("#text .chunk").length,
        rendered: document.querySelectorAll("#text .chunk.rendered").length,
        spans: document.querySelectorAll("#text span").length});
      document.body.appendChild(pre); }, 1000);</script>""", tmp_path)
    assert r["chunks"] == n_chunks
    assert 1 <= r["rendered"] <= 5 and r["spans"] <= 5 * WORD_CHUNK, r      # only what is near the screen
