"""Parts 3 and 5: repairing images, by denoising, by OpenCV, by the manifold."""

import cv2
import keras
import numpy as np
import tensorflow as tf

from aekeras import noise
from aekeras.analysis.metrics import checked_references, image_metrics, psnr
from aekeras.data.pipeline import unit_scale

CV2_METHODS = {"telea": cv2.INPAINT_TELEA, "navier_stokes": cv2.INPAINT_NS}
# The radii `best_inpainting_radii` tries, in pixels.
INPAINT_RADII = (1, 2, 3, 5, 7)


def cv2_inpaint(images, missing, method="telea", radius=3):
    """Fills the `missing` pixels of [0, 1] images with OpenCV's `cv2.inpaint`.

    Each channel is inpainted on its own, with its own mask, so a value
    lost in one channel only is filled from that channel's neighbours.

    Args:
        images: `[n, h, w, c]` on [0, 1]; missing values are ignored.
        missing: boolean array of the same shape, True where a value is lost.
        method: `"telea"` (`INPAINT_TELEA`) or `"navier_stokes"` (`INPAINT_NS`).
        radius: the inpainting neighbourhood radius, in pixels.

    Returns:
        The repaired images, `[n, h, w, c]` on [0, 1].
    """
    if method not in CV2_METHODS:
        raise ValueError(f"unknown method {method!r} (expected one of {sorted(CV2_METHODS)})")
    pixels = np.round(np.asarray(images) * 255).astype(np.uint8)
    masks = np.asarray(missing).astype(np.uint8) * 255
    repaired = np.empty_like(pixels)
    for index in np.ndindex(len(pixels), pixels.shape[-1]):
        image, mask = pixels[index[0], ..., index[1]], masks[index[0], ..., index[1]]
        repaired[index[0], ..., index[1]] = cv2.inpaint(
            np.where(mask, 0, image).astype(np.uint8), mask, radius, CV2_METHODS[method]
        )
    return unit_scale(repaired)


def _check_batch(images):
    """ValueError unless `images` is a non-empty `[n, h, w, c]` batch of floats on [0, 1]."""
    if np.ndim(images) != 4 or not len(images):
        raise ValueError(
            f"expected a non-empty batch of images [n, height, width, channels], got shape {np.shape(images)}"
        )
    # 8-bit pixels failed inside TensorFlow's dropout, or were named 0-255 floats once covered.
    checked_references(images, "the images")


def dropout_mask(shape, rate, seed):
    """`(uniform draws, missing)`: the lecture's dropout mask, True where a pixel is lost."""
    uniform = np.random.default_rng(seed).uniform(size=shape).astype(np.float32)
    return uniform, uniform < rate


def best_inpainting_radii(images, rate=0.5, seed=0, radii=INPAINT_RADII):
    """OpenCV's best radius per method by mean PSNR on `images` (validation images, not the test set).

    Returns `{method: radius}` for every `CV2_METHODS` method.
    """
    _, missing = dropout_mask(images.shape, rate, seed)

    def score(method, radius):
        return float(np.mean(psnr(cv2_inpaint(images, missing, method, radius), images)))

    return {method: max(radii, key=lambda r: score(method, r)) for method in CV2_METHODS}


def denoising_vs_inpainting(denoisers, images, rate=0.5, radii=None, seed=0):
    """Corrupts images with the lecture's dropout mask and repairs them with each denoiser and OpenCV.

    Each denoising autoencoder gets the lecture's input (dropped pixels 0,
    kept pixels scaled by 1 / (1 - rate), on the model's scale); OpenCV's
    Telea and Navier-Stokes inpainting get the kept pixels and a mask of
    the dropped ones.

    Args:
        denoisers: a trained aekeras autoencoder (named "autoencoder") or
            `{name: model}`.
        images: clean images on [0, 1] of the models' shape.
        rate: the drop probability.
        radii: OpenCV's inpainting radius per method (`{"telea": r,
            "navier_stokes": r}`, see `best_inpainting_radii`); 3 for both
            by default.
        seed: seed of the masks.

    Returns:
        `{"missing", "corrupted", "images", "repairs": {name: images},
        "metrics": {method: {"mse", "psnr", "ssim"}}, "radii"}`;
        "corrupted" and the repairs are on [0, 1], the metrics also cover
        the corrupted input itself, and the repairs hold each denoiser's
        and "telea" and "navier_stokes".
    """
    if not isinstance(denoisers, dict):
        denoisers = {"autoencoder": denoisers}
    radii = {method: 3 for method in CV2_METHODS} | dict(radii or {})
    _check_batch(images)
    # A rate of 1 drops every pixel (NaN figures); above it, or below 0, the mask means nothing.
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate must be a drop probability between 0 and 1, both excluded; got {rate!r}")
    uniform, missing = dropout_mask(images.shape, rate, seed)
    repairs = {}
    for name, denoiser in denoisers.items():
        spec = denoiser.image_spec
        # Kept a tensor: `predict` checks NumPy inputs as a user's images,
        # and the mask scales kept values by 1 / (1 - rate), past any image scale.
        corrupted = noise.dropout(spec.to_model_scale(images), uniform, rate)
        repairs[name] = spec.to_unit_scale(denoiser.predict(corrupted, batch_size=1000, verbose=0))
    for method, radius in radii.items():
        repairs[method] = cv2_inpaint(images, missing, method, radius)
    # Shown on [0, 1], whatever scale each model reads: dropped pixels black, kept ones doubled, clipped.
    shown = np.clip(np.asarray(noise.dropout(images, uniform, rate)), 0.0, 1.0)
    metrics = {"corrupted": image_metrics(shown, images)}
    metrics.update({name: image_metrics(repair, images) for name, repair in repairs.items()})
    return {
        "missing": missing,
        "corrupted": shown,
        "images": images,
        "repairs": repairs,
        "metrics": metrics,
        "radii": radii,
    }


def minimise_energy(vae, covered, known, steps, learning_rate, prior_weight, conditions=None):
    """Adam on z from the encoder's code: `(decode(z), mean energy per step)`.

    E(z) = -log p(pixels where `known` is 1 | z) + prior_weight * ||z||^2 / 2.
    `conditions`: a conditional VAE's (`vae.conditions`), for every call.
    """
    conditions = conditions or {}
    z = tf.Variable(vae.encode(covered, **conditions))
    optimizer = keras.optimizers.Adam(learning_rate)
    known_t, covered_t = tf.constant(known), tf.constant(covered)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = vae.decode_parameters(z, **conditions)
            pixel_nll = -vae.log_likelihood(covered_t, logits, reduction="none")
            nll = tf.reduce_sum(tf.reshape(known_t * pixel_nll, (tf.shape(z)[0], -1)), axis=-1)
            energy = nll + prior_weight * 0.5 * tf.reduce_sum(tf.square(z), axis=-1)
            total = tf.reduce_sum(energy)
        optimizer.apply_gradients([(tape.gradient(total, z), z)])
        return tf.reduce_mean(energy)

    energies = [float(step()) for _ in range(steps)]
    return vae.decode(z, **conditions).numpy(), np.array(energies)


def _patch_region(size, patch, corner):
    """`(patch side, index of the covered square in a batch)`: by default 2/7 of the smaller side, centred."""
    height, width = size
    patch = patch or max(1, round(min(height, width) * 2 / 7))
    row, col = corner or ((height - patch) // 2, (width - patch) // 2)
    _check_patch(patch, (row, col), (height, width))
    return patch, (slice(None), slice(row, row + patch), slice(col, col + patch))


def _check_patch(patch, corner, size):
    """Raises ValueError unless the square of side `patch` at `corner` lies inside images of `size`, leaving some known."""
    if not (isinstance(patch, (int, np.integer)) and 1 <= patch < min(size)):
        raise ValueError(
            f"patch must be a whole number of pixels from 1 to {min(size) - 1} (some pixels must stay known in "
            f"{size[0]}x{size[1]} images), got {patch!r}"
        )
    if not all(0 <= start <= side - patch for start, side in zip(corner, size, strict=True)):
        raise ValueError(
            f"corner {tuple(corner)} puts the {patch}-pixel patch outside {size[0]}x{size[1]} images (rows "
            f"0-{size[0] - patch}, columns 0-{size[1] - patch})"
        )


def manifold_inpainting(
    vae, images, patch=None, corner=None, steps=300, learning_rate=0.05, prior_weight=1.0, *, labels=None
):
    """Fills a covered patch by finding the closest point on the learned manifold.

    A grey square covers a patch of each image. Starting from the encoder's
    guess, gradient descent on z (with `tf.GradientTape`) minimises the
    energy E(z) = -log p(known pixels | z) + prior_weight * ||z||^2 / 2: the
    decoder's likelihood of the pixels that were not covered plus the VAE's
    N(0, I) prior. The patch is then filled from decode(z).

    Args:
        vae: a trained `aekeras.models.VAE`.
        images: clean images of the VAE's shape on [0, 1].
        patch: side of the covered square, in pixels; by default 2/7 of the
            smaller side (8 for MNIST's 28).
        corner: (row, column) of its top-left pixel; by default the square
            is centred.
        steps: gradient steps on z.
        learning_rate: Adam's step size on z.
        prior_weight: weight of the prior term (0 ignores the prior).
        labels: a conditional VAE's, one per image.

    Returns:
        `{"covered", "images", "fills": {"manifold", "autoencoder", "telea"},
        "energy": energy per step, "patch_psnr": {method: mean dB}}`; each
        fill keeps the known pixels and replaces the patch.
    """
    if not hasattr(vae, "log_likelihood"):
        raise TypeError(
            f"manifold inpainting minimises the energy a VAE's likelihood and prior define; got "
            f"{type(vae).__name__}, which has neither"
        )
    _check_batch(images)
    patch, region = _patch_region(images.shape[1:3], patch, corner)
    known = np.ones(images.shape, np.float32)
    known[region] = 0.0
    covered = images * known + 0.5 * (1.0 - known)

    conditions = vae.conditions(labels, len(images))
    manifold, energies = minimise_energy(vae, covered, known, steps, learning_rate, prior_weight, conditions)
    one_pass = vae.reconstruct(covered, labels=labels)
    telea = cv2_inpaint(images, known == 0, "telea")

    def fill(source):
        return images * known + np.asarray(source) * (1.0 - known)

    fills = {"manifold": fill(manifold), "autoencoder": fill(one_pass), "telea": telea}
    patch_psnr = {name: float(np.mean(psnr(f[region], images[region]))) for name, f in fills.items()}
    return {
        "covered": covered,
        "images": images,
        "fills": fills,
        "energy": energies,
        "patch_psnr": patch_psnr,
        "patch": patch,
    }
