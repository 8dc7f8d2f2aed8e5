import cv2
import keras
import numpy as np
import pytest

from aekeras import registry
from aekeras.analysis import best_inpainting_radii, cv2_inpaint, denoising_vs_inpainting, manifold_inpainting
from aekeras.analysis.inpainting import INPAINT_RADII, dropout_mask
from aekeras.analysis.metrics import MAX_PSNR, psnr
from aekeras.models import ConditionalVAE


def test_cv2_inpaint_keeps_known_pixels_and_fills_holes(digits):
    missing = np.zeros(digits[:10].shape, bool)
    missing[:, 12:16, 12:16] = True
    for method in ("telea", "navier_stokes"):
        repaired = cv2_inpaint(digits[:10], missing, method)
        assert repaired.shape == digits[:10].shape and repaired.dtype == np.float32
        np.testing.assert_allclose(repaired[~missing], digits[:10][~missing], atol=1 / 255)
        # The hole is filled from its neighbourhood, not left black.
        assert repaired[missing].mean() > 0.1
    with pytest.raises(ValueError, match="unknown method 'fast'"):
        cv2_inpaint(digits[:1], missing[:1], "fast")


def test_denoising_vs_inpainting(trained_dense, digits):
    result = denoising_vs_inpainting(trained_dense, digits[:200], seed=0)
    assert result["missing"].mean() == pytest.approx(0.5, abs=0.01)
    assert set(result["metrics"]) == {"corrupted", "autoencoder", "telea", "navier_stokes"}
    for m in result["metrics"].values():
        assert 0 <= m["mse"] <= 1 and 0 < m["psnr"] < MAX_PSNR and -1 <= m["ssim"] <= 1
    # OpenCV's repairs beat the corrupted input (the autoencoder here is
    # not a denoiser; the denoisers' ordering is the headline test's).
    corrupted = result["metrics"]["corrupted"]["psnr"]
    assert all(result["metrics"][n]["psnr"] > corrupted for n in ("telea", "navier_stokes"))
    # Above the lecture's rate the mask scales kept pixels past any image scale (by 3.3 at 0.7):
    # the model's own corrupted inputs are not refused as 0-255 pixels.
    heavy = denoising_vs_inpainting(trained_dense, digits[:200], rate=0.7, seed=0)
    assert heavy["missing"].mean() == pytest.approx(0.7, abs=0.01)
    assert heavy["metrics"]["autoencoder"]["psnr"] < result["metrics"]["autoencoder"]["psnr"]


def test_manifold_inpainting(trained_vae2, digits):
    result = manifold_inpainting(trained_vae2, digits[:32], steps=50)
    assert set(result["fills"]) == {"manifold", "autoencoder", "telea"}
    assert result["energy"][-1] < result["energy"][0]  # the descent lowers the energy
    assert result["patch"] == 8 and result["energy"].shape == (50,)
    outside = np.ones((28, 28), bool)
    outside[10:18, 10:18] = False
    # The default patch is MNIST's centred 8x8 square, covered in grey.
    np.testing.assert_array_equal(result["covered"][:, 10:18, 10:18], 0.5)
    np.testing.assert_array_equal(result["covered"][:, outside], digits[:32][:, outside])
    for fill in result["fills"].values():
        np.testing.assert_allclose(fill[:, outside], digits[:32][:, outside], atol=1 / 255)
    assert all(0 < p <= MAX_PSNR for p in result["patch_psnr"].values())
    # The first step's energy is E(z) at the encoder's code: -log p of the known pixels only, plus ||z||^2 / 2.
    z = trained_vae2.encode(result["covered"])
    pixel_nll = -trained_vae2.log_likelihood(
        result["covered"], trained_vae2.decode_parameters(z), reduction="none"
    ).numpy()
    energy = pixel_nll[:, outside].reshape(32, -1).sum(axis=1) + 0.5 * np.sum(np.square(z), axis=1)
    assert result["energy"][0] == pytest.approx(energy.mean(), rel=1e-4)
    # PSNR on the patch alone, where the fills differ.
    for name, fill in result["fills"].items():
        patch = psnr(fill[:, 10:18, 10:18], digits[:32, 10:18, 10:18])
        assert result["patch_psnr"][name] == pytest.approx(float(np.mean(patch)), rel=1e-5), name


def test_a_conditional_vae_inpaints_given_the_labels(digits, mnist_test_arrays):
    """It was refused ("needs labels"): the energy's encoder and decoder calls passed none."""
    cvae = ConditionalVAE(latent_dim=2, hidden_dims=(8,), num_classes=10)
    labels = mnist_test_arrays[1][:8]
    result = manifold_inpainting(cvae, digits[:8], steps=20, labels=labels)
    assert result["energy"][-1] < result["energy"][0]
    covered = result["covered"]
    np.testing.assert_allclose(
        result["fills"]["autoencoder"][:, 10:18, 10:18],
        cvae.reconstruct(covered, labels=labels)[:, 10:18, 10:18],
    )
    with pytest.raises(ValueError, match="ConditionalVAE needs one label per example: 8, got none"):
        manifold_inpainting(cvae, digits[:8], steps=1)


def test_radii_are_chosen_on_validation_images_and_used(digits, mnist_train_small):
    radii = best_inpainting_radii(mnist_train_small[0][-300:], seed=0)
    assert set(radii) == {"telea", "navier_stokes"} and set(radii.values()) <= set(INPAINT_RADII)
    # Each chosen radius scores best of all on the images it was chosen on.
    _, missing = dropout_mask(mnist_train_small[0][-300:].shape, 0.5, 0)
    for method, chosen in radii.items():
        scores = {
            r: psnr(
                cv2_inpaint(mnist_train_small[0][-300:], missing, method, r), mnist_train_small[0][-300:]
            ).mean()
            for r in INPAINT_RADII
        }
        assert scores[chosen] == max(scores.values())
    result = denoising_vs_inpainting({}, digits[:50], radii={"telea": 1, "navier_stokes": 7}, seed=0)
    _, missing = dropout_mask(digits[:50].shape, 0.5, 0)
    np.testing.assert_array_equal(result["repairs"]["telea"], cv2_inpaint(digits[:50], missing, "telea", 1))
    assert result["radii"] == {"telea": 1, "navier_stokes": 7}


def test_the_denoisers_beat_telea_and_navier_stokes_at_their_best_radii(
    mnist_train_arrays, mnist_test_arrays, conv_denoiser_30k
):
    """Part 3's headline on a fixed subset: both denoisers trained on the lecture's dropout
    mask repair masked digits better than OpenCV's two inpainting methods, each at the
    radius that scores best on held-out training digits, and the conv one best.

    Trained on the first 30,000 training digits (dense 10 epochs, conv 2); measured on
    the first 500 test digits: conv 20.50 dB, dense 19.44, Navier-Stokes 19.02 and
    Telea 18.82 (both at radius 2).
    """
    train = mnist_train_arrays[0]
    keras.utils.set_random_seed(0)
    dense = registry.build_model("denoising", None, seed=0)
    dense.compile(optimizer=keras.optimizers.Adam(1e-3))
    dense.fit(dense.image_spec.to_model_scale(train[:30000]), epochs=10, batch_size=256, verbose=0)
    denoisers = {"dense": dense, "conv": conv_denoiser_30k}
    radii = best_inpainting_radii(train[-1000:], seed=0)
    result = denoising_vs_inpainting(denoisers, mnist_test_arrays[0][:500], radii=radii, seed=0)
    psnr_of = {k: v["psnr"] for k, v in result["metrics"].items()}
    assert psnr_of["conv"] > psnr_of["dense"] > max(psnr_of["navier_stokes"], psnr_of["telea"])
    assert min(psnr_of["navier_stokes"], psnr_of["telea"]) > psnr_of["corrupted"]


def test_misuse_is_said_in_one_message(trained_dense, trained_vae2, digits):
    with pytest.raises(TypeError, match="got DenseAutoencoder, which has neither"):
        manifold_inpainting(trained_dense, digits[:2])
    # 8-bit pixels failed inside TensorFlow's dropout, and the VAE called them 0-255 floats.
    pixels = np.round(digits[:2] * 255).astype(np.uint8)
    with pytest.raises(ValueError, match=r"must be floats on \[0, 1\], got uint8 \(scale 8-bit pixels"):
        denoising_vs_inpainting({"dense": trained_dense}, pixels)
    with pytest.raises(ValueError, match=r"must be floats on \[0, 1\], got uint8 \(scale 8-bit pixels"):
        manifold_inpainting(trained_vae2, pixels)
    for images in (digits[:0], digits[:2, :, :, 0]):
        with pytest.raises(ValueError, match=r"expected a non-empty batch of images \[n, height, width"):
            denoising_vs_inpainting({"dense": trained_dense}, images)
    # A drop rate of 1 gave NaN figures, and one outside [0, 1] plausible ones.
    for rate in (0.0, 1.0, 1.5, -0.5):
        with pytest.raises(
            ValueError, match=r"rate must be a drop probability between 0 and 1, both excluded"
        ):
            denoising_vs_inpainting({"dense": trained_dense}, digits[:2], rate=rate)


@pytest.mark.parametrize(
    "patch, corner, message",
    [
        (28, None, r"patch must be a whole number of pixels from 1 to 27 \(some pixels must stay known"),
        (2.5, None, r"patch must be a whole number of pixels from 1 to 27"),
        (
            8,
            (21, 3),
            r"corner \(21, 3\) puts the 8-pixel patch outside 28x28 images \(rows 0-20, columns 0-20\)",
        ),
        (8, (-2, 3), r"corner \(-2, 3\) puts the 8-pixel patch outside"),
    ],
)
def test_a_patch_outside_the_images_is_refused(trained_vae2, digits, patch, corner, message):
    """Such patches gave NaN PSNRs, or covered the whole image and reported a PSNR all the same."""
    with pytest.raises(ValueError, match=message):
        manifold_inpainting(trained_vae2, digits[:2], patch=patch, corner=corner, steps=1)


def test_each_method_name_runs_its_own_opencv_flag(digits):
    """Swapped flags put Telea's PSNR under Navier-Stokes' name in part 3's table, and the other way round."""
    images = digits[:4]
    _, missing = dropout_mask(images.shape, 0.5, 0)
    pixels = np.round(images[..., 0] * 255).astype(np.uint8)
    masks = missing[..., 0].astype(np.uint8) * 255
    repaired = {}
    for method, flag in (("telea", cv2.INPAINT_TELEA), ("navier_stokes", cv2.INPAINT_NS)):
        expected = np.stack(
            [
                cv2.inpaint(np.where(m, 0, p).astype(np.uint8), m, 2, flag)
                for p, m in zip(pixels, masks, strict=True)
            ]
        )
        repaired[method] = cv2_inpaint(images, missing, method, 2)
        np.testing.assert_array_equal(np.round(repaired[method][..., 0] * 255), expected)
    assert not np.array_equal(repaired["telea"], repaired["navier_stokes"])
