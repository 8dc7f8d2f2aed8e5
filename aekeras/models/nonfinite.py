"""The exact NaN stop: caught inside the training step, reported after the call.

With many steps per call into the graph (`steps_per_execution`), a callback
sees only every n-th batch. So the step itself checks its loss: at the
first non-finite one it records the optimizer's step count in the model's
`nonfinite_step` and skips that update and every one after it; `NonFiniteStop`
raises after the call, naming the epoch and the batch.
"""

import math

import keras
import tensorflow as tf

# Above this, a NaN loss is most likely the learning rate's doing.
HIGH_LEARNING_RATE = 0.01


def step_variable():
    """The variable a model keeps the first non-finite step in (-1: none yet).

    Made in the current strategy's scope, like the model's weights; each
    replica holds the same value, so the first replica's write is kept.
    """
    return tf.Variable(
        tf.constant(-1, tf.int64),
        trainable=False,
        synchronization=tf.VariableSynchronization.ON_WRITE,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        name="nonfinite_step",
    )


def healthy(loss, nonfinite_step):
    """True while every replica's loss is finite and no earlier step's was not."""
    context = tf.distribute.get_replica_context()
    bad = tf.cast(tf.logical_not(tf.math.is_finite(loss)), tf.float32)
    if context is not None and context.num_replicas_in_sync > 1:
        bad = context.all_reduce("SUM", bad)
    return tf.logical_and(tf.equal(bad, 0.0), nonfinite_step < 0)


def apply_gradients_if(condition, optimizer, gradients, variables):
    """`optimizer.apply_gradients` only where `condition` holds (the same on every replica).

    Under a strategy that merges per-replica updates (`MirroredStrategy`,
    `MultiWorkerMirroredStrategy`), a branch may not call `merge_call` inside
    Keras's multi-step loop; there the update is made with zero gradients
    instead, which keeps the weights finite (an optimizer with momentum still
    moves them a little). Nothing of such an epoch is saved either way.
    """
    strategy_merges = tf.distribute.has_strategy() and not (
        tf.__internal__.distribute.strategy_supports_no_merge_call()
    )
    if strategy_merges:
        gradients = [tf.where(condition, g, tf.zeros_like(g)) for g in gradients]
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return

    def apply():
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return tf.constant(True)

    tf.cond(condition, apply, lambda: tf.constant(False))


def record_first(nonfinite_step, condition, step):
    """Sets `nonfinite_step` to `step` the first time `condition` fails."""
    first = tf.logical_and(tf.logical_not(condition), nonfinite_step < 0)
    nonfinite_step.assign(tf.where(first, tf.cast(step, tf.int64), nonfinite_step))


class NonFiniteStop(keras.callbacks.Callback):
    """Stops training after the call in which a loss became NaN or infinite, naming epoch and batch.

    Keras's `TerminateOnNaN` lets the epoch end, so that epoch's checkpoint
    and backup would hold the broken weights; raising `FloatingPointError`
    here keeps the last good ones, and the backup to resume from. Every
    aekeras model's `fit` adds one, unless given one.

    Args:
        checkpoints: the folder of per-epoch checkpoints, named in the
            message; `None` where this process writes none.
        chief_keeps: another process (a cluster's chief) writes them.
    """

    def __init__(self, checkpoints=None, chief_keeps=False):
        super().__init__()
        self.checkpoints = checkpoints
        self.chief_keeps = chief_keeps
        self.epoch = 0
        self.epoch_start = 0

    def on_train_begin(self, logs=None):
        self.model.nonfinite_step.assign(-1)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_start = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.nonfinite_step.numpy())
        if step < 0:
            return
        loss = float((logs or {}).get("loss", math.nan))
        raise FloatingPointError(
            f"training stopped: the loss became {loss if not math.isfinite(loss) else 'nan'} at epoch "
            f"{self.epoch + 1}, batch "
            f"{step - self.epoch_start + 1}; {self._kept()}; {self._likely_cause()}"
        )

    def _kept(self):
        if self.checkpoints is None and not self.chief_keeps:  # a fit of the user's own: no checkpoints
            return "the model keeps the weights of the last finite step"
        if self.epoch == 0:
            return "no epoch had completed, so there is no checkpoint"
        if self.chief_keeps:
            return f"the chief keeps the checkpoint of epoch {self.epoch}"
        return f"the last good checkpoint is {self.checkpoints / f'epoch-{self.epoch:03d}.keras'}"

    def _likely_cause(self):
        """What to change: rerunning unchanged would stop at the same place."""
        rate = float(self.model.optimizer.learning_rate.numpy())
        data = "look for NaN or infinite values, or pixels off the model's scale, in the data"
        if self.checkpoints is None and not self.chief_keeps:  # a fit of the user's own, not `aekeras train`
            lower = "lower the learning rate"
        else:
            lower = "rerun with a lower --learning-rate" + (
                f" (it resumes after epoch {self.epoch})" if self.epoch else ""
            )
        if rate > HIGH_LEARNING_RATE:
            usual = (
                " (Adam's usual is 0.001)" if "adam" in type(self.model.optimizer).__name__.lower() else ""
            )
            if self.checkpoints is None and not self.chief_keeps:
                # Diverging weights can stay finite and still be far off (1e21 after SGD at 1e3):
                # fitting them again, at any rate, stopped at its first batch.
                lower = f"rebuild or reload the model and {lower}"
            return f"the learning rate {rate:g} is likely too high{usual}: {lower}, or {data}"
        return f"{data}, or {lower}"
