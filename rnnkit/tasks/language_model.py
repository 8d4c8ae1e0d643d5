"""The language model's Python API under its first name, kept for code written against it: the same
functions as `rnnkit.tasks.lm` (``train``, ``generate``, ``evaluate``, ``load``, ...)."""
from rnnkit.tasks.lm.api import *  # noqa: F401,F403
from rnnkit.tasks.lm.api import __all__  # noqa: F401
from rnnkit.tasks.lm.api import best_ngram, iter_generate, read_run_config  # noqa: F401
