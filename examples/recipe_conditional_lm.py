"""A conditional language model from Python (1→N): a character LSTM whose initial state comes from a
class label, trained on the UCI sentiment sentences with their labels (0 = negative, 1 = positive) --
train it, score it on held-out sentences, then write new sentences from each label. The same steps
as `rnnkit train --task lm --condition-col label` and `rnnkit generate RUN --condition 1`, through
`rnnkit.tasks.lm` and `rnnkit.tasks.lm.conditional`.

    python examples/recipe_conditional_lm.py                       # 3 minutes of training
    RNNKIT_EXAMPLES_TINY=1 python examples/recipe_conditional_lm.py    # 150 steps: a smoke run
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rnnkit.tasks import lm
from rnnkit.tasks.lm import conditional

DATA = Path(os.environ.get("RNNKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
NAMES = {"0": "negative", "1": "positive"}


def main(out: str | None = None) -> dict:
    tiny = os.environ.get("RNNKIT_EXAMPLES_TINY") == "1"
    run = Path(out or tempfile.mkdtemp(prefix="rnnkit-clm-")) / "run"
    if tiny:   # a small one-layer model, a few passes
        budget = dict(steps=150, hidden=64, layers=1, dropout=0.0, batch_size=32, lr=1e-2)
    else:      # the language model's recipe picks layers, dropout and the learning rate
        budget = dict(minutes=3)
    # every file of the folder, one sentence per sequence, conditioned on its last column (the label)
    result = lm.train(str(DATA / "sentiment-labelled-sentences"), condition_col="label", out=run,
                      progress=False, echo=None, **budget)
    print(result.message)

    scores = conditional.evaluate(run)                    # the held-out 10% of the sentences
    print(f"validation: {scores['tokens']:,} characters, perplexity {scores['ppl']:.2f}, "
          f"{scores['bpc']:.3f} bits per character")

    samples = {}
    for label in ("0", "1"):   # one-hot labels set the initial state; the same seed for both, so the
        samples[label] = conditional.generate(run, label, num_samples=3, length=120, temperature=0.6,
                                              seed=0)      # differences come from the label alone
        for text in samples[label]:
            print(f"  {NAMES[label]:>8}: {text}")
    return {"result": result, "scores": scores, "samples": samples}


if __name__ == "__main__":
    main()
