"""The named choices of arguments across aekeras, importable without TensorFlow.

The command line lists them in `--help`, which must answer without loading
TensorFlow.
"""

VAE_ARCHITECTURES = ("dense", "conv")
VAE_LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "gaussian")
DOWNSAMPLING = ("pool", "strided")
NOISE_KINDS = ("dropout", "gaussian", "salt_and_pepper")
QUANTIZATIONS = ("none", "float16", "dynamic", "int8", "int16x8")
CALIBRATED = ("int8", "int16x8")  # the quantizations that need calibration images
LEARNING_RATE_SCHEDULES = ("constant", "cosine")
STRATEGIES = ("default", "mirrored", "multi_worker")
