"""``keras.models``: `Sequential`, `Model` (functional or subclassed) and `load_model`."""
from rnnkit.keras.models.functional import Functional
from rnnkit.keras.models.model import Model
from rnnkit.keras.models.saving import load_model
from rnnkit.keras.models.sequential import Sequential

__all__ = ["Model", "Sequential", "Functional", "load_model"]
