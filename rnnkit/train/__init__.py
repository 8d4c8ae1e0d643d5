"""Training for every task: the `Trainer` loop, its configuration, callbacks, run folders, history."""
from rnnkit.train.callbacks import Callback, ProgressBar
from rnnkit.train.checkpoint import RunFolder, RunFolderError
from rnnkit.train.config import TrainConfig
from rnnkit.train.runtime import resolve_device
from rnnkit.train.trainer import FitResult, Trainer, TrainingDiverged

__all__ = ["Callback", "FitResult", "ProgressBar", "RunFolder", "RunFolderError", "TrainConfig",
           "Trainer", "TrainingDiverged", "resolve_device"]
