"""The image spec: what a model's images are, from loading to serving.

An `ImageSpec` is produced by the data loader, stored in every model's
config and in each run's `run.json`, and read by every later stage (model
construction, the export's signatures, request checks, TFLite calibration,
the analyses). It also owns the one rescale between the [0, 1] scale that
files and served images use and the scale a model computes in.
"""

import dataclasses
import math

# The pixel scales a model may compute in. Outside the model (files,
# requests, TFLite inputs) images are always on [0, 1].
UNIT_RANGE = (0.0, 1.0)
VALUE_RANGES = (UNIT_RANGE, (-1.0, 1.0))


def to_model_scale(unit_images, value_range):
    """Maps images from [0, 1] to `value_range` (numpy arrays or tensors)."""
    low, high = value_range
    if (low, high) == UNIT_RANGE:
        return unit_images
    return unit_images * (high - low) + low


def to_unit_scale(images, value_range):
    """Maps images from `value_range` back to [0, 1] (numpy arrays or tensors)."""
    low, high = value_range
    if (low, high) == UNIT_RANGE:
        return images
    return (images - low) / (high - low)


def _shape_text(shape):
    return "x".join(str(d) for d in shape)


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """The images a data set holds and a model reads.

    Args:
        shape: one example's shape: `(height, width, channels)` for images,
            or `(size,)` for flat vectors.
        value_range: the pixel scale the model computes in, `(0, 1)` or
            `(-1, 1)`; `None` in a data source's spec, where the model
            chooses. Files, requests and exports stay on [0, 1].
        num_classes: how many classes the labels have; `None` if unlabelled.
        class_names: the classes' names, in label order, where known.
        source: where the data came from, in the form `aekeras.data.load`
            takes (`"mnist"`, `"tfds:cifar10"`, a folder or an array file).
    """

    shape: tuple
    value_range: tuple = None
    num_classes: int = None
    class_names: tuple = None
    source: str = None

    def __post_init__(self):
        shape = tuple(int(d) for d in self.shape)
        if len(shape) not in (1, 3) or min(shape) <= 0:
            raise ValueError(
                f"image shape {self.shape} is not supported (expected (height, width, "
                "channels) or (size,), all positive)"
            )
        value_range = self.value_range
        if value_range is not None:
            value_range = tuple(float(v) for v in value_range)
        if value_range is not None and value_range not in VALUE_RANGES:
            raise ValueError(f"value_range {value_range} is not supported (expected one of {VALUE_RANGES})")
        class_names = None if self.class_names is None else tuple(str(n) for n in self.class_names)
        num_classes = self.num_classes
        if class_names is not None and num_classes is None:
            num_classes = len(class_names)
        if num_classes is not None and (
            int(num_classes) < 1 or (class_names is not None and len(class_names) != num_classes)
        ):
            raise ValueError(f"num_classes {num_classes} does not fit class_names {class_names}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "value_range", value_range)
        object.__setattr__(self, "class_names", class_names)
        object.__setattr__(self, "num_classes", None if num_classes is None else int(num_classes))

    @property
    def is_image(self):
        """True for `(height, width, channels)` examples, False for flat vectors."""
        return len(self.shape) == 3

    @property
    def channels(self):
        return self.shape[-1] if self.is_image else None

    @property
    def size(self):
        """Values per example (784 for MNIST)."""
        return math.prod(self.shape)

    def describe(self):
        """`28x28x1`, `784` and the like."""
        return _shape_text(self.shape)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_model_scale(self, unit_images):
        return to_model_scale(unit_images, self.value_range or UNIT_RANGE)

    def to_unit_scale(self, images):
        return to_unit_scale(images, self.value_range or UNIT_RANGE)

    def get_config(self):
        """A JSON-serialisable dict; `ImageSpec.from_config` reads it back."""
        config = dataclasses.asdict(self)
        config["shape"] = list(self.shape)
        if self.value_range is not None:
            config["value_range"] = list(self.value_range)
        if self.class_names is not None:
            config["class_names"] = list(self.class_names)
        return config

    @classmethod
    def from_config(cls, config):
        if isinstance(config, cls):
            return config
        return cls(**config)
