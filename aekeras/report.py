"""`aekeras report`: every application of the lecture and the lesson, measured.

`build_report(out, settings)` trains what it needs (reusing models cached in
`out/cache/` by a hash of their settings), runs each part of
`aekeras.analysis` on the real MNIST test set, draws the figures with
`aekeras.plotting`, and writes `REPORT.md` and `metrics.json` beside them.
"""

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import keras
import numpy as np

from aekeras import analysis, data, plotting, presets
from aekeras.analysis.superresolution import downsample, super_resolution_model
from aekeras.training.records import environment


@dataclasses.dataclass
class ReportSettings:
    """How much the report trains and measures; `quick()` is for tests.

    Args:
        seed: seeds every model, mask and sample.
        train_limit: training images used (None: all 60,000).
        test_limit: test images measured (None: all 10,000).
        dense_epochs: the lecture's standard and denoising models.
        vae_epochs: the 2-D and 20-D VAEs.
        one_class_epochs: each of the ten one-class models.
        pca_epochs: each autoencoder compared with PCA, and the tied
            linear one.
        super_resolution_epochs: the 14x14 -> 28x28 model.
        curve_epochs: the 2-D toy denoiser.
        manifold_images: test images whose patch is filled by energy
            minimisation.
        manifold_steps: gradient steps on z for each.
    """

    seed: int = 0
    train_limit: int = None
    test_limit: int = None
    dense_epochs: int = 20
    vae_epochs: int = 30
    one_class_epochs: int = 30
    pca_epochs: int = 20
    super_resolution_epochs: int = 10
    curve_epochs: int = 100
    manifold_images: int = 500
    manifold_steps: int = 300

    @classmethod
    def quick(cls):
        return cls(
            train_limit=2000, test_limit=300, dense_epochs=1, vae_epochs=1, one_class_epochs=1,
            pca_epochs=1, super_resolution_epochs=1, curve_epochs=5, manifold_images=20, manifold_steps=20,
        )


def _without_names(config):
    """A config less its "name" entries, which Keras numbers per instance."""
    if isinstance(config, dict):
        return {k: _without_names(v) for k, v in config.items() if k != "name"}
    if isinstance(config, (list, tuple)):
        return [_without_names(v) for v in config]
    return config


def cached_model(cache_dir, name, build, train_inputs, train_targets, epochs, seed, progress):
    """Trains `build()` on the data, or loads the model cached for the same settings."""
    model = build()
    key = json.dumps(
        {"config": _without_names(model.get_config()), "epochs": epochs, "seed": seed,
         "examples": len(train_inputs)},
        sort_keys=True, default=str,
    )
    path = Path(cache_dir) / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.keras"
    if path.is_file():
        progress(f"{name}: reusing {path}")
        return keras.models.load_model(path)
    progress(f"{name}: training {epochs} epochs")
    keras.utils.set_random_seed(seed)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(train_inputs, train_targets, epochs=epochs, batch_size=256, verbose=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def build_report(out, settings=None, data_dir=None, progress=print):
    """Computes every part, writes the PNG figures, `REPORT.md` and `metrics.json`.

    Returns:
        The metrics dict written to `metrics.json`.
    """
    settings = settings or ReportSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    started = time.time()
    seed = settings.seed

    def step(message):
        progress(f"[report {time.time() - started:6.0f}s] {message}")

    train_images, train_labels = data.load_arrays("mnist", "train", data_dir=data_dir)
    test_images, test_labels = data.load_arrays("mnist", "test", data_dir=data_dir)
    train_images = train_images[: settings.train_limit]
    train_labels = train_labels[: settings.train_limit]
    test_images = test_images[: settings.test_limit]
    test_labels = test_labels[: settings.test_limit]
    m11 = data.to_model_scale(train_images, (-1.0, 1.0))

    standard = cached_model(cache, "standard", presets.nyu_dense, m11, None, settings.dense_epochs, seed, step)
    denoising = cached_model(
        cache, "denoising",
        lambda: presets.nyu_denoising(seed=seed),
        m11, None, settings.dense_epochs, seed, step,
    )
    vae2 = cached_model(cache, "vae2", lambda: presets.lesson_vae(latent_dim=2, seed=seed),
                         train_images, None, settings.vae_epochs, seed, step)
    vae20 = cached_model(cache, "vae20", lambda: presets.lesson_vae(latent_dim=20, seed=seed),
                          train_images, None, settings.vae_epochs, seed, step)
    metrics, sections = {}, []

    def section(title, figure, text, table=None):
        body = f"## {title}\n\n![{title}]({figure.name})\n\n{text}\n"
        sections.append(body + (f"\n{table}\n" if table else ""))

    def fmt(value, digits=4):
        return f"{value:.{digits}f}"

    # 1. Reconstructions.
    step("1/10 reconstructions")
    result = analysis.reconstructions({"standard (30)": standard, "denoising (500)": denoising}, test_images)
    metrics["reconstructions"] = result["metrics"]
    section(
        "1. Reconstructions", plotting.reconstructions(result, out / "reconstructions.png"),
        "Test digits reconstructed by the lecture's standard model (784-30-784, tanh) and by its "
        "denoising model (784-500-784, trained on dropout-masked inputs), on clean inputs.",
        _table(["model", "MSE [0, 1]", "PSNR (dB)", "SSIM"],
               [[n, fmt(m["mse"]), fmt(m["psnr"], 2), fmt(m["ssim"], 3)] for n, m in result["metrics"].items()]),
    )

    # 2. Kernels.
    step("2/10 kernels")
    kernel_sets = {"standard": analysis.encoder_kernels(standard), "denoising": analysis.encoder_kernels(denoising)}
    section(
        "2. Encoder kernels", plotting.kernels(kernel_sets, out / "kernels.png"),
        "The first 20 rows of each encoder's weight matrix as 28x28 images, as the lecture compares "
        "them: the weights from every pixel to one code unit.",
    )

    # 3. Denoising vs inpainting.
    step(f"3/10 denoising vs OpenCV inpainting on {len(test_images)} test images")
    result = analysis.denoising_vs_inpainting(denoising, test_images, seed=seed)
    metrics["denoising_vs_inpainting"] = result["metrics"]
    names = {"corrupted": "corrupted input", "autoencoder": "denoising autoencoder",
             "telea": "OpenCV Telea", "navier_stokes": "OpenCV Navier-Stokes"}
    best = max(result["repairs"], key=lambda n: result["metrics"][n]["psnr"])
    section(
        "3. Denoising vs inpainting", plotting.denoising_vs_inpainting(result, out / "denoising_vs_inpainting.png"),
        "Every test image loses each pixel with probability 0.5 (the lecture's dropout mask). The "
        "denoising autoencoder sees the lecture's corrupted input (kept pixels doubled); OpenCV's "
        "`cv2.inpaint` (radius 3) sees the kept pixels and the mask. Highest PSNR: "
        f"**{names[best]}**.",
        _table(["method", "MSE", "PSNR (dB)", "SSIM"],
               [[names[n], fmt(m["mse"]), fmt(m["psnr"], 2), fmt(m["ssim"], 3)] for n, m in result["metrics"].items()]),
    )

    # 4. Interpolation.
    step("4/10 interpolation")
    a, b = test_images[0], test_images[1]
    dense_path = analysis.interpolation(standard, a, b)
    vae_path = analysis.interpolation(vae20, a, b)
    section(
        "4. Pixel vs latent interpolation",
        plotting.interpolations({"pixel space": dense_path["pixel"], "standard AE latent": dense_path["latent"],
                                 "VAE (20) latent": vae_path["latent"]}, out / "interpolation.png"),
        f"Ten steps from test digit {test_labels[0]} to test digit {test_labels[1]}: blending pixels "
        "cross-fades two images; blending codes and decoding passes through digit-like images.",
    )

    # 5. Manifold inpainting.
    step(f"5/10 manifold inpainting of {settings.manifold_images} digits")
    result = analysis.manifold_inpainting(vae20, test_images[: settings.manifold_images],
                                          steps=settings.manifold_steps)
    metrics["manifold_inpainting"] = {"patch_psnr": result["patch_psnr"],
                                      "energy_first": float(result["energy"][0]), "energy_last": float(result["energy"][-1])}
    section(
        "5. Inpainting by energy minimisation", plotting.manifold_inpainting(result, out / "manifold_inpainting.png"),
        "An 8x8 grey square covers rows and columns 10-17. Starting from the VAE encoder's code of the "
        f"covered image, {settings.manifold_steps} Adam steps on z minimise -log p(known pixels | z) + "
        "||z||^2 / 2 (the VAE's prior); the patch is filled from the decoding. 'autoencoder' fills it "
        "from the VAE's one-pass reconstruction of the covered image; 'Telea' is OpenCV's. Mean energy: "
        f"{result['energy'][0]:.1f} before, {result['energy'][-1]:.1f} after.",
        _table(["fill", "PSNR on the patch (dB)"], [[n, fmt(v, 2)] for n, v in result["patch_psnr"].items()]),
    )

    # 6. Anomaly detection.
    step("6/10 anomaly detection")
    one_class = analysis.one_class_anomaly_detection(
        presets.one_class,
        train_images, train_labels, test_images, test_labels, epochs=settings.one_class_epochs, seed=seed,
        progress=step,
    )
    try:
        fashion = data.load_arrays("fashion_mnist", "test")[0][: settings.test_limit]
        ood = analysis.out_of_distribution(standard, test_images, fashion)
    except data.DataError as e:
        step(f"Fashion-MNIST not available, out-of-distribution part skipped: {e}")
        ood = None
    metrics["anomaly"] = {**one_class, "mnist_vs_fashion_auroc": ood and ood["auroc"]}
    rows = [[d, fmt(v, 1)] for d, v in one_class["auroc"].items()]
    rows.append(["mean", f"**{one_class['mean_auroc']:.1f}** (Deep SVDD: {one_class['reference_deep_svdd_mean_auroc']})"])
    ood_text = (f"The standard model, trained on all MNIST digits, separates the Fashion-MNIST test set from "
                f"MNIST's by reconstruction error with AUROC **{ood['auroc']:.1f}%**." if ood else
                "Fashion-MNIST was not available, so the out-of-distribution part was skipped.")
    section(
        "6. Anomaly detection", plotting.anomaly(one_class, ood, out / "anomaly.png"),
        "One model per digit (784-256-32-256-784, sigmoid output, BCE) trained on that digit only; "
        "every test image is scored by its reconstruction MSE, and the AUROC says how well other "
        "digits rank above the normal one. Published one-class Deep SVDD (Ruff et al., 2018) averages "
        f"94.8 over the ten digits. {ood_text}",
        _table(["normal digit", "AUROC (%)"], rows),
    )

    # 7. Autoencoder vs PCA.
    step("7/10 autoencoder vs PCA")
    comparison = analysis.compare_with_pca(
        presets.pca_rival,
        train_images, train_labels, test_images, test_labels, epochs=settings.pca_epochs, seed=seed, progress=step,
    )
    tied = analysis.tied_linear_subspace(train_images, 10, epochs=settings.pca_epochs)
    metrics["pca"] = {**comparison, "tied_linear_principal_angles": tied["angles"].tolist()}
    rows = [[d, fmt(comparison["pca"]["mse"][i]), fmt(comparison["autoencoder"]["mse"][i]),
             fmt(comparison["pca"]["probe_accuracy"][i], 3), fmt(comparison["autoencoder"]["probe_accuracy"][i], 3)]
            for i, d in enumerate(comparison["code_sizes"])]
    section(
        "7. Autoencoder vs PCA", plotting.pca(comparison, tied["angles"], out / "pca.png"),
        "At each code size, PCA (scikit-learn) and a nonlinear autoencoder (784-256-d-256-784) "
        "reconstruct the test set; a logistic-regression probe trained on the codes of the first "
        "10,000 training images classifies the test codes. Right: principal angles between the "
        "encoder weights of a tied-weight linear autoencoder with a 10-unit code and the top 10 "
        f"principal components (largest {tied['angles'].max():.1f} degrees; 0 means the same subspace).",
        _table(["code size", "PCA MSE", "AE MSE", "PCA probe acc.", "AE probe acc."], rows),
    )

    # 8. Super-resolution.
    step("8/10 super-resolution")
    low = downsample(train_images)
    sr_model = cached_model(cache, "super_resolution", lambda: super_resolution_model(low.shape[1:]), low,
                             train_images, settings.super_resolution_epochs, seed, step)
    result = analysis.super_resolution(sr_model, test_images)
    metrics["super_resolution"] = result["psnr"]
    section(
        "8. Super-resolution", plotting.super_resolution(result, out / "super_resolution.png"),
        "Test digits average-pooled to 14x14, brought back to 28x28 by bicubic interpolation "
        "(`tf.image.resize`) and by a small convolutional autoencoder trained on pooled/original pairs.",
        _table(["method", "PSNR (dB)"], [[n, fmt(v, 2)] for n, v in result["psnr"].items()]),
    )

    # 9. VAE maps.
    step("9/10 VAE maps")
    grid = analysis.latent_grid(vae2)
    scatter = analysis.latent_scatter(vae2, test_images, test_labels)
    plotting.latent_grid(grid, out / "vae_latent_grid.png")
    samples = np.asarray(vae20.sample(50))
    plotting.samples(samples, out / "vae_samples.png", "50 samples from the prior of the 20-D VAE")
    section(
        "9. VAE latent maps", plotting.latent_scatter(scatter, out / "vae_latent_scatter.png"),
        "The test set's z_mean under the 2-D VAE, coloured by digit; below, the latent plane decoded "
        "on a 15x15 grid of normal quantiles (5%-95%), and samples from the 20-D VAE's prior.\n\n"
        "![latent grid](vae_latent_grid.png)\n\n![samples](vae_samples.png)",
    )

    # 10. The denoising picture in 2-D.
    step("10/10 the denoising picture in 2-D")
    curve = analysis.curve_denoising(epochs=settings.curve_epochs, seed=seed)
    metrics["curve_denoising"] = {
        "mean_input_distance": float(curve["input_distance"].mean()),
        "mean_output_distance": float(curve["output_distance"].mean()),
    }
    section(
        "10. The denoising picture in 2-D", plotting.curve_denoising(curve, out / "curve_denoising.png"),
        "A denoising autoencoder (2-64-64-1-64-64-2, tanh) trained on points of the red curve with "
        "Gaussian noise (sigma 0.1), applied to every point of a grid over the plane; colour is how "
        "far each point moves. Mean distance to the curve: "
        f"{metrics['curve_denoising']['mean_input_distance']:.3f} before, "
        f"{metrics['curve_denoising']['mean_output_distance']:.3f} after.",
    )

    metrics["settings"] = dataclasses.asdict(settings)
    metrics["environment"] = environment()
    metrics["seconds"] = round(time.time() - started, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    header = (
        "# aekeras report\n\nThe lecture's and the lesson's autoencoder applications on the real MNIST "
        f"test set ({len(test_images)} images), produced by `aekeras report`. Settings (seed {seed}):\n\n"
        f"```json\n{json.dumps(dataclasses.asdict(settings), indent=2)}\n```\n\n"
        f"Environment: {json.dumps(environment())}. Took {metrics['seconds']:.0f} s. Numbers: `metrics.json`.\n"
    )
    (out / "REPORT.md").write_text(header + "\n" + "\n".join(sections))
    step(f"wrote {out / 'REPORT.md'}")
    return metrics
