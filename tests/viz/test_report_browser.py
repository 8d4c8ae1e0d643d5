"""The activation report in a real headless Chromium: units listed, characters coloured by the chosen
unit's recorded activations, the picker (click, search, sort) changing the colouring and the list, a
100,000-character text rendered lazily within the stated size; and `rnnkit explain` end to end."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from rnnkit.data.vocab import CharVocab
from rnnkit.tasks.lm import LanguageModel
from rnnkit.viz import activations, render_report
from rnnkit.viz.report import CHUNK, MAX_BYTES, MAX_CHARS

TEXT = ('def greet(name):\n    """Say hello."""\n    if name:\n        print("hello, " + name)\n'
        '    return [len(name), {"a": (1, 2)}]\n') * 12

# Runs inside the page after its own script: drives the picker through real DOM events and writes
# what it saw into <pre id="test-result"> for --dump-dom.
PROBE = """
<script>
function runProbe() {
  var R = {}, list = document.getElementById("unit-list");
  function colours(n) {
    var out = [], spans = document.querySelectorAll("#text .chunk.rendered span");
    for (var i = 0; i < Math.min(n, spans.length); i++) out.push(getComputedStyle(spans[i]).backgroundColor);
    return out;
  }
  R.units = Array.prototype.map.call(list.children, function (li) { return li.firstChild.textContent; });
  R.chunks = document.querySelectorAll("#text .chunk").length;
  R.rendered = document.querySelectorAll("#text .chunk.rendered").length;
  R.before = colours(60);
  R.current_before = document.getElementById("current").textContent;
  var span = document.querySelectorAll("#text .chunk.rendered span")[7];
  span.dispatchEvent(new MouseEvent("mousemove", {bubbles: true, clientX: 50, clientY: 50}));
  var tip = document.getElementById("tip");
  R.tip_display = tip.style.display;
  R.tip = tip.innerText;
  var target = list.querySelector('li[data-unit="TARGET"]');
  target.dispatchEvent(new MouseEvent("click", {bubbles: true}));
  R.after = colours(60);
  R.selected = list.querySelector("li.selected").firstChild.textContent;
  var sel = document.getElementById("unit-sort");
  sel.value = "position in line";
  sel.dispatchEvent(new Event("change", {bubbles: true}));
  R.sorted_first = list.children[0].firstChild.textContent;
  var search = document.getElementById("unit-search");
  search.value = "L2";
  search.dispatchEvent(new Event("input", {bubbles: true}));
  R.search_L2 = Array.prototype.map.call(list.children, function (li) { return li.firstChild.textContent; });
  search.value = "3";
  search.dispatchEvent(new Event("input", {bubbles: true}));
  R.search_3 = Array.prototype.map.call(list.children, function (li) { return li.firstChild.textContent; });
  var pre = document.createElement("pre");
  pre.id = "test-result";
  pre.textContent = JSON.stringify(R);
  document.body.appendChild(pre);
}
</script>
"""


def rgba(css: str) -> tuple[float, float, float, float]:
    nums = [float(v) for v in re.findall(r"[\d.]+", css)]
    return (nums[0], nums[1], nums[2], nums[3] if len(nums) > 3 else 1.0)


def expected_colour(q: int) -> tuple[float, float, float, float]:
    v = q / 127
    return (214, 39, 40, round(v, 3)) if v >= 0 else (31, 119, 180, round(-v, 3))


def small_model(text: str):
    torch.manual_seed(0)
    vocab = CharVocab.from_text(text)
    return LanguageModel(len(vocab), cell="lstm", hidden=8, layers=2), vocab


def probe(chromium, page: str, tmp_path: Path, target: int) -> dict:
    return chromium.probe(page, PROBE.replace("TARGET", str(target)), tmp_path, min_spans=60)


def test_report_in_browser(chromium, tmp_path):
    model, vocab = small_model(TEXT)
    acts = activations((model, vocab), TEXT)
    page = render_report(acts, title="test")
    data = json.loads(re.search(r'<script id="report-data" type="application/json">(.*?)</script>',
                                page, re.S).group(1))
    assert "http://" not in page and "https://" not in page     # nothing to fetch at view time
    names, matrix = acts.unit_names(), acts.unit_matrix()
    target = 21                                                  # any unit but the initial one
    assert data["initial"] != target
    r = probe(chromium, page, tmp_path, target)

    assert r["units"][:3] and sorted(r["units"]) == sorted(names)          # every unit listed
    q = np.clip(np.round(matrix / np.maximum(1, np.abs(matrix).max(0)) * 127), -127, 127).astype(int)
    for key, unit in (("before", data["initial"]), ("after", target)):
        assert len(r[key]) == 60
        for t, css in enumerate(r[key]):
            got, want = rgba(css), expected_colour(q[t, unit])
            assert got[:3] == want[:3] and abs(got[3] - want[3]) < 0.01, (key, t, css, want)
    assert r["before"] != r["after"]                               # the picker changed the colouring
    # hovering character 7 shows the model's five most likely next characters with their probabilities
    assert r["tip_display"] == "block"
    top = np.argsort(-acts.probs[7])[:5]
    shown = [line.rsplit(" ", 2) for line in r["tip"].splitlines()[2:7]]
    for (tok, pct), k in zip(((parts[-2], parts[-1]) for parts in shown), top):
        want = {"\n": "\u21b5", " ": "\u2423"}.get(acts.tokens[k], acts.tokens[k])
        assert tok == want and abs(float(pct.rstrip("%")) - 100 * acts.probs[7, k]) < 0.5, (tok, pct)
    assert r["tip"].splitlines()[-1] == "actual: " + {"\n": "\u21b5", " ": "\u2423"}.get(TEXT[8], TEXT[8])
    assert f"unit {names[data['initial']]} " in r["current_before"]
    assert r["selected"] == names[target]
    pos = acts.correlations()["position in line"]
    assert r["sorted_first"] == names[int(np.nanargmax(np.abs(pos)))]
    assert r["search_L2"] and all(n.startswith("L2 ") for n in r["search_L2"])
    assert sorted(r["search_3"]) == sorted(n for n in names if n.split()[1][1:] == "3")


def test_long_text_renders_lazily_within_the_size_limit(chromium, tmp_path):
    rng = np.random.default_rng(0)
    words = ["time", "traveller", "(said", "he)", '"yes"', "\n", "    ", "machine", "[", "]"]
    text = " ".join(rng.choice(words, size=40_000))[:MAX_CHARS]
    assert len(text) == MAX_CHARS
    model, vocab = small_model(text)
    page = render_report(activations((model, vocab), text))
    assert len(page.encode()) < MAX_BYTES
    r = probe(chromium, page, tmp_path, target=3)
    assert r["chunks"] == -(-MAX_CHARS // CHUNK)
    assert 1 <= r["rendered"] <= 5, r["rendered"]                  # only what is near the screen
    assert len(r["units"]) == 2 * 8 * 2


def test_units_beyond_the_size_limit_are_chosen_and_said():
    model, vocab = small_model(TEXT)
    acts = activations((model, vocab), TEXT)
    page = render_report(acts, max_bytes=len(render_report(acts)) - 4 * len(TEXT))
    data = json.loads(re.search(r'type="application/json">(.*?)</script>', page, re.S).group(1))
    assert 0 < len(data["units"]) < len(acts.unit_names())
    assert "left out to keep the file under" in page


def test_explain_command_writes_the_report_and_a_screenshot(chromium, tmp_path, capsys):
    from rnnkit.cli.main import main
    from rnnkit.tasks import lm

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 3)
    lm.train(str(corpus), out=tmp_path / "run", steps=4, hidden=16, layers=2, cell="lstm", batch_size=4,
             seq_len=16, progress=False, echo=None, sample_length=0)
    sample = tmp_path / "sample.txt"
    sample.write_text(TEXT)
    out = tmp_path / "report.html"
    assert main(["explain", str(tmp_path / "run"), "--text", str(sample), "--out", str(out)]) == 0
    assert f"wrote {out}: {len(TEXT):,} characters" in capsys.readouterr().out
    assert out.read_text().startswith("<!DOCTYPE html>")
    shot = chromium.screenshot(out, tmp_path / "report.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert main(["explain", str(tmp_path / "run"), "--text", str(tmp_path / "missing.txt")]) != 0
    err = capsys.readouterr().err
    assert "--text" in err and "missing.txt" in err and "is not a file" in err
