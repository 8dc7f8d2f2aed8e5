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
MAX_SEED = 2**32 - 1  # the largest seed NumPy's and Keras's generators take
# The checkpoints a run keeps by default, its latest epochs': every epoch's,
# each with the optimizer's state, filled disks with a large model's.
KEPT_CHECKPOINTS = 5

# The widest code of a dense autoencoder that trains as the lecture's
# 784-30-784 does: on one thread per op (`aekeras train`'s default for
# `dense`) and, without hidden layers, in batch shards
# (`DenseAutoencoder.trains_in_shards`).
NARROW_CODE = 64
