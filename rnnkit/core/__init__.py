"""The engine: runs cells over time (lengths, direction, stacking) and picks the kernel."""
from rnnkit.core.fast_paths import fast_path_unavailable, fused_unavailable
from rnnkit.core.recurrent import Recurrent
from rnnkit.core.stack import RecurrentStack

__all__ = ["Recurrent", "RecurrentStack", "fast_path_unavailable", "fused_unavailable"]
