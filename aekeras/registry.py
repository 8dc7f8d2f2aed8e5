"""The model registry: the names `aekeras train` takes, how each is built, and its options.

The command line, training, the benchmark and the tests read this one
table (the report builds the lecture's own models, by their presets). A
new variant is its class, registered with Keras, and a `register_model`
call that says how to build it for an image spec and which options it
takes: in a package of its own, one module. Packages can add models
through the `aekeras.models` entry-point group, whose entries are modules
that call `register_model` when imported.
"""

import contextlib
import dataclasses
import inspect
import random
import warnings
from importlib import metadata

ENTRY_POINT_GROUP = "aekeras.models"
# TensorFlow's switch for oneDNN's kernels, read once as it loads.
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


# An `Option` whose default is its builder's own (`register_model` reads it).
FROM_BUILDER = "<the builder's default>"


@dataclasses.dataclass(frozen=True)
class Option:
    """One model option, `--name` on the command line.

    Args:
        name: the keyword argument of the model's builder (`latent_dim`).
        type: `int`, `float`, `str`, `bool` (a flag) or `list` (of
            positive integers, `500,500` on the command line).
        default: the value when the option is not given. Builder options
            leave it out: `register_model` fills in the builder's own
            default, so the value has one home. Evaluation options, and
            builders that take options through `**kwargs`, give it here.
        help: one line for `--help`.
        choices: the values allowed, for `str` options.
        minimum: the least value allowed, for `int` options.
        evaluation: the option sets how the trained model is evaluated
            (passed to `evaluate`, not to the builder).
    """

    name: str
    type: type
    default: object = FROM_BUILDER
    help: str = ""
    choices: tuple = None
    minimum: int = 1
    evaluation: bool = False

    @property
    def flag(self):
        return "--" + self.name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered model: `build(image_spec, **options)` gives an untrained model.

    `intra_op_threads` is the number of threads per TensorFlow op that
    trains it fastest (0: TensorFlow's own choice, one per core), or a
    function of the builder options giving it; see `default_intra_op_threads`.
    `onednn`: whether it trains faster on oneDNN's kernels, or a function of
    the builder options saying so; see `onednn_environment`.
    """

    name: str
    build: object
    options: tuple
    description: str
    intra_op_threads: object = 0
    onednn: object = False

    def option(self, name):
        return next((o for o in self.options if o.name == name), None)

    def defaults(self):
        return {o.name: o.default for o in self.options}

    def split_options(self, options):
        """`(builder options, evaluation options)`, defaults filled in.

        Raises:
            ValueError: for an option this model does not take, an
                integer one below its minimum, or a value outside its choices.
        """
        unknown = sorted(set(options) - {o.name for o in self.options})
        if unknown:
            raise ValueError(
                f"the {self.name} model does not take {', '.join(unknown)} (it takes "
                f"{', '.join(o.name for o in self.options) or 'no options'})"
            )
        for option in self.options:
            value = options.get(option.name, option.default)
            # Evaluation options reach no constructor that would check them.
            if (option.type is int and value is not None) and (
                isinstance(value, bool) or not isinstance(value, int) or value < option.minimum
            ):
                raise ValueError(
                    f"{option.name} must be an integer of at least {option.minimum}, got {value!r}"
                )
            # The command line accepts any model's choices for an option several take.
            if option.choices is not None and value not in option.choices:
                raise ValueError(
                    f"the {self.name} model takes {option.name} {', '.join(map(str, option.choices))}, got {value!r}"
                )
        values = {**self.defaults(), **options}
        evaluation = {o.name for o in self.options if o.evaluation}
        return (
            {k: v for k, v in values.items() if k not in evaluation},
            {k: v for k, v in values.items() if k in evaluation},
        )

    def default_intra_op_threads(self, options):
        """The threads per op that train this model, with `options`, fastest (0: TensorFlow's choice)."""
        return self._rule(self.intra_op_threads, options)

    def trains_faster_on_onednn(self, options):
        """Whether this model, with `options`, trains faster on oneDNN's kernels than on Eigen's."""
        return bool(self._rule(self.onednn, options))

    def _rule(self, rule, options):
        """`rule`, or what it gives for `options` where it is a function; ValueError for options the model does not take."""
        builder_options = self.split_options(options)[0]
        return rule(builder_options) if callable(rule) else rule


_REGISTRY = {}
_plugins_loaded = False
# `{entry point name: why it did not load}` of the installed variants left out.
_BROKEN_PLUGINS = {}


def register_model(name, build, options=(), description="", intra_op_threads=0, onednn=False):
    """Registers `build(image_spec, **options) -> model` under `name`; returns the entry.

    The same builder defined again (a notebook cell or a module run a
    second time: the same module and name) replaces the first.

    Raises:
        ValueError: for a name taken by another builder, or an option
            whose default the builder does not give or gives otherwise.
    """
    if name in _REGISTRY and _definition(_REGISTRY[name].build) != _definition(build):
        raise ValueError(f"a model named {name!r} is already registered")
    options = tuple(_with_builder_default(name, build, option) for option in options)
    _REGISTRY[name] = ModelEntry(name, build, options, description, intra_op_threads, onednn)
    return _REGISTRY[name]


def onednn_environment(name, options, environ):
    """`{ONEDNN_VARIABLE: "1"}` where model `name` with `options` trains faster on oneDNN and `environ` does not say; else `{}`.

    TensorFlow runs oneDNN's kernels by default only on CPUs with
    AVX-512-class features, Eigen's on others (an AVX2 AMD EPYC), and
    reads the variable once, as it loads: a process that trains the model
    sets it first. A user's own setting stands, and an unknown model or
    option is left for the command to refuse in its own words.
    """
    if ONEDNN_VARIABLE in environ:
        return {}
    try:
        faster = get_model(name).trains_faster_on_onednn(options)
    except ValueError:
        return {}
    return {ONEDNN_VARIABLE: "1"} if faster else {}


def _definition(build):
    """Where `build` is defined; a re-run cell makes a new function object with the same."""
    return getattr(build, "__module__", None), getattr(build, "__qualname__", id(build))


def _with_builder_default(model, build, option):
    """`option` with its builder's default filled in; ValueError where the two disagree or neither gives one."""
    parameters = inspect.signature(build).parameters
    parameter = None if option.evaluation else parameters.get(option.name)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if parameter is None and not (option.evaluation or takes_any):
        raise ValueError(f"model {model!r}: option {option.name!r} is no argument of its builder")
    if parameter is None or parameter.default is inspect.Parameter.empty:
        if option.default is FROM_BUILDER:
            raise ValueError(
                f"model {model!r}: option {option.name!r} needs a default (its builder gives none)"
            )
        return option
    default = parameter.default
    if option.type is list and default is not None:
        default = list(default)
    if option.default not in (FROM_BUILDER, default):
        raise ValueError(
            f"model {model!r}: option {option.name!r} has default {option.default!r} where its builder has "
            f"{default!r} (leave the option's out: the builder's is used)"
        )
    return dataclasses.replace(option, default=default)


def load_plugins():
    """Imports the built-in models' registrations and every `aekeras.models` entry point, once.

    Each entry point's module registers its model here and its classes
    with Keras (so `keras.models.load_model` finds them). One that fails to
    import is left out with a RuntimeWarning saying why (`get_model` of its
    name says it too), so the other models still work.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    # The built-in models register themselves when their presets load.
    from aekeras import presets  # noqa: F401

    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        # One broken package must not take every model with it: a module's
        # `sys.exit()` at import ended every command, as a traceback did.
        try:
            entry_point.load()
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001 - SystemExit too: some modules exit when a dependency is missing
            _BROKEN_PLUGINS[entry_point.name] = f"{entry_point.value}: {_one_line(error)}"
    # Warned once all are loaded: warnings raised as errors (`-W error`)
    # would otherwise leave the variants after a broken one unloaded for good.
    for name in _BROKEN_PLUGINS:
        warnings.warn(left_out(name), RuntimeWarning, stacklevel=2)


def _one_line(error):
    """`error`'s class and message on one line (a module's error may span several)."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def broken_plugins():
    """The names of the installed variants that did not load, which `load_plugins` left out."""
    load_plugins()
    return tuple(_BROKEN_PLUGINS)


def left_out(name):
    """What is said of the installed variant `name` that did not load: which, and why."""
    return f"the installed variant {name!r} did not load and is left out ({_BROKEN_PLUGINS[name]})"


def model_names():
    """The registered names, in registration order."""
    load_plugins()
    return tuple(_REGISTRY)


def options_by_name():
    """Every option any model takes: `{name: (option, names of the models taking it)}`.

    The option's help is that of the first model that takes it (each
    model's own choices and minimum are in its `ModelEntry`).
    """
    found = {}
    for model in model_names():
        for option in _REGISTRY[model].options:
            found.setdefault(option.name, (option, []))[1].append(model)
    return found


def get_model(name):
    """The `ModelEntry` of `name`; ValueError naming the registered ones otherwise."""
    load_plugins()
    if name in _BROKEN_PLUGINS and name not in _REGISTRY:
        raise ValueError(left_out(name))
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r} (expected one of {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def build_model(name, image_spec, seed=None, **options):
    """The untrained model `name` for images of `image_spec`, with `options`.

    `seed` sets the initial weights (the same seed, the same weights, however
    often it is called) and goes to builders that take one (models that
    draw noise). Without it, the weights follow Keras's global seed.
    """
    entry = get_model(name)
    builder_options, _ = entry.split_options(options)
    if seed is None:
        return entry.build(image_spec, **builder_options)
    if "seed" in inspect.signature(entry.build).parameters:
        builder_options["seed"] = seed
    with _seeded_initializers(seed):
        return entry.build(image_spec, **builder_options)


@contextlib.contextmanager
def _seeded_initializers(seed):
    """Python's `random` seeded with `seed` for the block, and put back as it was after.

    Keras draws the seed of each initializer made without one from Python's
    `random`, so this fixes a build's weights without touching anyone
    else's draws (`keras.utils.set_random_seed` reseeds every generator).
    """
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)
