"""Translation from Python: an attention encoder-decoder (bidirectional GRU encoder, Luong "general"
attention) on the Tatoeba English-French sentence pairs -- train it, score it by BLEU and chrF on the
held-out test sources (greedy and beam search), translate new sentences. The same steps as
`rnnkit train --task translate`, `rnnkit evaluate` and `rnnkit translate`, through
`rnnkit.tasks.translate`.

    python examples/recipe_translate.py                            # 5 minutes on the pairs of <= 10 words
    RNNKIT_EXAMPLES_TINY=1 python examples/recipe_translate.py     # the first 3,000 pairs: a smoke run
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from rnnkit.tasks import translate as tr

DATA = Path(os.environ.get("RNNKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
SENTENCES = ["Who are you?", "I'm cold.", "Go away!", "Thank you."]


def main(out: str | None = None) -> dict:
    tiny = os.environ.get("RNNKIT_EXAMPLES_TINY") == "1"
    run = Path(out or tempfile.mkdtemp(prefix="rnnkit-translate-")) / "run"
    if tiny:   # the file's first pairs are its shortest (1-3 words); a small model, 6 passes
        budget = dict(max_pairs=3000, hidden=64, embedding=64, epochs=6, lr=1e-2, eval_every=100,
                      beam=3)
    else:
        budget = dict(minutes=5)
    # 2% of the distinct English sentences held out for validation, 5% for the test
    result = tr.train(str(DATA / "fra-eng.txt"), out=run, progress=False, echo=None, **budget)
    print(result.message)

    scores = tr.evaluate(run)                             # the test split, greedy and the run's beam
    print(tr.format_evaluation(scores), end="")

    with warnings.catch_warnings(record=True) as caught:  # words the vocabulary lacks read as <unk>
        warnings.simplefilter("always")
        french = tr.translate(run, SENTENCES, beam=3)
    for english, translation in zip(SENTENCES, french):
        print(f"  {english:<14} -> {translation}")
    for w in caught:
        print(f"  (note: {w.message})")
    return {"result": result, "scores": scores, "translations": french}


if __name__ == "__main__":
    main()
