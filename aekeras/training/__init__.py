"""Training runs: `train(TrainConfig(...))` is what `aekeras train` runs.

`config` holds the settings; `runner` runs a training end to end;
`distribute` the strategies and how data is split among workers;
`callbacks` the NaN stop and atomic backups; `evaluate` the test figures;
`records` the history, environment and `run.json`.
"""

from aekeras.training.callbacks import AtomicBackupAndRestore, StopOnNonFiniteLoss
from aekeras.training.config import TrainConfig
from aekeras.training.distribute import STRATEGIES, check_tf_config, distribution_strategy
from aekeras.training.evaluate import evaluate_model
from aekeras.training.records import SETTINGS_FILE, environment, read_history
from aekeras.training.runner import train

__all__ = [
    "AtomicBackupAndRestore",
    "SETTINGS_FILE",
    "STRATEGIES",
    "StopOnNonFiniteLoss",
    "TrainConfig",
    "check_tf_config",
    "distribution_strategy",
    "environment",
    "evaluate_model",
    "read_history",
    "train",
]
