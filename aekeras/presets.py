"""The lectures' named setups, in one place, and the models `aekeras train` knows.

Each function builds one setup for any `ImageSpec` (MNIST's by default);
the registrations below make them the command line's models, with their
options. The functions' own defaults, the lectures' setups, are the
options' defaults too.
"""

import importlib

from aekeras.choices import NARROW_CODE, NOISE_KINDS, VAE_ARCHITECTURES, VAE_LIKELIHOODS
from aekeras.registry import Option, register_model


def _models():
    """`aekeras.models`, imported when a builder runs: the registry (and
    `aekeras --help`) must load without TensorFlow."""
    return importlib.import_module("aekeras.models")


ARCHITECTURE = Option("architecture", str, help="encoder and decoder", choices=VAE_ARCHITECTURES)
BINARIZE = Option("binarize", bool, help="train on dynamically binarised images")
LIKELIHOOD = Option(
    "likelihood",
    str,
    help="p(x|z); auto: bernoulli for grey, gaussian for colour",
    choices=("auto", *VAE_LIKELIHOODS),
)
# Evaluation options reach no builder, so they give their own default.
NLL_SAMPLES = Option(
    "nll_samples", int, 50, "importance samples for the test NLL, 0 skips it", minimum=0, evaluation=True
)
TIED_WEIGHTS = Option("tied_weights", bool, help="decoder kernels = encoder kernels transposed")


def latent_option(text="code size"):
    return Option("latent_dim", int, help=text)


HIDDEN_DIMS = Option(
    "hidden_dims", list, help="hidden layer sizes of the dense encoder, mirrored by the decoder"
)


def _plain(image_spec, architecture, latent, tied_weights, **dense_options):
    """The dense or convolutional autoencoder a denoising or contractive model wraps."""
    if architecture == "conv":
        if tied_weights:
            raise ValueError("tied_weights conflicts with architecture 'conv' (it ties dense layers)")
        return _models().ConvAutoencoder(latent_dim=latent, image_spec=image_spec)
    return _models().DenseAutoencoder(
        latent_dim=latent, tied_weights=tied_weights, image_spec=image_spec, **dense_options
    )


def nyu_dense(image_spec=None, latent_dim=30, tied_weights=False):
    """NYU: input -> 30 -> input, tanh, inputs on [-1, 1], MSE (500: over-complete)."""
    return _models().DenseAutoencoder(latent_dim=latent_dim, tied_weights=tied_weights, image_spec=image_spec)


def lesson_conv(image_spec=None, latent_dim=None):
    """AI for Beginners: the 16-8-8 convolutional autoencoder, sigmoid, BCE."""
    return _models().ConvAutoencoder(filters=(16, 8, 8), latent_dim=latent_dim, image_spec=image_spec)


def nyu_denoising(
    image_spec=None,
    latent_dim=None,
    architecture="dense",
    tied_weights=False,
    noise="dropout",
    noise_level=0.5,
    seed=0,
):
    """NYU: the over-complete (500) dense model trained on the dropout mask (0 or 2)."""
    plain = _plain(
        image_spec, architecture, latent_dim or (500 if architecture == "dense" else None), tied_weights
    )
    return _models().DenoisingAutoencoder(plain, noise=noise, noise_level=noise_level, seed=seed)


def conv_denoiser(image_spec=None, noise="dropout", noise_level=0.5, seed=0):
    """The report's convolutional denoiser: strided 32-64 convolutions (a 7x7x64 code on MNIST), the lecture's mask."""
    plain = _models().ConvAutoencoder(filters=(32, 64), downsampling="strided", image_spec=image_spec)
    return _models().DenoisingAutoencoder(plain, noise=noise, noise_level=noise_level, seed=seed)


def nyu_contractive(
    image_spec=None, latent_dim=None, architecture="dense", tied_weights=False, contraction_weight=1e-4
):
    """The classic contractive autoencoder: a sigmoid code on [0, 1] images, lambda 1e-4."""
    plain = _plain(
        image_spec,
        architecture,
        latent_dim or (30 if architecture == "dense" else None),
        tied_weights,
        activation="sigmoid",
        output_activation="sigmoid",
        value_range=(0, 1),
    )
    return _models().ContractiveAutoencoder(plain, contraction_weight=contraction_weight)


def lesson_vae(
    image_spec=None,
    latent_dim=20,
    hidden_dims=(400,),
    architecture="dense",
    beta=1.0,
    binarize=False,
    likelihood="auto",
    seed=0,
):
    """The VAE: 784-400-20 dense (or strided conv), Bernoulli on grey, Gaussian on colour."""
    return _models().VAE(
        architecture=architecture,
        latent_dim=latent_dim,
        hidden_dims=hidden_dims,
        beta=beta,
        binarize=binarize,
        likelihood=likelihood,
        seed=seed,
        image_spec=image_spec,
    )


def burda_iwae(
    image_spec=None,
    latent_dim=50,
    hidden_dims=(200, 200),
    num_samples=5,
    warmup_num_samples=None,
    warmup_epochs=0,
    architecture="dense",
    binarize=False,
    likelihood="auto",
    seed=0,
):
    """The IWAE: Burda et al.'s one-stochastic-layer model, 784-200-200-50, k = 5."""
    return _models().IWAE(
        num_samples=num_samples,
        warmup_num_samples=warmup_num_samples,
        warmup_epochs=warmup_epochs,
        architecture=architecture,
        latent_dim=latent_dim,
        hidden_dims=hidden_dims,
        binarize=binarize,
        likelihood=likelihood,
        seed=seed,
        image_spec=image_spec,
    )


def sohn_cvae(
    image_spec=None,
    latent_dim=20,
    hidden_dims=(400,),
    architecture="dense",
    binarize=False,
    likelihood="auto",
    seed=0,
):
    """The conditional VAE: the lesson's VAE (784-400-20) with the one-hot label beside image and code."""
    return _models().ConditionalVAE(
        architecture=architecture,
        latent_dim=latent_dim,
        hidden_dims=hidden_dims,
        binarize=binarize,
        likelihood=likelihood,
        seed=seed,
        image_spec=image_spec,
    )


def oord_vqvae(image_spec=None, num_embeddings=64, embedding_dim=16, commitment_cost=0.25):
    """The VQ-VAE: strided 32-64 convolutions, a 7x7 code of 16-d vectors on MNIST, K = 64."""
    return _models().VQVAE(
        num_embeddings=num_embeddings,
        embedding_dim=embedding_dim,
        commitment_cost=commitment_cost,
        image_spec=image_spec,
    )


def pca_rival(code_size, image_spec=None):
    """The report's autoencoder against PCA: input-256-d-256-input, linear code, sigmoid, BCE."""
    return _models().DenseAutoencoder(
        latent_dim=code_size,
        hidden_dims=(256,),
        activation=None,
        output_activation="sigmoid",
        reconstruction_loss="binary_crossentropy",
        value_range=(0, 1),
        image_spec=image_spec,
    )


def one_class(image_spec=None):
    """The report's anomaly detector: the same, 784-256-32-256-784."""
    return pca_rival(32, image_spec)


def _one_thread_when_narrow(options):
    """One thread per op for narrow dense codes, TensorFlow's choice otherwise.

    A 784-30-784 step is some forty ops on 256 x 784 floats or less, too
    small to gain from splitting across threads: with one thread per op,
    `fit` trained it at about 340,000 images a second on 2 cores, against
    230,000 (measured outside the benchmark; BENCHMARKS.md's command-line
    race times both). The over-complete 784-500-784 was 7% slower on one
    thread (measured once), so wide codes keep TensorFlow's choice.
    """
    return 1 if options["latent_dim"] <= NARROW_CODE else 0


def _one_thread_when_dense(options):
    """One thread per op for the dense VAE, TensorFlow's choice for the convolutional one.

    The dense VAE's ops are small, and its batch shards
    (`aekeras.models.shards`) keep both cores busy: its `fit` trained
    38,500 images a second with one thread per op and two shards, against
    33,700 with TensorFlow's choice (measured once, outside the benchmark).
    Convolutions gain from more threads: the conv model's `fit` ran at
    11,100 with TensorFlow's choice and 9,700 on one thread.
    """
    return 1 if options["architecture"] == "dense" else 0


def _convolutional(options):
    """oneDNN's kernels for the convolutional architecture, TensorFlow's default for the dense one.

    On an AVX2 AMD EPYC, where TensorFlow runs Eigen's kernels by default,
    the conv model trained 7,122 and 6,972 images a second on oneDNN's
    against 2,421 and 2,368 on Eigen's, and the lecture's dense model
    142,220 and 102,736 against 219,666 and 219,140 (`fit`'s training
    function, 32 steps a call, medians of 25 calls, one process each,
    alternating); the dense VAE was the same either way (30,703 against
    31,266), and the strided convolutions of the conv VAE and the VQ-VAE
    gained less (2,045 against 1,599; 1,879 against 1,696; one process
    each). TensorFlow turns them on itself on CPUs with AVX-512-class
    features, where the dense model trained faster on them too
    (BENCHMARKS.md's `oneDNN off`).
    """
    return options["architecture"] == "conv"


register_model(
    "dense",
    nyu_dense,
    (latent_option("code size (500: the over-complete model)"), TIED_WEIGHTS),
    "the NYU lecture's dense autoencoder, 784-30-784 tanh on [-1, 1]",
    intra_op_threads=_one_thread_when_narrow,
)
register_model(
    "conv",
    lesson_conv,
    (latent_option("size of a dense code vector (default: the spatial code of the last level)"),),
    "the lesson's 16-8-8 convolutional autoencoder",
    onednn=True,
)
register_model(
    "denoising",
    nyu_denoising,
    (
        latent_option("code size (default: 500 dense, the spatial code conv)"),
        ARCHITECTURE,
        TIED_WEIGHTS,
        Option("noise", str, help="the corruption", choices=NOISE_KINDS),
        Option("noise_level", float, help="drop probability, Gaussian stddev or salt-and-pepper fraction"),
    ),
    "the NYU lecture's denoising autoencoder, dropout mask",
    onednn=_convolutional,
)
register_model(
    "contractive",
    nyu_contractive,
    (
        latent_option("code size (default: 30 dense, the spatial code conv)"),
        ARCHITECTURE,
        TIED_WEIGHTS,
        Option("contraction_weight", float, help="lambda, the weight of the Jacobian penalty"),
    ),
    "the contractive autoencoder, squared Frobenius norm of the code's Jacobian",
    onednn=_convolutional,
)
register_model(
    "vae",
    lesson_vae,
    (
        latent_option(),
        HIDDEN_DIMS,
        ARCHITECTURE,
        Option("beta", float, help="weight of the KL term"),
        BINARIZE,
        LIKELIHOOD,
        NLL_SAMPLES,
    ),
    "the variational autoencoder, 784-400-20",
    intra_op_threads=_one_thread_when_dense,
    onednn=_convolutional,
)
register_model(
    "iwae",
    burda_iwae,
    (
        latent_option(),
        HIDDEN_DIMS,
        Option("num_samples", int, help="k, importance samples per training example"),
        Option("warmup_num_samples", int, help="k for the first --warmup-epochs epochs (a cheaper start)"),
        Option("warmup_epochs", int, help="epochs trained with --warmup-num-samples", minimum=0),
        ARCHITECTURE,
        BINARIZE,
        LIKELIHOOD,
        NLL_SAMPLES,
    ),
    "the importance-weighted autoencoder, 784-200-200-50, k = 5",
    onednn=_convolutional,
)
register_model(
    "vqvae",
    oord_vqvae,
    (
        Option("num_embeddings", int, help="K, the codebook size"),
        Option("embedding_dim", int, help="length of each codebook vector"),
        Option("commitment_cost", float, help="beta, the weight of the commitment term"),
    ),
    "the vector-quantised VAE: a 7x7 code from a codebook of 64",
    onednn=True,
)
register_model(
    "cvae",
    sohn_cvae,
    (latent_option(), HIDDEN_DIMS, ARCHITECTURE, BINARIZE, LIKELIHOOD, NLL_SAMPLES),
    "the conditional VAE: class labels into encoder and decoder (needs a labelled source)",
    onednn=_convolutional,
)
