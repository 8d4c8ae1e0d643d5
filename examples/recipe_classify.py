"""Text classification from Python: a word-level bidirectional GRU on the UCI sentiment sentences
(Amazon, IMDb and Yelp reviews, 3,000 sentences labelled 0 = negative, 1 = positive) -- train it, score
it on the held-out test sentences, classify new ones. The same steps as `rnnkit train --task classify`,
`rnnkit evaluate` and `rnnkit predict`, through `rnnkit.tasks.classify`.

    python examples/recipe_classify.py                             # 1 minute of training
    RNNKIT_EXAMPLES_TINY=1 python examples/recipe_classify.py      # a small model, 6 passes: a smoke run
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rnnkit.tasks import classify

DATA = Path(os.environ.get("RNNKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
NAMES = {"0": "negative", "1": "positive"}
REVIEWS = ["The battery died after two days and support never answered.",
           "Great sound, comfortable, and it works perfectly with my phone.",
           "The food was cold and the waiter was rude.",
           "One of the best films I have seen in years."]


def main(out: str | None = None) -> dict:
    tiny = os.environ.get("RNNKIT_EXAMPLES_TINY") == "1"
    folder = DATA / "sentiment-labelled-sentences"
    run = Path(out or tempfile.mkdtemp(prefix="rnnkit-classify-")) / "run"
    # all three files; 10% held out for validation (best weights), 10% for the test (stratified)
    budget = dict(hidden=32, embedding=32, epochs=6, lr=1e-2) if tiny else dict(minutes=1)
    result = classify.train(data=str(folder), out=run, progress=False, echo=None, **budget)
    print(result.message)

    scores = classify.evaluate(run)                       # the run's test part by default
    majority = max(c["support"] for c in scores["per_class"].values()) / scores["examples"]
    print(f"test: accuracy {scores['accuracy']:.3f}, macro-F1 {scores['macro_f1']:.3f} on "
          f"{scores['examples']} sentences (always answering the most frequent class: {majority:.3f})")

    predictions = classify.predict(run, REVIEWS)          # [(label, probability), ...] most likely first
    for text, ranked in zip(REVIEWS, predictions):
        label, p = ranked[0]
        print(f"  {NAMES.get(label, label):>8} {p:.2f}  {text}")
    return {"result": result, "scores": scores, "majority": majority, "predictions": predictions}


if __name__ == "__main__":
    main()
