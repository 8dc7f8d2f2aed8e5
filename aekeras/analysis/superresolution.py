"""Part 8: super-resolution, from half the size back to the full size."""

import keras
import numpy as np
import tensorflow as tf

from aekeras import models
from aekeras.analysis.metrics import checked_references, mse, pooled_psnr, psnr
from aekeras.models.blocks import DATA_FORMAT, OutputConv2D
from aekeras.training.callbacks import fit_stopping_at_a_batch


def downsample(images, factor=2):
    """Average pooling by `factor`: `[n, h, w, c]` -> `[n, h // factor, w // factor, c]`."""
    return tf.nn.avg_pool2d(images, ksize=factor, strides=factor, padding="VALID").numpy()


def super_resolution_model(low_shape, filters=32):
    """A convolutional autoencoder from `low_shape` images to twice their size, on [0, 1]."""
    encoder = keras.Sequential(
        [
            keras.layers.Conv2D(
                filters, 3, padding="same", activation="relu", data_format=DATA_FORMAT, name="conv_0"
            ),
            keras.layers.Conv2D(
                filters, 3, padding="same", activation="relu", data_format=DATA_FORMAT, name="conv_1"
            ),
        ],
        name="encoder",
    )
    decoder = keras.Sequential(
        [
            keras.layers.Conv2DTranspose(
                filters, 3, strides=2, padding="same", activation="relu", data_format=DATA_FORMAT, name="up"
            ),
            OutputConv2D(
                low_shape[-1], 3, padding="same", activation="sigmoid", data_format=DATA_FORMAT, name="output"
            ),
        ],
        name="decoder",
    )
    return models.Autoencoder(
        encoder, decoder, reconstruction_loss="mse", value_range=(0, 1), image_shape=tuple(low_shape)
    )


def even_crop(images):
    """Images cut to even height and width, so that halving and doubling give them back."""
    height, width = images.shape[1:3]
    return images[:, : height - height % 2, : width - width % 2]


def super_resolution(model, images):
    """Upsamples average-pooled test images with the model and with bicubic.

    Args:
        model: a trained `super_resolution_model` (half size -> full size).
        images: `[n, h, w, c]` on [0, 1], h and w even (see `even_crop`).

    Returns:
        `{"low", "bicubic", "model", "images", "psnr": {"bicubic", "model"}}`.
    """
    if images.ndim != 4 or images.shape[1] % 2 or images.shape[2] % 2:
        raise ValueError(
            f"super_resolution takes images [n, height, width, channels] of even height and width (halved, "
            f"then brought back), got shape {images.shape}; even_crop cuts them so"
        )
    low = downsample(images)
    bicubic = bicubic_upsampling(low, images.shape[1:3])
    # Clipped as bicubic's is: a linear (residual) output can overshoot [0, 1], and both
    # PSNRs then measure the images a viewer gets.
    upsampled = np.clip(model.reconstruct(low), 0.0, 1.0)
    return {
        "low": low,
        "bicubic": bicubic,
        "model": upsampled,
        "images": images,
        "psnr": {
            "bicubic": float(np.mean(psnr(bicubic, images))),
            "model": float(np.mean(psnr(upsampled, images))),
        },
    }


def residual_super_resolution_model(low_shape, filters=64, depth=3):
    """A super-resolution autoencoder that learns only what bicubic upsampling misses.

    The encoder's code carries the low-resolution image beside its
    features; the decoder upsamples that image bicubically and adds the
    residual it decodes from the features. The residual's last layer
    starts at zero, so training starts from bicubic's answer: without the
    skip, a small model trained on one photograph loses to bicubic.
    """
    channels = low_shape[-1]
    low = keras.Input(tuple(low_shape))
    features = low
    for i in range(depth):
        features = keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", data_format=DATA_FORMAT, name=f"conv_{i}"
        )(features)
    encoder = keras.Model(low, keras.layers.Concatenate(name="code")([features, low]), name="encoder")
    code = keras.Input((*low_shape[:-1], filters + channels))
    bicubic = keras.layers.UpSampling2D(2, interpolation="bicubic", data_format=DATA_FORMAT, name="bicubic")(
        code[..., filters:]
    )
    residual = keras.layers.Conv2DTranspose(
        filters, 3, strides=2, padding="same", activation="relu", data_format=DATA_FORMAT, name="up"
    )(code[..., :filters])
    residual = OutputConv2D(
        channels, 3, padding="same", kernel_initializer="zeros", data_format=DATA_FORMAT, name="residual"
    )(residual)
    decoder = keras.Model(code, keras.layers.Add(name="output")([bicubic, residual]), name="decoder")
    return models.Autoencoder(
        encoder, decoder, reconstruction_loss="mse", value_range=(0, 1), image_shape=tuple(low_shape)
    )


# Each photograph is cut into BLOCK x BLOCK blocks in a checkerboard, half
# for training and half held out, so both halves sample the whole picture (a
# band at the bottom held out one kind of texture: the flower's is nearly flat).
BLOCK = 64
# Training crops start every TRAIN_STRIDE pixels inside a training block.
TRAIN_STRIDE = 8
# One in VALIDATION_EVERY training blocks is held out to choose the epoch.
VALIDATION_EVERY = 5


def dihedral(crops):
    """Each crop in its 8 orientations (4 rotations, each also mirrored): SR training's usual augmentation."""
    crops = np.asarray(crops)
    turned = [np.rot90(crops, k, axes=(1, 2)) for k in range(4)]
    return np.concatenate(turned + [t[:, :, ::-1] for t in turned])


def photograph_crops(photo, crop=32, stride=TRAIN_STRIDE, block=BLOCK):
    """`(train, validation, test)` crops of one `[h, w, c]` photograph on [0, 1].

    Training crops every `stride` pixels inside the training blocks, each
    in its 8 orientations (`dihedral`); validation crops tile one in
    `VALIDATION_EVERY` training blocks (which then train nothing), test
    crops tile the held-out blocks. Blocks meet only at corners, so no
    test or validation crop overlaps a training crop.
    """
    train, validation, test = [], [], []
    for row in range(photo.shape[0] // block):
        for column in range(photo.shape[1] // block):
            cut = photo[row * block : (row + 1) * block, column * block : (column + 1) * block]
            if (row + column) % 2:
                test += _tiles(cut, crop, crop)
                continue
            # Validation blocks shift along each row, spread over the picture
            # as the test blocks are (every 5th in reading order made a band).
            if (column // 2 + row) % VALIDATION_EVERY == 0:
                validation += _tiles(cut, crop, crop)
            else:
                train += _tiles(cut, crop, stride)
    _check_crops(photo.shape, crop, block, {"training": train, "validation": validation, "test": test})
    as_float = lambda crops: np.stack(crops).astype(np.float32)  # noqa: E731
    return dihedral(as_float(train)), as_float(validation), as_float(test)


def _check_photograph(photo):
    """ValueError unless `photo` is one `[h, w, c]` image on [0, 1].

    A grey `[h, w]` photograph failed in TensorFlow's pooling, and 8-bit
    pixels only after the first model had trained.
    """
    if np.ndim(photo) != 3:
        raise ValueError(
            f"a photograph must be one image [height, width, channels], got shape {np.shape(photo)}"
        )
    checked_references(photo, "a photograph")


def _check_crops(shape, crop, block, parts):
    """ValueError unless each of `parts` (`{name: crops}`) holds a crop (numpy said "need at least one array to stack")."""
    empty = [name for name, crops in parts.items() if not crops]
    if empty:
        raise ValueError(
            f"a {shape[0]}x{shape[1]} photograph gives no {empty[0]} crops: it is cut into {block}x{block} blocks "
            f"in a checkerboard (half test, one in {VALIDATION_EVERY} of the rest validation), each tiled by "
            f"{crop}x{crop} crops; 128x128 pixels and crops no larger than a block give every part one"
        )


def _tiles(cut, crop, step):
    size = cut.shape[0]
    return [
        cut[i : i + crop, j : j + crop]
        for i in range(0, size - crop + 1, step)
        for j in range(0, size - crop + 1, step)
    ]


def bicubic_upsampling(low, size):
    """Bicubic upsampling to `size` (`tf.image.resize`), clipped to [0, 1]."""
    return np.clip(tf.image.resize(low, size, method="bicubic").numpy(), 0.0, 1.0)


def _fitted_super_resolution(crops, validation, epochs, seed):
    """A `residual_super_resolution_model` trained on full-size crops (Adam 1e-3, batch 64, MSE).

    Returns `(model, epoch)`: the model as it was after the epoch with the
    lowest MSE on the validation crops.
    """
    keras.utils.set_random_seed(seed)
    low = downsample(crops)
    model = residual_super_resolution_model(low.shape[1:])
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    best = keras.callbacks.EarlyStopping(monitor="val_loss", patience=epochs, restore_best_weights=True)
    history = fit_stopping_at_a_batch(
        model,
        low,
        crops,
        validation_data=(downsample(validation), validation),
        epochs=epochs,
        batch_size=64,
        verbose=0,
        callbacks=[best],
    )
    return model, int(np.argmin(history.history["val_loss"])) + 1


def data_specific_super_resolution(photographs, *, epochs, crop=32, seed=0, progress=None):
    """The lesson's "autoencoders are data-specific", measured: one super-resolution model per photograph.

    Each model (`residual_super_resolution_model`) is trained on crops of
    one photograph's training blocks, kept at its epoch with the lowest MSE
    on that photograph's validation crops, then upsamples the held-out
    test crops of every photograph; bicubic upsampling is the baseline.
    PSNR is pooled over each photograph's test crops (`pooled_psnr`).

    Args:
        photographs: `{name: [h, w, c] array on [0, 1]}`, two or more.
        epochs: the most epochs of each model (Adam 1e-3, batch 64, MSE).
        crop: size of the full-resolution crops (halved for the input).
        seed: seeds each model's weights and data order.
        progress: optional callable taking a message.

    Returns:
        `{"psnr": {trained_on: {tested_on: dB}}, "bicubic": {tested_on: dB},
        "epochs": {trained_on: the epoch kept}, "crops": {name: {"train",
        "validation", "test": n}}, "examples": {tested_on: {"low",
        "bicubic", "images", trained_on...: the 8 crops bicubic does worst
        on}}}`.
    """
    for photo in photographs.values():
        _check_photograph(photo)
    crops = {name: photograph_crops(photo, crop) for name, photo in photographs.items()}
    tests = {name: test for name, (_, _, test) in crops.items()}
    lows = {name: downsample(test) for name, test in tests.items()}
    bicubic = {name: bicubic_upsampling(low, (crop, crop)) for name, low in lows.items()}
    # The figure's crops: the 8 bicubic does worst on (most are flat sky or shade).
    shown = {name: np.sort(np.argsort(mse(bicubic[name], test))[-8:]) for name, test in tests.items()}
    examples = {
        name: {
            "low": lows[name][shown[name]],
            "bicubic": bicubic[name][shown[name]],
            "images": test[shown[name]],
        }
        for name, test in tests.items()
    }
    table, kept = {}, {}
    for trained_on, (train, validation, _) in crops.items():
        if progress:
            progress(f"super-resolution model of {trained_on}: {len(train)} crops, up to {epochs} epochs")
        model, kept[trained_on] = _fitted_super_resolution(train, validation, epochs, seed)
        table[trained_on] = {}
        for tested_on, test in tests.items():
            upsampled = np.clip(model.reconstruct(lows[tested_on]), 0.0, 1.0)
            table[trained_on][tested_on] = pooled_psnr(upsampled, test)
            examples[tested_on][trained_on] = upsampled[shown[tested_on]]
    return {
        "psnr": table,
        "bicubic": {name: pooled_psnr(bicubic[name], test) for name, test in tests.items()},
        "epochs": kept,
        "crops": {
            name: dict(zip(("train", "validation", "test"), map(len, parts), strict=True))
            for name, parts in crops.items()
        },
        "examples": examples,
    }
