"""Training runs: `train(TrainConfig(...))` is what `aekeras train` runs.

`config` holds the settings; `runner` runs a training end to end;
`distribute` the strategies and how data is split among workers;
`callbacks` atomic backups and checkpoints; `evaluate` the test figures;
`records` the history, environment and `run.json`.
"""

from aekeras.training.callbacks import AtomicBackupAndRestore
from aekeras.training.config import TrainConfig
from aekeras.training.distribute import STRATEGIES, check_tf_config, distribution_strategy
from aekeras.training.evaluate import evaluate_model
from aekeras.training.records import SETTINGS_FILE, environment, read_history
from aekeras.training.runner import configure_tensorflow, train

__all__ = [
    "AtomicBackupAndRestore",
    "SETTINGS_FILE",
    "STRATEGIES",
    "TrainConfig",
    "check_tf_config",
    "configure_tensorflow",
    "distribution_strategy",
    "environment",
    "evaluate_model",
    "read_history",
    "train",
]
