"""The base class of every aekeras autoencoder."""

import contextlib
import threading

import keras
import numpy as np
import tensorflow as tf

# Keras's monitoring callbacks (EarlyStopping, ReduceLROnPlateau, ...) read a
# metric's direction only from inside a MetricsList; CompileMetrics holds
# the metrics `compile` was given.
from keras.src.trainers.compile_utils import CompileMetrics, MetricsList

from aekeras import losses, optimizers, progress
from aekeras.data import DEFAULT_SPEC, ImageSpec
from aekeras.data.pipeline import check_image_values, scaled_batch, unit_scale
from aekeras.models import nonfinite, shards
from aekeras.signatures import LABEL_INPUT


def resolve_image_spec(image_spec, image_shape, value_range, default_value_range):
    """The `ImageSpec` a model is built for.

    `image_spec` (an `ImageSpec` or its config) gives the shape, classes and
    source; `image_shape` and `value_range` may be given instead or must
    agree with it. A spec without a value range (a data source's) takes
    `value_range`, else the model's default. With neither, the model is
    built for `aekeras.data.DEFAULT_SPEC`, the lecture's MNIST.
    """
    if image_spec is None:
        spec = DEFAULT_SPEC if image_shape is None else ImageSpec(image_shape)
    else:
        spec = ImageSpec.from_config(image_spec)
        if image_shape is not None and tuple(image_shape) != spec.shape:
            raise ValueError(f"image_shape {tuple(image_shape)} differs from image_spec's {spec.shape}")
    if value_range is not None:
        value_range = tuple(float(v) for v in value_range)
        if spec.value_range is not None and spec.value_range != value_range:
            raise ValueError(f"value_range {value_range} differs from image_spec's {spec.value_range}")
        return spec.replace(value_range=value_range)
    return spec if spec.value_range is not None else spec.replace(value_range=default_value_range)


def _with_progress_bar(callbacks):
    """`callbacks` and a `StepProgbarLogger`, unless they hold a progress bar or are Keras's own list.

    Keras adds its own bar where none is given; this one is silent at
    `verbose=0` as Keras's is. `fit` passes its `CallbackList` on to
    `evaluate` for validation, which keeps it as it is.
    """
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    callbacks = list(callbacks or [])
    if not any(isinstance(c, keras.callbacks.ProgbarLogger) for c in callbacks):
        callbacks.append(progress.StepProgbarLogger())
    return callbacks


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in ("batch", *shape)) + ")"


def _metric_names(metric):
    """A metric's name, or those of the metrics it holds (`LossTrackers`, Keras's compiled metrics)."""
    held = metric.metrics if isinstance(metric, (MetricsList, CompileMetrics)) else [metric]
    return [m.name for m in held]


class LossTrackers(MetricsList):
    """Running means of the loss and its terms, each one to minimise (`rising`: to maximise)."""

    def __init__(self, names, rising=()):
        trackers = [keras.metrics.Mean(name=name) for name in (*names, *rising)]
        for tracker in trackers:
            # Read by Keras's monitoring callbacks.
            tracker._direction = "up" if tracker.name in rising else "down"
        super().__init__(trackers, name="loss_trackers")

    def update_state(self, values):
        for tracker in self.metrics:
            tracker.update_state(values[tracker.name])

    def result(self):
        return {tracker.name: tracker.result() for tracker in self.metrics}


# Input values `reconstruct` and `embed` take at a time by default: 1,000
# MNIST digits, 56 RGB images of 128x192. All 1,000 of those at once took a
# conv model's projector to 6.5 GB (2.9 in batches of 56), more than
# training on them in batches of 256; it runs as training ends, where
# running out of memory loses the fit.
BATCH_VALUES = 2**22

# The models in `evaluation_stream` (their `test_step` traced, their test
# NLL drawn), per thread: a strategy
# traces each replica's step in a thread of its own, and a replica that
# waits in a `merge_call` lets another run its whole step meanwhile.
_evaluating = threading.local()


class _EvaluationDraws:
    """The random stream evaluation draws from (validation too): apart from training's, restarted by `evaluate`.

    Apart, so how often a run validates leaves the noise it trains on, and
    so its weights, as they were (validation drew from training's stream);
    restarted, so every evaluation of the same weights draws the same
    noise, and validation losses move from epoch to epoch by what the model
    learned alone. Kept out of Keras's tracking: it is no weight, so saved
    models and backups hold what they held before.
    """

    def __init__(self, seed):
        if seed is not None:  # spawned from the model's: never training's own first draws again
            seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0] % 2**31)
        self.generator = keras.random.SeedGenerator(seed)
        self.start = self.generator.state.numpy()

    def restart(self):
        self.generator.state.assign(self.start)


@keras.saving.register_keras_serializable(package="aekeras")
class BaseAutoencoder(keras.Model):
    """What every aekeras autoencoder shares; subclass it for a new variant.

    The base class owns `encode`, `decode` and `call` (checking shapes on
    every call, traced or not); the loss trackers; a `train_step`/`test_step`
    pair that averages per-example losses over the global batch, so training
    under a `tf.distribute` strategy matches training on one device; and the
    shared part of the config, the `ImageSpec`. A variant overrides only
    `compute_loss_terms`, which returns its named per-example loss terms
    (their sum is the loss, listed in `loss_term_names`) and its
    reconstructions, and lists its own constructor arguments in
    `config_fields`.

    `fit` takes batches of inputs alone (the inputs are the targets) or
    `(inputs, targets)` pairs, as for denoising or super-resolution. The
    loss is part of the model's configuration: `compile` takes an optimizer
    and metrics, which are computed on targets and reconstructions at the
    model's scale, and refuses a `loss`.

    Args:
        encoder: a Keras layer or model mapping inputs to codes.
        decoder: a Keras layer or model mapping codes to reconstructions.
        image_spec: the `ImageSpec` of the inputs, its `value_range` the
            pixel scale the model reads and writes (exports rescale to it).
        reconstruction_loss: `"mse"` or `"binary_crossentropy"` (which needs
            outputs and targets in [0, 1]).
        **kwargs: passed to `keras.Model` (for example `name`).

    Example:

    >>> class L1Autoencoder(Autoencoder):
    ...     def compute_loss_terms(self, inputs, targets, training=False):
    ...         reconstructions = self(inputs, training=training)
    ...         errors = keras.ops.abs(targets - reconstructions)
    ...         return {"reconstruction_loss": keras.ops.mean(errors, axis=(1, 2, 3))}, reconstructions
    """

    loss_term_names = ("reconstruction_loss",)
    # Figures `compute_loss_terms` also returns, tracked in training and
    # evaluation but not part of the loss; each one to maximise.
    monitor_term_names = ()
    # Tracked by `evaluate` only (see `evaluation_terms`).
    evaluation_term_names = ()
    # Constructor arguments that `get_config` returns besides the image spec.
    config_fields = ()
    # Whether the model reads class labels beside its images (the
    # conditional VAE): `fit` then takes `(images, labels)` batches, and every
    # exported signature a `labels` input.
    conditioned = False
    # Whether `sample(num_samples, seed=...)` decodes draws from a prior
    # (the VAEs): TensorBoard's pictures then show samples too.
    has_prior = False
    # What `compile` uses unless told otherwise (measured in BENCHMARKS.md).
    default_steps_per_execution = 32
    default_jit_compile = False
    # Whether `compile` splits batches into one shard per core by default
    # (`aekeras.models.shards`): only where two shards measured faster than
    # one (each model says by how much).
    trains_in_shards = False
    _evaluation_draws = None

    def __init__(self, encoder, decoder, image_spec, reconstruction_loss="mse", **kwargs):
        super().__init__(**kwargs)
        # The losses, the noise and the serving contract are float32. Its
        # layers take the global policy whatever the model's own `dtype` (a
        # model loaded under a mixed policy computed in float16).
        policies = (
            self.dtype_policy,
            keras.config.dtype_policy(),
            encoder.dtype_policy,
            decoder.dtype_policy,
        )
        other = next((policy for policy in policies if policy.compute_dtype != "float32"), None)
        if other is not None:
            raise ValueError(
                f"{type(self).__name__} computes in float32, not under the dtype policy {other.name!r}: "
                "build or load it with keras.config.set_dtype_policy('float32') in force"
            )
        spec = ImageSpec.from_config(image_spec)
        if spec.value_range is None:
            raise ValueError("image_spec needs a value_range: the scale the model computes in")
        if reconstruction_loss not in losses.RECONSTRUCTION_LOSSES:
            raise ValueError(
                f"unknown reconstruction_loss {reconstruction_loss!r} (expected one of "
                f"{sorted(losses.RECONSTRUCTION_LOSSES)})"
            )
        if reconstruction_loss == "binary_crossentropy" and spec.value_range != (0.0, 1.0):
            raise ValueError(
                f"reconstruction_loss 'binary_crossentropy' needs value_range (0, 1), got {spec.value_range}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.image_spec = spec
        self.reconstruction_loss = reconstruction_loss
        self.loss_trackers = LossTrackers(("loss", *self.loss_term_names), self.monitor_term_names)
        self.evaluation_trackers = LossTrackers(self.evaluation_term_names)
        # The optimizer step at which the loss first became non-finite (-1:
        # none); see `aekeras.models.nonfinite`. A plain TensorFlow variable,
        # not a Keras weight: it is bookkeeping, so it is neither saved in
        # .keras files nor counted in `count_params` or the summary.
        self.nonfinite_step = nonfinite.step_variable()
        self.batch_shards = 1  # until `compile` picks the count

    @property
    def image_shape(self):
        return self.image_spec.shape

    @property
    def value_range(self):
        return self.image_spec.value_range

    def get_config(self):
        config = super().get_config()
        config["image_spec"] = self.image_spec.get_config()
        config.update({field: getattr(self, field) for field in self.config_fields})
        return config

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        metrics=None,
        steps_per_execution=None,
        jit_compile=None,
        batch_shards=None,
        **kwargs,
    ):
        """Keras's `compile`, less the loss, which the model's configuration sets.

        `steps_per_execution` and `jit_compile` default to what trains this
        model fastest on a CPU (`default_steps_per_execution`,
        `default_jit_compile`; BENCHMARKS.md); the NaN stop stays exact
        whatever they are. `batch_shards` splits each training batch into
        that many parts that the CPU's cores train side by side, with the
        whole batch's update (`aekeras.models.shards`); its default is one
        per core on a CPU without XLA or a strategy for models that gain
        from it (`trains_in_shards`), else 1.
        `optimizer="adam"` is `aekeras.optimizers.Adam`: Keras's Adam with
        each variable's update in one kernel.
        """
        if loss is not None:
            raise ValueError(
                f"{type(self).__name__} sets its own loss (its constructor arguments, such as "
                "reconstruction_loss); compile(loss=...) would be ignored, so pass only the "
                "optimizer and metrics"
            )
        # Keras cannot run several steps per call under a tf.distribute
        # strategy (keras-team/keras#19246), nor XLA across its replicas.
        distributed = (
            tf.distribute.has_strategy() or self.distribute_strategy is not tf.distribute.get_strategy()
        )
        if isinstance(optimizer, str) and optimizer.lower() == "adam":
            optimizer = optimizers.Adam()
        if steps_per_execution is None:
            steps_per_execution = 1 if distributed else self.default_steps_per_execution
        if jit_compile is None:
            jit_compile = False if distributed else self.default_jit_compile
        if batch_shards is None:
            batch_shards = shards.default_count(distributed, jit_compile) if self.trains_in_shards else 1
        self.batch_shards = shards.check_count(batch_shards)
        super().compile(
            optimizer=optimizer,
            metrics=metrics,
            steps_per_execution=steps_per_execution,
            jit_compile=jit_compile,
            **kwargs,
        )
        # Its variables now, not in the first traced step: a `fit` that failed
        # there (a wrong shape, say) left the next one "creating variables on
        # a non-first call". The model's weights exist since its constructor.
        if self.built and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def default_callbacks(self):
        """Callbacks every `fit` of this model runs unless given one of the same class.

        A `NonFiniteStop`, so that a NaN loss stops training at once;
        variants add what their training needs.
        """
        return [nonfinite.NonFiniteStop()]

    def fit(self, x=None, *args, callbacks=None, **kwargs):
        """Keras's `fit`, with the model's `default_callbacks` unless given ones of the same classes."""
        if kwargs.get("class_weight") is not None:
            # Keras turns them into sample weights by reading the targets as
            # class indices, and failed on images in words of its own.
            raise ValueError(
                f"{type(self).__name__} does not take class weights; pass batches of inputs or "
                "(inputs, targets) pairs"
            )
        self._check_arrays(
            "fit", x, kwargs.get("y", args[0] if args else None), kwargs.get("validation_data")
        )
        callbacks = _with_progress_bar(callbacks)
        for default in self.default_callbacks():
            if not any(isinstance(c, type(default)) for c in callbacks):
                callbacks.append(default)
        if isinstance(x, tf.data.Dataset):
            # A dataset shuffles itself (aekeras.data's do, every epoch);
            # Keras's default shuffle=True would only warn that it cannot.
            kwargs.setdefault("shuffle", False)
        with self._steps_per_call_dividing(kwargs.get("steps_per_epoch"), "train_function"):
            return super().fit(x, *args, callbacks=callbacks, **kwargs)

    def evaluate(self, x=None, *args, callbacks=None, **kwargs):
        """Keras's `evaluate`, its progress bar counting only the steps run, its noise the same every call."""
        self._check_arrays("evaluate", x, kwargs.get("y", args[0] if args else None))
        self._restart_evaluation_draws()
        args = (x, *args)
        with self._steps_per_call_dividing(kwargs.get("steps"), "test_function"):
            return super().evaluate(*args, callbacks=_with_progress_bar(callbacks), **kwargs)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Keras's `test_on_batch`, its noise the same every call, as `evaluate`'s."""
        self._restart_evaluation_draws()
        return super().test_on_batch(x, y, sample_weight=sample_weight, return_dict=return_dict)

    def _restart_evaluation_draws(self):
        if self._evaluation_draws is not None:
            self._evaluation_draws.restart()

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras's, less its look at a batch when nothing is left to build.

        Under a distribution strategy Keras's `fit`, `evaluate` and
        `predict` first take one batch from a fresh distributed iterator
        (averaging it over the workers) to build what is unbuilt, and drop
        that iterator with its prefetching under way. After training nothing
        is unbuilt, and dropping it crashed a process of the multi-worker
        test now and then (a segmentation fault in `evaluate`, inside
        Keras's `EpochIterator.reset`: once in 16 local runs, once in CI).
        """
        if self._nothing_to_build():
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _check_arrays(self, method, x, *others):
        """NumPy data given to `fit`, `evaluate` or `predict`, checked before any work, in one line each.

        `x` is an array of inputs or a conditioned model's `(images,
        labels)`; `others` are targets or `validation_data`. Anything else
        (datasets, tensors) passes. Float images must be finite and not
        0-255 pixels (they trained to a loss in the thousands, a VAE's to
        NaN, without a word); inputs must have the model's shape (the
        graph's own check named the shape of a batch shard); labels are
        checked as `conditions` checks them.
        """
        taker = f"{type(self).__name__}.{method} takes"
        # A conditioned model's targets are not images: labels given as
        # targets get its own refusal, which says what it trains on.
        for item in (x,) if self.conditioned else (x, *others):
            for part in item if isinstance(item, (tuple, list)) else [item]:
                check_image_values(part, self.value_range, taker)
        images, labels = x if self.conditioned and isinstance(x, (tuple, list)) and len(x) == 2 else (x, None)
        if not isinstance(images, np.ndarray):
            return
        self._refuse_shape(images.shape, self.image_shape, "inputs")
        self._refuse_no_images(images)
        if isinstance(labels, np.ndarray):
            self.conditions(labels, len(images))

    def _nothing_to_build(self):
        """Whether the model, its compiled loss and metrics and its optimizer are all built."""
        parts = (self._compile_metrics, self._compile_loss, self.optimizer)
        layers_built = all(layer.built for layer in self._flatten_layers())
        return layers_built and all(part is None or part.built for part in parts)

    def predict(self, x, *args, callbacks=None, **kwargs):
        """Keras's `predict`, its progress bar counting only the steps run."""
        self._check_arrays("predict", x)
        args = (x, *args)
        with self._steps_per_call_dividing(kwargs.get("steps"), "predict_function"):
            return super().predict(*args, callbacks=_with_progress_bar(callbacks), **kwargs)

    @contextlib.contextmanager
    def _steps_per_call_dividing(self, steps, function_name):
        """Runs as many steps per call as divide `steps` (a `steps_per_epoch` or `steps` given), at most as compiled.

        Keras runs whole calls of `steps_per_execution` steps, so 5 steps
        per epoch at aekeras's default of 32 would train 32 (and place a NaN
        in the wrong batch). The function is traced again for the call and
        after it.
        """
        compiled = self.steps_per_execution
        if not steps or steps % compiled == 0:
            yield
            return
        self.steps_per_execution = max(d for d in range(1, compiled + 1) if steps % d == 0)
        setattr(self, function_name, None)
        try:
            yield
        finally:
            self.steps_per_execution = compiled
            setattr(self, function_name, None)

    def compile_from_config(self, config):
        # Keras skips a custom `compile` when it loads a model; this one only
        # refuses a loss, so loading compiles as Keras's own would.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def code_shape(self, input_shape):
        """The shape of the codes `encode` gives for inputs of `input_shape`, batch axis first.

        `input_shape` includes the batch axis (`(None, 28, 28, 1)` gives the
        convolutional autoencoder's `(None, 4, 4, 8)`).
        """
        return self.encoder.compute_output_shape(input_shape)

    def build(self, input_shape):
        self.encoder.build(input_shape)
        self.decoder.build(self.code_shape(input_shape))

    def _expects(self, shape, what):
        """The start of the refusal of a batch that is not of `shape`, statically or as the graph runs."""
        return f"{type(self).__name__} expects {what} of shape {_shape_text(shape)}"

    def _refuse_shape(self, got, shape, what):
        """Raises ValueError where `got`, a shape as far as it is known, is not that of a batch of `shape`."""
        got = tf.TensorShape(got)
        if got.rank is not None and (
            got.rank != len(shape) + 1
            or any(d is not None and d != e for d, e in zip(got[1:], shape, strict=True))
        ):
            raise ValueError(f"{self._expects(shape, what)}, got shape {tuple(got)}")

    def _refuse_no_images(self, images):
        """Raises ValueError for an array that holds no images: Keras and NumPy fail on it in their own words."""
        if images.ndim == 0 or len(images) == 0:
            raise ValueError(f"{type(self).__name__} got no images (expected a batch of at least one)")

    def checked(self, tensor, shape, what):
        """`tensor`, checked to be a batch of `shape`.

        Where the static shape settles it, a wrong one raises ValueError now;
        where it does not (a function traced for any size), the check runs
        with the graph, and the tensor gets the static shape it was checked for.
        """
        if self.conditioned and isinstance(tensor, (tuple, list)) and len(tensor) == 2:
            raise TypeError(
                f"{type(self).__name__} takes the {what} alone here and their labels as labels=; an (images, "
                "labels) pair is what call, fit and predict take"
            )
        if not keras.backend.is_keras_tensor(tensor):
            tensor = tf.convert_to_tensor(tensor)
        static = tf.TensorShape(tensor.shape)  # a Keras tensor's is a tuple
        self._refuse_shape(static, shape, what)
        if keras.backend.is_keras_tensor(tensor) or (static.rank is not None and None not in static[1:]):
            return tensor
        actual = tf.shape(tensor)
        fits = tf.cond(
            tf.equal(tf.size(actual), len(shape) + 1),
            lambda: tf.reduce_all(tf.equal(actual[1:], shape)),
            lambda: tf.constant(False),
        )
        with tf.control_dependencies(
            [tf.debugging.Assert(fits, [f"{self._expects(shape, what)}, got shape", actual], summarize=8)]
        ):
            return tf.ensure_shape(tf.identity(tensor), (None, *shape))

    def scaled_images(self, images):
        """`images` at the model's value range: uint8 pixels (0-255) scaled by `aekeras.data.pipeline.scaled_batch`, others as given.

        So every entry point (`fit`, `evaluate`, `predict`, `encode`) takes
        8-bit images as stored (`aekeras.data.load(..., keep_uint8=True)`,
        a uint8 array) as well as float ones at the model's value range
        (float64 and float16 ones as float32). Other integers raise TypeError.
        """
        dtype = getattr(images, "dtype", None)
        if keras.backend.is_keras_tensor(images) or dtype is None:
            return images
        dtype = tf.as_dtype(dtype)
        if dtype == tf.uint8:
            return scaled_batch(tf.convert_to_tensor(images), self.value_range)
        if dtype.is_floating and dtype != tf.float32:
            # float64 images (`pixels / 255.0`) would meet float32 weights in the loss.
            return tf.cast(images, tf.float32)
        if not dtype.is_floating:
            raise TypeError(self._dtype_refusal(self.value_range, dtype.name))
        return images

    def _dtype_refusal(self, value_range, dtype_name):
        return (
            f"{type(self).__name__} takes images as uint8 pixels (0-255) or floats on its scale {value_range}, "
            f"got {dtype_name}"
        )

    def checked_images(self, inputs):
        """`inputs`, checked to be a batch of images (`checked`), at the model's value range (`scaled_images`)."""
        check_image_values(inputs, self.value_range, f"{type(self).__name__} takes")
        return self.scaled_images(self.checked(inputs, self.image_shape, "inputs"))

    def encode(self, inputs, training=False):
        """Maps inputs to codes."""
        return self.encoder(self.checked_images(inputs), training=training)

    def decode(self, codes, training=False):
        """Maps codes to reconstructions."""
        code_shape = tuple(self.code_shape((None, *self.image_shape))[1:])
        return self.decoder(self.checked(codes, code_shape, "codes"), training=training)

    def call(self, inputs, training=False):
        return self.decode(self.encode(inputs, training=training), training=training)

    def conditions(self, labels, count):
        """`{"labels": int32 array}` for a model that reads labels (checked: one per example), else `{}`.

        Models that do not read labels ignore any given.
        """
        if not self.conditioned:
            return {}
        labels = None if labels is None else np.asarray(labels)
        if labels is None or labels.dtype == object or labels.shape != (count,):
            got = "none" if labels is None or labels.dtype == object else f"shape {labels.shape}"
            raise ValueError(f"{type(self).__name__} needs one label per example: {count}, got {got}")
        classes = self.image_spec.num_classes
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= classes:
            raise ValueError(
                f"{type(self).__name__} takes labels as int class indices from 0 to {classes - 1}, got "
                f"{labels.dtype} labels from {labels.min()} to {labels.max()}"
            )
        return {"labels": labels.astype(np.int32)}

    def input_value_counts(self):
        """`{serving input name: how many values it takes}` for integer inputs whose range the model fixes.

        Part of the served contract (`signatures.Contract.value_counts`):
        a conditioned model's `labels` take its class count. The values are
        0 to the count less one; a scalar input given a count is an index
        (0 allowed), one without a count a number of examples (at least 1).
        """
        return {LABEL_INPUT: self.image_spec.num_classes} if self.conditioned else {}

    def call_inputs(self, inputs, labels=None):
        """What `call` takes: the inputs themselves (a conditioned model's: with their labels)."""
        return inputs

    def _unit_batches(self, images, labels, batch_size):
        """`(model-scale batch, its conditions)` pairs over images on [0, 1] (or uint8 pixels)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 and images.dtype.kind != "f":  # int32 pixels are no scale of [0, 1]
            raise TypeError(self._dtype_refusal((0.0, 1.0), images.dtype.name))
        check_image_values(
            images, (0.0, 1.0), f"{type(self).__name__}'s reconstruct, embed and interpolate take"
        )
        self._refuse_no_images(images)
        conditions = self.conditions(labels, len(images))
        if batch_size is None:
            batch_size = max(1, min(1000, BATCH_VALUES // max(1, int(np.prod(images.shape[1:])))))
        for i in range(0, len(images), batch_size):
            # Scaled a batch at a time: a float32 copy of them all, and
            # another on the model's scale, took 6 GB for 1,000 RGB 512x512 images.
            batch = np.asarray(unit_scale(images[i : i + batch_size]), np.float32)
            yield (
                self.image_spec.to_model_scale(batch),
                {k: v[i : i + batch_size] for k, v in conditions.items()},
            )

    def reconstruct(self, images, batch_size=None, *, labels=None):
        """Reconstructions of images on [0, 1], on [0, 1], as NumPy (any scale the model computes in).

        `batch_size`: images at a time; by default 1,000, fewer where they
        are large (`BATCH_VALUES` input values at most).
        `labels`: one per image, for models that read them (`conditioned`).
        Direct calls, not `predict`: `predict`'s set-up costs more than a few
        images take, and TensorBoard's pictures ask for a few every epoch.
        """
        outputs = [
            np.asarray(self(self.call_inputs(batch, **conditions)))
            for batch, conditions in self._unit_batches(images, labels, batch_size)
        ]
        return self.image_spec.to_unit_scale(np.concatenate(outputs))

    def embed(self, images, batch_size=None, *, labels=None):
        """Codes of images on [0, 1], as NumPy (the VAE's: the means of q(z|x)); `batch_size`, `labels` as for `reconstruct`."""
        return np.concatenate(
            [
                np.asarray(self.encode(batch, **conditions))
                for batch, conditions in self._unit_batches(images, labels, batch_size)
            ]
        )

    def interpolate(self, start, end, steps=10, *, label=None):
        """Decodes `steps` evenly spaced codes from `start`'s to `end`'s (images on [0, 1]), endpoints included.

        A conditioned model reads both images, and decodes the whole path,
        as class `label` (a style interpolation within the class). Returns
        `[steps, *image_shape]` on [0, 1].
        """
        if isinstance(steps, bool) or not (isinstance(steps, (int, np.integer)) and steps >= 2):
            raise ValueError(f"steps must be an integer of at least 2 (the two endpoints), got {steps!r}")
        codes = self.embed(np.stack([start, end]), labels=[label] * 2)
        t = np.linspace(0.0, 1.0, steps, dtype=np.float32).reshape((-1,) + (1,) * (codes.ndim - 1))
        blended = (1 - t) * codes[0] + t * codes[1]
        decoded = self.decode(blended, **self.conditions([label] * steps, steps))
        return self.image_spec.to_unit_scale(np.asarray(decoded))

    def picture_rows(self, images, labels=None):
        """The rows of pictures shown for `images` on [0, 1]: the images, then their reconstructions.

        NumPy on [0, 1], a batch per row, as `aekeras.callbacks.ReconstructionImages`
        draws them every epoch. `labels`: as for `reconstruct`.
        """
        return [images, self.reconstruct(images, labels=labels)]

    def encode_outputs(self, inputs):
        """The named outputs of the exported `encode` signature; `latent` first."""
        return {"latent": self.encode(inputs)}

    def serving_endpoints(self):
        """Signatures this variant exports beyond `serving_default`, `encode` and `decode`.

        Returns `{name: (function, {input name: tf.TensorSpec})}`; the
        function takes the named inputs and returns named outputs, images on
        [0, 1]. None by default; the VAE adds `sample`.
        """
        return {}

    def evaluation_metrics(self, images, rng, **options):
        """Per-example figures beyond the losses for a test batch on the model's scale.

        `options` are the model's evaluation options (its registry entry's);
        `rng` a numpy generator for any randomness. `aekeras.training`
        averages the figures over the test set. None by default; the VAE
        adds its importance-sampled likelihood.
        """
        return {}

    def reconstruction_error(self, targets, reconstructions):
        """The configured reconstruction loss, one value per example."""
        expected, got = targets.shape[1:], reconstructions.shape[1:]
        if len(expected) != len(got) or any(
            a is not None and b is not None and a != b for a, b in zip(expected, got, strict=True)
        ):
            raise ValueError(
                f"targets of shape {tuple(targets.shape)} do not match reconstructions of shape "
                f"{tuple(reconstructions.shape)}; fit takes batches of inputs alone or "
                "(inputs, targets) pairs, not (images, labels)"
            )
        return losses.reconstruction_loss(self.reconstruction_loss, targets, reconstructions)

    def compute_loss_terms(self, inputs, targets, training=False):
        """Returns `(terms, reconstructions)`: named per-example loss terms (each `[batch]`).

        Variants override this; the keys must be `loss_term_names` and
        `monitor_term_names`.
        """
        reconstructions = self(inputs, training=training)
        return {"reconstruction_loss": self.reconstruction_error(targets, reconstructions)}, reconstructions

    def evaluation_terms(self, inputs, targets):
        """Per-example figures `evaluate` reports besides the loss terms."""
        return {}

    @property
    def metrics(self):
        own = [self.loss_trackers, self.evaluation_trackers]
        # Keras's own "loss" tracker stays empty: the loss is tracked here.
        others = [m for m in super().metrics if m.name != "loss" and all(m is not o for o in own)]
        return [*own, *others]

    @property
    def metrics_names(self):
        """The figures' names in the order `evaluate` lists them: the loss, its terms, then compiled metrics."""
        return [name for metric in self.metrics for name in _metric_names(metric)]

    def _flatten_metrics_in_order(self, logs):
        # Keras's own ordering (`evaluate` without `return_dict`) sees inside
        # its compiled metrics only, so it sorted ours: [0] was the KL term.
        names = self.metrics_names
        results = [logs[name] for name in names if name in logs]
        results += [logs[name] for name in sorted(logs) if name not in names]
        return results[0] if len(results) == 1 else results

    def _unpack(self, data):
        """A batch's `(inputs, targets)` at the model's value range (targets: the inputs, unless given)."""
        inputs, targets, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} does not take sample weights; pass batches of inputs or "
                "(inputs, targets) pairs"
            )
        # Scaled once, before the batch shards split it: the same bits as the
        # pipeline's scaling, with a quarter of the bytes to read.
        inputs = self.scaled_images(inputs)
        if targets is None:
            return inputs, inputs
        if tf.as_dtype(targets.dtype).is_integer and targets.dtype != tf.uint8:
            # Labels, most likely: `reconstruction_error` says (images, labels) is not what fit takes.
            return inputs, targets
        return inputs, self.scaled_images(targets)

    def _total_loss(self, terms):
        """Per-example total: the terms plus any layer penalties (`self.losses`)."""
        total = tf.add_n([terms[name] for name in self.loss_term_names])
        if self.losses:
            total += tf.add_n(self.losses)
        return total

    def _update_metrics(self, inputs, targets, terms, total, reconstructions):
        """Updates the trackers and compiled metrics; returns the logs."""
        self.loss_trackers.update_state({"loss": total, **terms})
        logs = self.compute_metrics(inputs, targets, reconstructions, sample_weight=None)
        return {k: v for k, v in logs.items() if k not in self.evaluation_term_names}

    def train_step(self, data):
        inputs, targets = self._unpack(data)
        with tf.GradientTape() as tape:
            terms, total, reconstructions = self._training_terms(inputs, targets)
            # Divide by the global batch size, not the replica's: gradients
            # are summed over replicas, so the result matches one device.
            loss = tf.nn.compute_average_loss(total)
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        # The exact NaN stop: no update from a non-finite loss or after one.
        healthy = nonfinite.healthy(loss, self.nonfinite_step)
        nonfinite.record_first(self.nonfinite_step, healthy, self.optimizer.iterations)
        if self.trainable_weights:
            nonfinite.apply_gradients_if(healthy, self.optimizer, gradients, self.trainable_weights)
        else:  # frozen (`trainable = False`): only measured, as in Keras's own step; the NaN stop counts on
            self.optimizer.iterations.assign_add(1)
        return self._update_metrics(inputs, targets, terms, total, reconstructions)

    def _training_terms(self, inputs, targets):
        """`(terms, totals, reconstructions)` of a training batch, in `batch_shards` shards side by side.

        Each shard's terms are per example, so concatenated they are the
        whole batch's; layer penalties count once per shard, weighted by its
        share of the batch (exactly the whole batch's for weight penalties
        and Keras's activity penalties, which are batch means). A batch
        of a static size smaller than the shard count trains whole: an empty
        shard is no batch some models can take (`batch_jacobian` divides by
        its size); one of no static size is padded (`shards.split`).
        """
        count = self.batch_shards
        size = tf.nest.flatten(inputs)[0].shape[0]
        if count == 1 or (size is not None and size < count):
            return self._whole_batch_terms(inputs, targets)
        parts, starts, total, examples = shards.split((inputs, targets), count)
        results = []
        with shards.shard_draws(starts, total) as draws:
            for index, (shard_inputs, shard_targets) in enumerate(parts):
                draws.begin(index)
                results.append(self._whole_batch_terms(shard_inputs, shard_targets))
        concatenated = tf.nest.map_structure(lambda *tensors: tf.concat(tensors, axis=0), *results)
        if size is not None:
            return concatenated
        # The padding's results, if any, come last: only the batch's own are kept.
        return tf.nest.map_structure(lambda tensor: tensor[:examples], concatenated)

    def _whole_batch_terms(self, inputs, targets):
        terms, reconstructions = self.compute_loss_terms(inputs, targets, training=True)
        return terms, self._total_loss(terms), reconstructions

    def start_random_streams(self, seed):
        """Gives the model `seed_generator`, training's random stream, and evaluation's own (`noise_seeds`)."""
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._evaluation_draws = _EvaluationDraws(seed)

    @property
    def noise_seeds(self):
        """The `SeedGenerator` to draw from: `seed_generator`, or in `evaluation_stream` evaluation's own."""
        evaluating = any(model is self for model in getattr(_evaluating, "models", ()))
        if evaluating and self._evaluation_draws is not None:
            return self._evaluation_draws.generator
        return self.seed_generator

    @contextlib.contextmanager
    def evaluation_stream(self):
        """A context in which `noise_seeds` is evaluation's stream, in this thread (`test_step`'s, an NLL's)."""
        outer = getattr(_evaluating, "models", ())
        _evaluating.models = (*outer, self)
        try:
            yield
        finally:
            _evaluating.models = outer

    def test_step(self, data):
        inputs, targets = self._unpack(data)
        with self.evaluation_stream():
            terms, reconstructions = self.compute_loss_terms(inputs, targets, training=False)
            self.evaluation_trackers.update_state(self.evaluation_terms(inputs, targets))
        logs = self._update_metrics(inputs, targets, terms, self._total_loss(terms), reconstructions)
        return {**logs, **self.evaluation_trackers.result()}
