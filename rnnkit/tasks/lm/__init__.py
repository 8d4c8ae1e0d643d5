"""Character- and word-level language models (N→N): the task (`task.py`), its options (`config.py`),
data (`data.py`), model (`model.py`), default recipe (`recipe.py`), and the Python API (`api.py`:
``train``, ``generate``, ``evaluate``, ``load``), re-exported here::

    from rnnkit.tasks import lm
    result = lm.train("timemachine", letters_only=True, minutes=2, out="runs/tm")
    lm.generate("runs/tm", "time traveller", length=100, temperature=0.8)
"""
from rnnkit.tasks.lm.api import *  # noqa: F401,F403
from rnnkit.tasks.lm.api import __all__  # noqa: F401
from rnnkit.tasks.lm.api import best_ngram, iter_generate, read_run_config  # noqa: F401
