"""The language-model task from Python: train a character model on *The Time Machine*, evaluate it,
continue a prompt, and look inside it -- the same steps as `rnnkit train / evaluate / generate /
explain`, through `rnnkit.tasks.lm` and `rnnkit.viz`.

    python examples/language_model_recipe.py                  # 2 minutes of training
    RNNKIT_EXAMPLES_TINY=1 python examples/language_model_recipe.py   # a few steps: a smoke run
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from rnnkit.tasks import lm
from rnnkit.viz import activations


def main(out: str | None = None) -> dict:
    tiny = os.environ.get("RNNKIT_EXAMPLES_TINY") == "1"
    run = Path(out or tempfile.mkdtemp(prefix="rnnkit-lm-")) / "run"
    budget = dict(steps=5, hidden=32, batch_size=8, seq_len=32, sample_length=0) if tiny else dict(minutes=2)
    result = lm.train("timemachine", out=run, progress=False, echo=None, **budget)
    print(result.message)

    scores = lm.evaluate(run)                                   # the validation split by default
    print("validation:", {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()})
    text = lm.generate(run, "The Time Traveller", length=80, temperature=0.6, seed=0)[0]
    print("sample:", repr(text))

    # the recorded states of the trained model over a sentence (what `rnnkit explain` shows)
    acts = activations(lm.load(run), "The Time Traveller (for so it will be convenient to speak of him)\n"
                       "was expounding a recondite matter to us. \"Clearly,\" he said.")
    best = {p: acts.unit_names()[int(np.nanargmax(np.abs(r)))] if not np.all(np.isnan(r)) else "n/a"
            for p, r in acts.correlations().items()}
    print(f"recorded {len(acts.layers)} layer(s) x {acts.layers[0].hidden.shape[1]} units over "
          f"{len(acts.text)} characters; the unit tracking each property best: {best}")
    return {"result": result, "scores": scores, "sample": text, "activations": acts}


if __name__ == "__main__":
    main()
