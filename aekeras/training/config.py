"""The settings of one training run, checked without TensorFlow."""

import dataclasses
import math
from pathlib import Path

from aekeras.choices import KEPT_CHECKPOINTS, LEARNING_RATE_SCHEDULES, MAX_SEED, STRATEGIES
from aekeras.names import check_loadable_path, check_name
from aekeras.registry import get_model
from aekeras.training.cluster import check_tf_config


@dataclasses.dataclass
class TrainConfig:
    """The settings of one training run; defaults are the lecture's.

    Args:
        model: a registered model name (`aekeras.registry`).
        name: names the run folder and the served model; the model kind
            by default.
        options: that model's options, such as `{"latent_dim": 500}`;
            the rest take the registered defaults.
        data: the data source (see `aekeras.data.load`): `"mnist"`,
            `"fashion_mnist"`, `"tfds:NAME"`, a folder of images or an
            `.npz`/`.npy` file.
        data_dir: for built-in names, the folder of IDX files (else
            `$AEKERAS_DATA_DIR` ...); for `tfds:` names, the TFDS data folder.
        image_size: `(height, width)` to resize the images to.
        channels: 1 or 3 to convert the images to.
        test_fraction: the share held out for testing, where the source
            has no test split.
        limit: train on the first `limit` training examples only.
        epochs: passes over the training set.
        validation_freq: evaluate on the test split every this many epochs
            (`val_*` in the history and TensorBoard's `validation/`
            scalars); 0: only once, after training.
        batch_size: examples per step (the global batch under a strategy).
        learning_rate: Adam's learning rate.
        learning_rate_schedule: `"constant"`, or `"cosine"`: decayed along a
            cosine to a tenth of `learning_rate` over the run's steps.
        seed: seeds the weights, the data order and any noise.
        out: where SavedModels are published, one folder per model.
        run_dir: where working files go, one folder per model; a run
            started again with the same folder resumes.
        keep_checkpoints: how many of the latest epochs' checkpoints
            (`run_dir/<name>/checkpoints/epoch-NNN.keras`) stay; 0 keeps
            every one. Each holds the model and its optimizer's state.
        verbose: Keras's `fit` verbosity: 1 shows the progress bar on a
            terminal or in a notebook, and one line per epoch elsewhere
            (`aekeras.progress.fit_verbosity`).
        strategy: `"default"` (one device), `"mirrored"` (every local GPU,
            `tf.distribute.MirroredStrategy`) or `"multi_worker"` (the
            cluster in `TF_CONFIG`, `tf.distribute.MultiWorkerMirroredStrategy`).
        restart: discard the backup of an interrupted run in the run
            folder instead of resuming it.
        allow_contract_change: publish even if the signatures differ from
            those the name's latest version serves.
        steps_per_execution: training steps run per call into the graph;
            `None`: the model's default (`BaseAutoencoder.compile`). More is
            faster for small models (BENCHMARKS.md); per-batch callbacks
            and the progress bar then advance once per call (the NaN stop
            still names the exact batch).
        batch_shards: parts each training batch is split into, trained
            side by side on the CPU's cores with the whole batch's update;
            `None`: the model's default (`BaseAutoencoder.compile`: one per
            core on a CPU for the models whose `trains_in_shards` says so,
            else 1).
        intra_op_threads: threads each TensorFlow op may use; `None`, the
            default, takes the model's (`ModelEntry.default_intra_op_threads`:
            one for the lecture's dense model and the dense VAE,
            TensorFlow's choice, one per core, for the others) where
            TensorFlow has not started yet, and leaves TensorFlow as it is
            otherwise; 0 asks for TensorFlow's
            choice. A number takes effect only in a process where TensorFlow
            has not started (the command line's).
    """

    model: str = "dense"
    name: str = None
    options: dict = dataclasses.field(default_factory=dict)
    data: str = "mnist"
    data_dir: str = None
    image_size: tuple = None
    channels: int = None
    test_fraction: float = 0.1
    limit: int = None
    epochs: int = 20
    validation_freq: int = 1
    batch_size: int = 256
    learning_rate: float = 1e-3
    learning_rate_schedule: str = "constant"
    seed: int = 0
    out: str = "saved_models"
    run_dir: str = "runs"
    keep_checkpoints: int = KEPT_CHECKPOINTS
    verbose: int = 1
    strategy: str = "default"
    steps_per_execution: int = None
    batch_shards: int = None
    intra_op_threads: int = None
    restart: bool = False
    allow_contract_change: bool = False

    @property
    def run_name(self):
        """The run folder's and the served model's name."""
        return self.model if self.name is None else self.name

    def validate(self):
        """Raises ValueError naming the first setting that cannot work, `TF_CONFIG` too under `multi_worker`.

        ModelFileError for an `out` TensorFlow could not read a SavedModel
        back from (`names.check_loadable_path`).
        """
        get_model(self.model).split_options(self.options)
        check_name(self.run_name)
        check_loadable_path(Path(self.out) / self.run_name)
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r} (expected one of {STRATEGIES})")
        if self.strategy == "multi_worker":
            check_tf_config()
        for field in ("epochs", "batch_size", "steps_per_execution", "batch_shards"):
            value = getattr(self, field)
            if field in ("steps_per_execution", "batch_shards") and value is None:
                continue  # the model's default
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        for field in ("validation_freq", "keep_checkpoints"):
            value = getattr(self, field)
            if not (isinstance(value, int) and value >= 0):
                raise ValueError(f"{field} must be 0 or more, got {value!r}")
        threads = self.intra_op_threads
        if threads is not None and not (isinstance(threads, int) and threads >= 0):
            raise ValueError(f"intra_op_threads must be 0 or more, got {self.intra_op_threads!r}")
        if isinstance(self.seed, bool) or not (isinstance(self.seed, int) and 0 <= self.seed <= MAX_SEED):
            raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {self.seed!r}")
        if self.limit is not None and not (isinstance(self.limit, int) and self.limit > 0):
            raise ValueError(f"limit must be a positive integer, got {self.limit!r}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if self.learning_rate_schedule not in LEARNING_RATE_SCHEDULES:
            raise ValueError(
                f"unknown learning_rate_schedule {self.learning_rate_schedule!r} "
                f"(expected one of {LEARNING_RATE_SCHEDULES})"
            )

    def read_options(self):
        """The `aekeras.data.ReadOptions` fields this run reads its data with."""
        return {
            "data_dir": _absolute(self.data_dir),
            "image_size": None if self.image_size is None else list(self.image_size),
            "channels": self.channels,
            "test_fraction": self.test_fraction,
        }


def _absolute(folder):
    """`folder` as an absolute path, as `run.json` records it (None and URLs as they are).

    `aekeras tflite` and `onnx` read an export's data from the
    folder its run.json names, in a shell that may be anywhere: a relative
    `--data-dir ../shared/data/mnist` was no folder from any other one.
    """
    if folder is None or "://" in str(folder):
        return folder
    return str(Path(folder).expanduser().absolute())
