"""What the subcommands share: errors, argument types, the data options, quiet TensorFlow."""

import argparse
import contextlib
import os
import sys
import tempfile
import warnings
from pathlib import Path

from aekeras.choices import MAX_SEED
from aekeras.errors import CheckInterrupted

EXIT_USAGE = 2


class UsageError(Exception):
    """A command-line argument that cannot work; exit status 2."""


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, unless it has none to show (None, or a flag's False)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """Prints one line for a bad argument, and every option's default in its help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(message)


def sizes(text):
    """An argument type: comma-separated positive integers ("500,500"), as a list."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers (such as 500,500)"
        ) from None
    if any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"{text!r} holds a size below 1")
    return values


def integer_at_least(minimum):
    """An argument type: an integer of at least `minimum`."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{value} is not a positive integer" if minimum == 1 else f"{value} is less than {minimum}"
            )
        return value

    return parse


positive_int = integer_at_least(1)
non_negative_int = integer_at_least(0)


def seed(text):
    """An argument type: a seed, an integer from 0 to 2**32 - 1."""
    value = non_negative_int(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} is more than {MAX_SEED} (2**32 - 1)")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def fraction(text):
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def image_size(text):
    """`H` or `HxW`, as `(height, width)`."""
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (expected H or HxW, such as 32 or 32x48)")
    return (sizes[0], sizes[-1])


def data_source_help(what):
    """The help of an option naming a data source, as `aekeras.data.open_source` takes it."""
    from aekeras.data import DATASETS

    return (
        f"{what}: {', '.join(DATASETS)}, tfds:NAME, a folder of images (flat, or one subfolder per "
        "class) or an .npz/.npy file"
    )


def add_data_arguments(parser, data_default="mnist", what="the data"):
    """`--data` and the read options every kind of source takes."""
    from aekeras.data import DATASETS

    # One or the other: with both, the last on the line would win unseen.
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", default=data_default, help=data_source_help(what))
    source.add_argument(
        "--dataset", dest="data", choices=DATASETS, help="the same as --data, for built-in names"
    )
    add_read_arguments(parser)


def add_read_arguments(parser):
    """The options of how a source is read (`read_options` gathers them): its folder, size, channels, test share."""
    from aekeras.data import CHANNELS

    parser.add_argument(
        "--data-dir",
        help="built-in names: the folder of the four IDX files (default: $AEKERAS_DATA_DIR, then TFDS); "
        "tfds: names: the TFDS data folder",
    )
    parser.add_argument("--image-size", type=image_size, help="resize the images to H or HxW pixels")
    parser.add_argument(
        "--channels", type=int, choices=CHANNELS, help="convert the images to 1 or 3 channels"
    )
    # No default: left out, it is not in `read_options`, and ReadOptions' (or TrainConfig's) applies.
    parser.add_argument(
        "--test-fraction",
        type=fraction,
        help="share of the images held out for testing, where the source has no test split",
    )


def add_contract_argument(parser):
    parser.add_argument(
        "--allow-contract-change",
        action="store_true",
        help="publish even if the signatures differ from those the name's latest version serves "
        "(its clients then get the new ones)",
    )


def read_options(args):
    """The `aekeras.data.ReadOptions` fields the data arguments give."""
    options = {
        "data_dir": args.data_dir,
        "image_size": args.image_size,
        "channels": args.channels,
        "test_fraction": args.test_fraction,
    }
    return {k: v for k, v in options.items() if v is not None}


# What a run or an export writes below its folder takes up to about 200
# bytes more (`NAME/.staging-<host>-<pid>-<hex>/variables/variables.data-00000-of-00001`,
# TensorBoard's `events.out.tfevents.<time>.<host>...`): a folder within
# that of the system's limit failed after training, at the export.
_ROOM_BELOW = 256


def check_writable_folder(path, option):
    """Raises UsageError unless `path` is, or can be made, a writable folder with room below it.

    Room: `_ROOM_BELOW` bytes under the system's path limit. Nothing is
    created: the nearest existing ancestor is probed with a temporary file
    that is removed at once.
    """
    path = Path(path).absolute()
    existing = path
    try:
        while not existing.exists():
            existing = existing.parent
    except OSError as e:  # a name past the file system's limit
        raise UsageError(f"{option} {str(path)[:80]}...: {e.strerror}") from None
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is not a folder")
    limit = os.pathconf(existing, "PC_PATH_MAX")
    if len(os.fsencode(path)) + _ROOM_BELOW > limit:
        raise UsageError(
            f"{option} {str(path)[:80]}...: a path of {len(os.fsencode(path))} bytes leaves too little room for "
            f"the files written below it (at most {limit - _ROOM_BELOW} bytes)"
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise UsageError(f"{option} {path}: {existing} is not writable ({e.strerror})") from None


@contextlib.contextmanager
def stderr_silenced():
    """Sends the process's stderr (file descriptor 2) to a temporary file.

    TensorFlow's C++ libraries log at load time, before any setting can
    quiet them; what they wrote is shown only if the block fails (not
    where the user interrupted it).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except (KeyboardInterrupt, CheckInterrupted):
            raise  # the user's own stop, which no log line explains
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def native_logs_hidden(verbose):
    """A context in which C++ libraries' log lines (TFLite's converter, LiteRT) stay hidden unless `verbose`."""
    return contextlib.nullcontext() if verbose else stderr_silenced()


@contextlib.contextmanager
def _loading_quietly(verbose):
    """A context in which what loads TensorFlow leaves no C++ log line, unless `verbose`."""
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_logs_hidden(verbose):
        yield


# What Keras imports as it loads, where installed, for parts no command uses
# (`keras.wrappers`' scikit-learn estimators, `keras.visualization`'s plots).
# Neither is a dependency of Keras or TensorFlow, which load without them:
# kept out of that import, they took about 1.6 of a command's 6 s of start-up.
# The command's own imports of them later (the report's) load them as usual.
_OPTIONAL_FOR_KERAS = ("sklearn", "matplotlib")


@contextlib.contextmanager
def _not_importable(names):
    """A context in which importing a package of `names` fails as if it were not installed (unless loaded already)."""
    kept_out = [name for name in names if name not in sys.modules]
    sys.modules.update(dict.fromkeys(kept_out))  # None: an ImportError, which Keras expects
    try:
        yield
    finally:
        for name in kept_out:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


def start_tensorflow(verbose):
    """Loads TensorFlow, quietly unless `verbose`: no C++, absl or Python log lines."""
    with _loading_quietly(verbose), _not_importable(_OPTIONAL_FOR_KERAS):
        import tensorflow as tf

        tf.config.list_physical_devices()  # where CUDA complains on a machine without it
    if not verbose:
        tf.get_logger().setLevel("ERROR")
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)


@contextlib.contextmanager
def keras_defaults():
    """A context with Keras's defaults for what a user's keras.json or shell may set; the caller's after it.

    The command computes as documented whatever the user sets for their
    own Keras programs, as it runs on TensorFlow whatever `KERAS_BACKEND`
    says: their keras.json's (in `KERAS_HOME`, else ~/.keras) `floatx` of
    "float64" or "float16" stopped `aekeras train` and `export` with a line
    about `keras.config.set_dtype_policy`, which no command can follow;
    `KERAS_MAX_EPOCHS` and `KERAS_MAX_STEPS_PER_EPOCH`, Keras's caps for
    trying a script quickly, cut `aekeras train --epochs 3` to one epoch of
    two batches, published under a run.json saying 3 (`--epochs` and
    `--limit` are the command's own). The `epsilon` (the clip of a
    cross-entropy taken of probabilities) and the `image_data_format` are
    set too, for a variant's layers that read them.
    """
    import keras

    settings = (
        (keras.config.floatx, keras.config.set_floatx, "float32"),
        (keras.config.epsilon, keras.config.set_epsilon, 1e-7),
        (keras.config.image_data_format, keras.config.set_image_data_format, "channels_last"),
        (keras.config.max_epochs, keras.config.set_max_epochs, None),
        (keras.config.max_steps_per_epoch, keras.config.set_max_steps_per_epoch, None),
    )
    callers = [get() for get, _, _ in settings]
    for _, set_, default in settings:
        set_(default)
    try:
        yield
    finally:
        for (_, set_, _), value in zip(settings, callers, strict=True):
            set_(value)


def load_plugins_quietly(verbose):
    """Imports the installed variants (`registry.load_plugins`), quietly unless `verbose`.

    A variant's module that imports Keras loads TensorFlow, whose C++
    libraries log as they load: before the parser is built, so before
    `start_tensorflow` could quiet them. A variant that did not load is
    named in one line, and the command goes on without it.
    """
    from aekeras import registry

    # A broken variant's warning is said below, in one line; ignored, not
    # recorded, so that `-W error` (PYTHONWARNINGS) makes it no traceback.
    with warnings.catch_warnings(), _loading_quietly(verbose):
        warnings.simplefilter("ignore", RuntimeWarning)  # `action=` is Python 3.11's
        registry.load_plugins()
    if "tensorflow" in sys.modules:
        start_tensorflow(verbose)  # loaded already: its own loggers, quiet
    for name in registry.broken_plugins():
        print(f"aekeras: warning: {registry.left_out(name)}", file=sys.stderr)


def list_published(version_dir, out, serving_root=None):
    """`(models.config's path, None)` once it lists a version just published, else `(None, the error to end with)`.

    The config was checked before the command trained or exported; one
    edited since is left as it is, and the command ends saying the version
    is published but unlisted, after its report.
    """
    from aekeras import export
    from aekeras.errors import ModelFileError

    try:
        return export.write_models_config(out, serving_root), None
    except ModelFileError as e:
        relist = f"python -c \"import aekeras.export as e; e.write_models_config('{out}')\""
        return None, ModelFileError(
            f"{version_dir} is published but not listed: {e}; then `{relist}` lists it"
        )


def check_export_and_data(args):
    """Refuses, before TensorFlow loads, an `args.version_dir` that is no export, or `--data` that is not there.

    The version folder must also be writable: the conversions are written into it.
    """
    from aekeras import data

    version_dir = Path(args.version_dir)
    if not (version_dir / "saved_model.pb").is_file():
        raise UsageError(
            f"{version_dir}: no saved_model.pb (expected an export's version folder, "
            "e.g. saved_models/dense/1)"
        )
    check_writable_folder(version_dir, "version_dir")
    if args.data is not None:
        data.check_source(args.data, args.data_dir)


def export_data(args, version_dir, image_shape):
    """`(source, read options)`: `--data`, else what the export's run.json names."""
    from aekeras import data
    from aekeras.training.records import data_options, read_record

    if len(image_shape) != 3:
        raise UsageError(
            f"{version_dir}: takes flat vectors of {image_shape[0]} values, and the command line reads "
            "images (height x width x channels); convert and measure it in Python (aekeras.tflite.convert, "
            "aekeras.onnx.convert) on flattened images"
        )
    if args.data is not None:
        trained_on = _recorded_source(version_dir)
        if trained_on is not None and not _same_source(args.data, trained_on):
            print(
                f"note: {version_dir}'s run trained on {trained_on}; the images used here are {args.data}'s"
            )
        options = read_options(args)
        # The export's size and channels, unless asked otherwise.
        options.setdefault("image_size", image_shape[:2])
        options.setdefault("channels", image_shape[2])
        return args.data, options
    try:
        record = read_record(version_dir)
        source, options = data_options(record) if record and "data" in record else (None, None)
    # Garbled or edited: one line, not a traceback.
    except (TypeError, KeyError, ValueError, OSError) as e:
        reason = f"no {e}" if isinstance(e, KeyError) else str(e)
        raise UsageError(
            f"{version_dir}: its run.json cannot say what data the model was trained on ({reason}); pass --data"
        ) from None
    if source is None:
        raise UsageError(f"{version_dir}: no run.json says what data the model was trained on; pass --data")
    if not data.is_named_source(source) and not Path(source).exists():
        raise UsageError(
            f"{source}: the data {version_dir}'s run trained on is not there any more; pass --data with its new place"
        )
    # Where the run's data now needs another size, channels or folder, as a
    # refusal may say; the held-out share stays the run's (its test images).
    given = {k: v for k, v in read_options(args).items() if k != "test_fraction"}
    return source, {**options, **given}


def _recorded_source(version_dir):
    """The source an export's run.json names, or None: `--data` also serves exports whose run.json is missing or unreadable."""
    from aekeras.training.records import data_options, read_record

    try:
        return data_options(read_record(version_dir))[0]
    except (TypeError, KeyError, ValueError, OSError):
        return None


def _same_source(given, recorded):
    """Whether `--data` names the source a run recorded: the same name, or the same file or folder."""
    from aekeras import data

    if data.is_named_source(given) or data.is_named_source(recorded):
        return given == recorded
    return Path(given).expanduser().resolve() == Path(recorded).expanduser().resolve()


def export_test_images(args, version_dir, contract):
    """`(source, read options, test images, test labels)` for an export, at the export's image shape.

    The labels are None unless the export reads them (a conditioned model's).
    """
    from aekeras import data, signatures

    image_shape = next(
        i for i in contract.signature("encode").inputs if i.name == signatures.IMAGE_INPUT
    ).shape[1:]
    source, options = export_data(args, version_dir, image_shape)
    test_images, test_labels = data.load_arrays(source, "test", **options)
    if test_images.shape[1:] != tuple(image_shape):
        raise UsageError(
            f"{source}: images of shape {test_images.shape[1:]}, but the export takes {tuple(image_shape)}"
        )
    if not signatures.takes_labels(contract):
        return source, options, test_images, None
    if test_labels is None:
        raise UsageError(f"{source}: has no labels, and this export reads a label with every image")
    return source, options, test_images, test_labels


def print_reconstruction_mse(differences, format_name, image_count, source):
    """A conversion's test reconstruction MSE beside the SavedModel's, both of the calls its differences compared."""
    if differences.reconstruction_mse is None:  # a variant's `serving_default` that draws random numbers
        print("test reconstruction MSE: not compared, as serving_default draws random numbers")
        return
    converted, saved_model = differences.reconstruction_mse
    print(
        f"test reconstruction MSE on {image_count} images of {source}: {format_name} {converted:.6f}, "
        f"SavedModel {saved_model:.6f}"
    )


def print_flipped_picks(differences, format_name, image_count):
    """A note under a conversion's differences where its codebook picks differ from the SavedModel's (a VQ-VAE's).

    Those images were left out of the differences (`signatures.max_differences`).
    """
    if not differences.picks_differ:
        return
    print(
        f"note: {format_name} picked another codebook vector at {differences.picks_differ:.2%} of positions, in "
        f"{differences.images_left_out} of {image_count} test images, left out of the differences above: a "
        "pick flips where two vectors lie at near-equal distances, and moves the code and the pixels decoded "
        "from it; far more than a tenth of a percent means the conversion moved the codes themselves"
    )
