"""``python -m rnnkit.reference``: gradient-check every cell of the NumPy reference."""

from .gradcheck import demo

demo()
