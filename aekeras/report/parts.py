"""The report's parts, one function per section: compute, metrics, figure and text.

Each part takes the `Context` and returns a `Section`; `PARTS` lists them in
order, and the builder loops over it.
"""

import dataclasses
from pathlib import Path

import numpy as np

from aekeras import analysis, data, plotting, presets
from aekeras.analysis.anomaly import LATENT_COMPONENTS
from aekeras.analysis.inpainting import INPAINT_RADII
from aekeras.analysis.pca import PROBE_EXAMPLES
from aekeras.analysis.pretraining import C_CHOICES, FOLDS, epoch_choices
from aekeras.analysis.superresolution import BLOCK, TRAIN_STRIDE, VALIDATION_EVERY, even_crop
from aekeras.data.builtin import FASHION_MNIST


@dataclasses.dataclass
class Section:
    """One section of REPORT.md: its figure, its text, its table and its numbers."""

    key: str
    title: str
    figure: object
    text: str
    table: str = None
    metrics: object = None

    def markdown(self):
        figure = "" if self.figure is None else f"![{self.title}]({self.figure.name})\n\n"
        body = f"## {self.title}\n\n{figure}{self.text}\n"
        return body + (f"\n{self.table}\n" if self.table else "")


def skipped(ctx, key, title, reason):
    """The section of a part that cannot run on the report's data: no figure, one line (also said) why."""
    ctx.step(f"{title}: skipped, {reason}")
    return Section(key, title, None, f"Skipped: {reason}.", metrics={"skipped": reason})


def labels_missing(ctx, what):
    """Why a part that needs class labels cannot run (`what` it does with them), or None where the data has them."""
    if ctx.train_labels is None or ctx.test_labels is None:
        return f"{what} needs class labels, and `{ctx.data_name}` has none"
    return None


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value, digits=4):
    return f"{value:.{digits}f}"


def _quality_rows(metrics, names=None):
    names = names or {}
    return [
        [names.get(n, n), fmt(m["mse"]), fmt(m["psnr"], 2), fmt(m["ssim"], 3)] for n, m in metrics.items()
    ]


def reconstructions(ctx):
    models = {"standard (30)": ctx.model("standard"), "denoising (500)": ctx.model("denoising")}
    result = analysis.reconstructions(models, ctx.test_images)
    return Section(
        "reconstructions",
        "1. Reconstructions",
        plotting.reconstructions(result, ctx.out / "reconstructions.png"),
        f"Test {ctx.items[0]}s reconstructed by the lecture's standard model ({ctx.layer_sizes(30)}, tanh) and "
        f"by its denoising model ({ctx.layer_sizes(500)}, trained on dropout-masked inputs), on clean inputs.",
        table(["model", "MSE [0, 1]", "PSNR (dB)", "SSIM"], _quality_rows(result["metrics"])),
        result["metrics"],
    )


def kernels(ctx):
    kernel_sets = {name: analysis.encoder_kernels(ctx.model(name)) for name in ("standard", "denoising")}
    return Section(
        "kernels",
        "2. Encoder kernels",
        plotting.kernels(kernel_sets, ctx.out / "kernels.png"),
        f"The first 20 rows of each encoder's weight matrix as {ctx.image_size_text()} images, as the lecture "
        "compares them: the weights from every pixel to one code unit.",
    )


DENOISERS = ("denoising", "conv_denoising")


def _denoiser_names(ctx):
    return {
        "denoising": f"dense denoiser ({ctx.layer_sizes(500)})",
        "conv_denoising": "conv denoiser (32-64, strided)",
    }


INPAINTERS = {"telea": "OpenCV Telea", "navier_stokes": "OpenCV Navier-Stokes"}
# Training images the OpenCV radii are chosen on (the last ones: a
# validation set for a method that does not train).
RADIUS_IMAGES = 1000


def denoising_vs_inpainting(ctx):
    radii = analysis.best_inpainting_radii(ctx.train_images[-RADIUS_IMAGES:], seed=ctx.settings.seed)
    denoisers = {name: ctx.model(name) for name in DENOISERS}
    denoiser_names = _denoiser_names(ctx)
    result = analysis.denoising_vs_inpainting(denoisers, ctx.test_images, radii=radii, seed=ctx.settings.seed)
    psnr = {name: m["psnr"] for name, m in result["metrics"].items()}
    best_inpainter = max(INPAINTERS, key=psnr.get)
    gains = "; ".join(
        f"{label}: {psnr[name] - psnr[best_inpainter]:+.2f} dB" for name, label in denoiser_names.items()
    )
    names = {"corrupted": "corrupted input", **denoiser_names, **INPAINTERS}
    tried = ", ".join(map(str, INPAINT_RADII))
    return Section(
        "denoising_vs_inpainting",
        "3. Denoising vs inpainting",
        plotting.denoising_vs_inpainting(result, names, ctx.out / "denoising_vs_inpainting.png"),
        f"Each of {len(ctx.test_images)} test images loses each pixel with probability 0.5 (the lecture's "
        "dropout mask). Each denoising autoencoder, trained on that mask, sees the lecture's corrupted input "
        "(kept pixels doubled); OpenCV's `cv2.inpaint` sees the kept pixels and the mask, with the radius "
        f"that scores best on the last {min(RADIUS_IMAGES, len(ctx.train_images))} training images (of {tried} pixels: Telea "
        f"{radii['telea']}, Navier-Stokes {radii['navier_stokes']}). Against the better of the two, "
        f"{names[best_inpainter]}: {gains}.",
        table(["method", "MSE", "PSNR (dB)", "SSIM"], _quality_rows(result["metrics"], names)),
        {
            **result["metrics"],
            "radii": radii,
            "gain_over_best_inpainter_db": {n: psnr[n] - psnr[best_inpainter] for n in DENOISERS},
        },
    )


def _test_image(ctx, index):
    """`test digit 7` on MNIST, `test image 1 (class 3)` on other labelled data, `test image 1` on unlabelled."""
    if ctx.is_mnist:
        return f"test digit {ctx.test_labels[index]}"
    label = "" if ctx.test_labels is None else f" (class {ctx.test_labels[index]})"
    return f"test image {index}{label}"


def interpolation(ctx):
    like = "digit-like images" if ctx.is_mnist else "images like the training images"
    a, b = ctx.test_images[0], ctx.test_images[1]
    dense_path = analysis.interpolation(ctx.model("standard"), a, b)
    vae_path = analysis.interpolation(ctx.model("vae20"), a, b)
    paths = {
        "pixel space": dense_path["pixel"],
        "standard AE latent": dense_path["latent"],
        "VAE (20) latent": vae_path["latent"],
    }
    return Section(
        "interpolation",
        "4. Pixel vs latent interpolation",
        plotting.interpolations(paths, ctx.out / "interpolation.png"),
        f"Ten steps from {_test_image(ctx, 0)} to {_test_image(ctx, 1)}: blending pixels cross-fades two "
        f"images; blending codes and decoding passes through {like}.",
    )


def _covered_text(patch, shape):
    """Where `analysis.manifold_inpainting`'s centred patch lies: `An 8x8 grey square covers rows and columns 10-17`."""
    rows, columns = (f"{(side - patch) // 2}-{(side - patch) // 2 + patch - 1}" for side in shape[:2])
    where = f"rows and columns {rows}" if rows == columns else f"rows {rows} and columns {columns}"
    article = "An" if str(patch).startswith("8") or patch in (11, 18) else "A"
    return f"{article} {patch}x{patch} grey square covers {where}"


def manifold_inpainting(ctx):
    steps = ctx.settings.manifold_steps
    result = analysis.manifold_inpainting(
        ctx.model("vae20"), ctx.test_images[: ctx.settings.manifold_images], steps=steps
    )
    energy = result["energy"]
    return Section(
        "manifold_inpainting",
        "5. Inpainting by energy minimisation",
        plotting.manifold_inpainting(result, ctx.out / "manifold_inpainting.png"),
        f"{_covered_text(result['patch'], ctx.spec.shape)} of {len(result['images'])} test {ctx.items[0]}s. Starting "
        f"from the VAE encoder's code of the covered image, {steps} Adam steps on z minimise -log p(known "
        "pixels | z) + ||z||^2 / 2 (the VAE's prior); the patch is filled from the decoding. 'autoencoder' "
        "fills it from the VAE's one-pass reconstruction of the covered image; 'Telea' is OpenCV's. Mean "
        f"energy: {energy[0]:.1f} before, {energy[-1]:.1f} after.",
        table(["fill", "PSNR on the patch (dB)"], [[n, fmt(v, 2)] for n, v in result["patch_psnr"].items()]),
        {
            "patch_psnr": result["patch_psnr"],
            "energy_first": float(energy[0]),
            "energy_last": float(energy[-1]),
        },
    )


def _fashion_mnist_options(ctx):
    """`(read options, words)`: Fashion-MNIST at the report's image shape, and how the texts say so ("" on 28x28 grey images)."""
    height, width, channels = ctx.spec.shape
    if ctx.spec.shape == FASHION_MNIST.shape:
        return {}, ""
    return {"image_size": (height, width), "channels": channels}, f" (resized to {ctx.image_size_text()})"


def _out_of_distribution(ctx):
    """The standard model's scores of Fashion-MNIST against the report's test images; None and why, where it cannot."""
    options = _fashion_mnist_options(ctx)[0]
    try:
        fashion = data.load_arrays("fashion_mnist", "test", **options)[0][: ctx.settings.test_limit]
    except data.DataError as e:
        ctx.step(f"Fashion-MNIST not available, out-of-distribution part skipped: {e}")
        return None, "Fashion-MNIST was not available, so the out-of-distribution part was skipped."
    if fashion.shape == ctx.test_images.shape and np.array_equal(fashion, ctx.test_images):
        # A report on Fashion-MNIST's IDX files (--data-dir) scored its test set against itself: AUROC 50%.
        ctx.step("the report's data is Fashion-MNIST, out-of-distribution part skipped")
        return None, "The report's own data is Fashion-MNIST, so the out-of-distribution part was skipped."
    return analysis.out_of_distribution(ctx.model("standard"), ctx.test_images, fashion), None


# The one-class scores' column titles, in `analysis.anomaly.SCORES`' order.
_ONE_CLASS_COLUMNS = {
    "reconstruction": "reconstruction MSE (lecture)",
    "relative_reconstruction": "relative reconstruction error",
    "latent_density": "latent density",
    "combined": "relative error + latent density",
}


def _one_class_table(ctx, one_class):
    scores = one_class["auroc"]
    rows = [
        [digit, *[fmt(scores[name][digit], 1) for name in _ONE_CLASS_COLUMNS], components]
        for digit, components in one_class["latent_components"].items()
    ]
    rows.append(["mean", *[f"**{one_class['mean_auroc'][name]:.1f}**" for name in _ONE_CLASS_COLUMNS], ""])
    return table([f"normal {ctx.items[1]}", *_ONE_CLASS_COLUMNS.values(), "mixture size"], rows)


def _one_class_text(ctx, one_class):
    held_out = sum(one_class["validation_images"].values())
    kind = ctx.items[1]
    classes = "ten digits" if ctx.is_mnist else f"{len(one_class['latent_components'])} classes"
    thin = (
        "thin digits as normal, since little ink makes"
        if ctx.is_mnist
        else "dark images as normal, since they make"
    )
    # The published results are MNIST's.
    references = ", ".join(f"{name} {mean}" for name, mean in one_class["reference_mean_auroc"].items())
    return (
        f"One model per {kind} ({ctx.layer_sizes(256, 32, 256)}, sigmoid output, BCE), trained on that {kind}'s "
        f"training images only, less a tenth held out ({held_out} images over the {classes}); every "
        f"test image is scored, and the AUROC says how well the other {kind}{'s' if ctx.is_mnist else 'es'} "
        f"rank above the normal one. The lecture's score is the reconstruction MSE. It ranks {thin} "
        "a small error whatever the model, so the relative error divides it by the image's mean "
        "square. The latent density is the code's -log density under a Gaussian mixture of the "
        f"training codes, its size ({LATENT_COMPONENTS[0]} to {LATENT_COMPONENTS[-1]} components, last "
        "column) chosen by the held-out images' likelihood. The combined score adds the two, each "
        "standardised on the held-out images: nothing is chosen on test images or on anomalies."
        + (f" Published mean AUROCs on this protocol: {references}." if references else "")
    )


def _one_class(ctx):
    """`(one-class results, None)`, or `(None, why not)` where the labels cannot serve (`check_one_class_labels`)."""
    reason = labels_missing(ctx, "One-class detection (each class normal in turn)")
    if reason is None:
        try:  # before any one-class model trains
            analysis.check_one_class_labels(ctx.train_labels, ctx.test_labels)
        except ValueError as e:
            reason = f"one-class detection cannot run: {e}"
    if reason:
        ctx.step(f"6. Anomaly detection: one-class part skipped, {reason}")
        return None, reason
    one_class = analysis.one_class_anomaly_detection(
        lambda: presets.one_class(ctx.spec),
        *ctx.labelled_splits(),
        epochs=ctx.settings.one_class_epochs,
        seed=ctx.settings.seed,
        progress=ctx.step,
    )
    if not ctx.is_mnist:
        one_class["reference_mean_auroc"] = {}  # published on MNIST, no yardstick for other data
    return one_class, None


def anomaly(ctx):
    one_class, one_class_skipped = _one_class(ctx)
    ood, skipped = _out_of_distribution(ctx)
    resized = _fashion_mnist_options(ctx)[1]
    trained_on = f"all {ctx.data_name} digits" if ctx.is_mnist else f"{ctx.data_name}'s training images"
    ood_text = skipped or (
        f"The standard model, trained on {trained_on}, separates the Fashion-MNIST test set{resized} from "
        f"{ctx.data_name}'s by reconstruction error with AUROC **{ood['auroc']:.1f}%**."
    )
    one_class_text = (
        f"Skipped: {one_class_skipped}." if one_class_skipped else _one_class_text(ctx, one_class)
    )
    figure = plotting.anomaly(
        one_class,
        ood,
        ctx.out / "anomaly.png",
        names=(ctx.data_name, "Fashion-MNIST"),
        skipped=skipped,
        one_class_skipped=one_class_skipped,
    )
    return Section(
        "anomaly",
        "6. Anomaly detection",
        figure,
        f"{one_class_text} {ood_text}",
        one_class and _one_class_table(ctx, one_class),
        {
            **(one_class or {"one_class_skipped": one_class_skipped}),
            "mnist_vs_fashion_auroc": ood and ood["auroc"],
        },
    )


def _probe_labels(ctx):
    """`(train_labels, test_labels, None)` for the probes of part 7, or `(None, None, why no probe)`."""
    if ctx.train_labels is None or ctx.test_labels is None:
        return None, None, "the images have no labels"
    try:
        analysis.check_probe_labels(ctx.train_labels)
    except ValueError as e:
        ctx.step(f"7. Autoencoder vs PCA: compared without probes, {e}")
        return None, None, str(e)
    return ctx.train_labels, ctx.test_labels, None


def pca(ctx):
    settings = ctx.settings
    train_labels, test_labels, no_probe = _probe_labels(ctx)
    comparison = analysis.compare_with_pca(
        lambda size: presets.pca_rival(size, ctx.spec),
        ctx.train_images,
        train_labels,
        ctx.test_images,
        test_labels,
        epochs=settings.pca_epochs,
        seed=settings.seed,
        progress=ctx.step,
    )
    tied = analysis.tied_linear_subspace(ctx.train_images, 10, epochs=settings.pca_epochs, seed=settings.seed)
    pca_result, ae = comparison["pca"], comparison["autoencoder"]
    probed = no_probe is None
    rows = [
        [
            d,
            fmt(pca_result["mse"][i]),
            fmt(ae["mse"][i]),
            fmt(pca_result["probe_accuracy"][i], 3) if probed else "-",
            fmt(ae["probe_accuracy"][i], 3) if probed else "-",
        ]
        for i, d in enumerate(comparison["code_sizes"])
    ]
    probe = (
        f"a logistic-regression probe trained on the codes of the first "
        f"{min(PROBE_EXAMPLES, len(ctx.train_images)):,} training images classifies the test codes"
        if probed
        else f"no probe classifies the codes, as {no_probe}"
    )
    return Section(
        "pca",
        "7. Autoencoder vs PCA",
        plotting.pca(comparison, tied["angles"], ctx.out / "pca.png"),
        f"At each code size, PCA (scikit-learn) and a nonlinear autoencoder ({ctx.layer_sizes(256, 'd', 256)}) "
        f"reconstruct the test set; {probe}. Right: principal angles between the "
        "encoder weights of a tied-weight linear autoencoder with a 10-unit code and the top 10 "
        f"principal components (largest {tied['angles'].max():.1f} degrees; 0 means the same subspace).",
        table(["code size", "PCA MSE", "AE MSE", "PCA probe acc.", "AE probe acc."], rows),
        {
            **comparison,
            "tied_linear_principal_angles": tied["angles"].tolist(),
            **({} if probed else {"probes_skipped": no_probe}),
        },
    )


def super_resolution(ctx):
    images = even_crop(ctx.test_images)  # halved and doubled, an odd side comes back one shorter
    result = analysis.super_resolution(ctx.model("super_resolution"), images)
    height, width, channels = images.shape[1:]
    full, half = (ctx.image_size_text((height // f, width // f, channels)) for f in (1, 2))
    cropped = "" if images.shape == ctx.test_images.shape else f", cut to {full} (even sides),"
    return Section(
        "super_resolution",
        "8. Super-resolution",
        plotting.super_resolution(result, ctx.out / "super_resolution.png"),
        f"Test {ctx.items[0]}s{cropped} average-pooled to {half}, brought back to {full} by bicubic interpolation "
        "(`tf.image.resize`) and by a small convolutional autoencoder trained on pooled/original pairs.",
        table(["method", "PSNR (dB)"], [[n, fmt(v, 2)] for n, v in result["psnr"].items()]),
        result["psnr"],
    )


def _coloured(ctx):
    if ctx.test_labels is None:
        return "in one colour (the images have no labels)"
    return f"coloured by {ctx.items[1]}"


def vae_maps(ctx):
    vae2 = ctx.model("vae2")
    plotting.latent_grid(analysis.latent_grid(vae2), ctx.out / "vae_latent_grid.png")
    vae20 = ctx.model("vae20")
    # Prior draws from the report's seed, not the model's generator (whose
    # state depends on what the model did before this part).
    prior = np.random.default_rng(ctx.settings.seed).standard_normal((50, vae20.latent_dim))
    samples = np.asarray(vae20.decode(prior.astype(np.float32)))
    plotting.samples(samples, ctx.out / "vae_samples.png", "50 samples from the prior of the 20-D VAE")
    scatter = analysis.latent_scatter(vae2, ctx.test_images, ctx.test_labels)
    return Section(
        "vae_maps",
        "9. VAE latent maps",
        plotting.latent_scatter(scatter, ctx.out / "vae_latent_scatter.png", ctx.spec.class_names),
        f"The test set's z_mean under the 2-D VAE, {_coloured(ctx)}; below, the latent plane decoded "
        "on a 15x15 grid of normal quantiles (5%-95%), and samples from the 20-D VAE's prior.\n\n"
        "![latent grid](vae_latent_grid.png)\n\n![samples](vae_samples.png)",
    )


def curve_denoising(ctx):
    curve = analysis.curve_denoising(epochs=ctx.settings.curve_epochs, seed=ctx.settings.seed)
    metrics = {
        "mean_input_distance": float(curve["input_distance"].mean()),
        "mean_output_distance": float(curve["output_distance"].mean()),
    }
    return Section(
        "curve_denoising",
        "10. The denoising picture in 2-D",
        plotting.curve_denoising(curve, ctx.out / "curve_denoising.png"),
        "A denoising autoencoder (2-64-64-1-64-64-2, tanh) trained on points of the red curve with "
        "Gaussian noise (sigma 0.1), applied to every point of a grid over the plane; colour is how "
        f"far each point moves. Mean distance to the curve: {metrics['mean_input_distance']:.3f} before, "
        f"{metrics['mean_output_distance']:.3f} after.",
        metrics=metrics,
    )


def data_specific(ctx):
    from sklearn.datasets import load_sample_images

    samples = load_sample_images()
    side = ctx.settings.photograph_side
    photographs = {
        Path(name).stem: data.unit_scale(image[:side, :side])
        for name, image in zip(samples.filenames, samples.images, strict=True)
    }
    result = analysis.data_specific_super_resolution(
        photographs,
        epochs=ctx.settings.photo_super_resolution_epochs,
        seed=ctx.settings.seed,
        progress=ctx.step,
    )
    names = list(photographs)
    rows = [
        [f"{name} (held out)", fmt(result["bicubic"][name], 2)]
        + [fmt(result["psnr"][trained_on][name], 2) for trained_on in names]
        for name in names
    ]
    gains = {
        trained_on: {name: result["psnr"][trained_on][name] - result["bicubic"][name] for name in names}
        for trained_on in names
    }
    counts = ", ".join(
        f"{n}: {c['train']} training, {c['validation']} validation, {c['test']} test"
        for n, c in result["crops"].items()
    )
    kept = ", ".join(f"{name} {epoch}" for name, epoch in result["epochs"].items())
    return Section(
        "data_specific",
        "11. Autoencoders are data-specific",
        plotting.data_specific_super_resolution(result, ctx.out / "data_specific.png"),
        "scikit-learn's two sample photographs"
        + (f" (their top-left {side}x{side} corners)" if side else "")
        + f", each cut into {BLOCK}x{BLOCK} blocks in a checkerboard: "
        f"32x32 crops of one half train (one in {VALIDATION_EVERY} of its blocks validates instead), crops "
        f"tiling the other half test ({counts}; training crops every {TRAIN_STRIDE} pixels, in 8 "
        "orientations). One super-resolution autoencoder per photograph (16x16 -> 32x32, average-pooled "
        "inputs; three 64-filter convolutions, a transposed one, and a residual added to bicubic "
        f"upsampling) trains up to {ctx.settings.photo_super_resolution_epochs} epochs on its photograph's "
        f"crops and is kept at the epoch with the lowest validation MSE (epoch {kept}), then upsamples "
        "every photograph's test crops. PSNR of all test crops of a photograph together (of their mean "
        "squared error). Gain over bicubic: "
        + "; ".join(
            f"{trained_on} model on {name} {gain:+.2f} dB"
            for trained_on, row in gains.items()
            for name, gain in row.items()
        )
        + ".",
        table(["test crops", "bicubic (dB)"] + [f"{name} model (dB)" for name in names], rows),
        {**{k: result[k] for k in ("psnr", "bicubic", "epochs", "crops")}, "gain_over_bicubic_db": gains},
    )


def unlabelled_pretraining(ctx):
    key, title = "unlabelled_pretraining", "12. Learning from unlabelled data"
    reason = labels_missing(ctx, "Scoring classifiers trained on a few labelled images")
    if reason is None:
        try:  # before the denoiser trains: two classes or more, 10 training images of each
            analysis.check_pretraining_labels(ctx.train_labels, ctx.test_labels, per_class=10)
        except ValueError as e:
            reason = str(e)
    if reason:
        return skipped(ctx, key, title, reason)
    settings = ctx.settings
    result = analysis.unlabelled_pretraining(
        ctx.model("conv_denoising"),
        *ctx.labelled_splits(),
        draws=settings.pretraining_draws,
        epochs=settings.pretraining_epochs,
        seed=settings.seed,
    )
    names = analysis.PRETRAINING_METHODS
    rows = [
        [names[m], f"{100 * result['mean'][m]:.1f} +- {100 * result['std'][m]:.1f}"]
        + [f"{100 * a:.1f} ({c:g})" for a, c in zip(result["accuracy"][m], result["chosen"][m], strict=True)]
        for m in names
    ]
    mean = result["mean"]
    fine_tuning_gain = 100 * (mean["fine_tuned"] - mean["scratch"])
    code_gain = 100 * (mean["frozen_probe"] - mean["pixels_probe"])
    return Section(
        key,
        title,
        plotting.unlabelled_pretraining(result, names, ctx.out / "unlabelled_pretraining.png"),
        f"The convolutional denoiser of part 3 learned its encoder from {len(ctx.train_images)} training images "
        f"without their labels. {settings.pretraining_draws} times, {result['labelled']} labelled training "
        f"images (10 of each {ctx.items[1]}, seeded) train four classifiers, each scored on "
        f"{len(ctx.test_images)} test images: the denoiser's encoder architecture with a softmax layer, from "
        "scratch and from the denoiser's weights (full-batch Adam steps, 1e-3), and logistic regressions "
        "on the frozen codes and on the pixels. Each one's setting is chosen by "
        f"{FOLDS}-fold cross-validation on the {result['labelled']} labelled images alone: the "
        f"networks' number of steps among {list(epoch_choices(settings.pretraining_epochs))}, "
        f"the regressions' C among {[f'{c:g}' for c in C_CHOICES]} (chosen per draw, "
        "in brackets). Mean accuracy: the pretrained encoder fine-tuned "
        f"{fine_tuning_gain:+.1f} points over the same network from scratch; its frozen codes "
        f"{code_gain:+.1f} points over the pixels.",
        table(
            ["classifier", "accuracy (%) mean +- std"]
            + [f"draw {i}" for i in range(settings.pretraining_draws)],
            rows,
        ),
        result,
    )


PARTS = (
    reconstructions,
    kernels,
    denoising_vs_inpainting,
    interpolation,
    manifold_inpainting,
    anomaly,
    pca,
    super_resolution,
    vae_maps,
    curve_denoising,
    data_specific,
    unlabelled_pretraining,
)
