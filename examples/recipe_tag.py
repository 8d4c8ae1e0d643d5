"""Part-of-speech tagging from Python: a character+word bidirectional LSTM tagger on the Universal
Dependencies English Web Treebank (UPOS tags) -- train it, score it on the treebank's test file, tag
new sentences. The same steps as `rnnkit train --task tag`, `rnnkit evaluate` and `rnnkit predict`,
through `rnnkit.tasks.base` and `rnnkit.tasks.tag_api`.

    python examples/recipe_tag.py                                  # 3 minutes of training
    RNNKIT_EXAMPLES_TINY=1 python examples/recipe_tag.py           # 100 steps, a small model: a smoke run
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rnnkit.tasks import base, tag_api
from rnnkit.tasks.tag import TagTask

DATA = Path(os.environ.get("RNNKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
SENTENCES = ["The old man saw a dog in the park yesterday .",
             "She will send you the report before Friday ."]


def main(out: str | None = None) -> dict:
    tiny = os.environ.get("RNNKIT_EXAMPLES_TINY") == "1"
    run = Path(out or tempfile.mkdtemp(prefix="rnnkit-tag-")) / "run"
    if tiny:   # a half pass over the training sentences with a small model, validated twice
        budget = dict(steps=100, eval_every=50, lr=1e-2, hidden=32, layers=1, embedding=32,
                      char_hidden=16, char_embedding=16)
    else:
        budget = dict(minutes=3)
    # the folder's en_ewt-ud-{train,dev,test}.conllu: train, validation (best weights), test
    result = base.train(TagTask, data=str(DATA / "ud-english-ewt"), out=run, progress=False, echo=None,
                        **budget)
    print(result.message)

    scores = tag_api.evaluate(run)                        # the test file; per-tag scores in "tags"
    common = sorted(scores["tags"].items(), key=lambda kv: -kv[1]["support"])[:5]
    print(f"test: token accuracy {scores['accuracy']:.3f} on {scores['words']:,} words "
          f"({scores['sentences']:,} sentences); F1 of the commonest tags: "
          + ", ".join(f"{tag} {s['f1']:.2f}" for tag, s in common))

    tagged = tag_api.predict_texts(run, SENTENCES)        # [(word, tag), ...] per sentence
    for pairs in tagged:
        print("  " + " ".join(f"{word}/{tag}" for word, tag in pairs))
    return {"result": result, "scores": scores, "tagged": tagged}


if __name__ == "__main__":
    main()
