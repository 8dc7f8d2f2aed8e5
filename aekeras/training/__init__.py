"""Training runs: `train(TrainConfig(...))` is what `aekeras train` runs.

`config` holds the settings; `runner` runs a training end to end;
`distribute` the strategies and how data is split among workers, `cluster`
the cluster `TF_CONFIG` names; `callbacks` atomic backups and checkpoints;
`evaluate` the test figures; `records` the history, environment and
`run.json`.
"""

from aekeras.choices import STRATEGIES
from aekeras.lazy import lazy_attributes

# Names and the modules that define them: loaded when first used, so that
# the command line can check a run's settings (`TrainConfig.validate`)
# before TensorFlow loads.
_LAZY = {
    "AtomicBackupAndRestore": "callbacks",
    "TrainConfig": "config",
    "check_tf_config": "cluster",
    "distribution_strategy": "distribute",
    "evaluate_model": "evaluate",
    "SETTINGS_FILE": "records",
    "environment": "records",
    "read_history": "records",
    "configure_tensorflow": "runner",
    "train": "runner",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


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
