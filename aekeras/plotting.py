"""Figures of `aekeras report`, drawn from what `aekeras.analysis` returns.

Every function takes a result dict and a path, writes one PNG with
matplotlib's Agg renderer (no display needed) and returns the path.
"""

import textwrap

import matplotlib
import numpy as np
from matplotlib.figure import Figure


def _figure(*grid, figsize, **options):
    """A figure and its axes, as `pyplot.subplots` makes them, but without pyplot.

    Pyplot needs a backend: choosing Agg for it, as importing this module
    once did, switched a notebook's or program's own figures to one that
    shows nothing. A bare figure saves its PNG with Agg all the same.
    """
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(*grid, **options)


def _save(figure, path):
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _show(axis, image):
    """One grey or RGB image on [0, 1]."""
    axis.imshow(np.clip(np.squeeze(image), 0, 1), cmap="gray", vmin=0, vmax=1)


def image_rows(rows, path, title=None, columns=10):
    """A grid with one labelled row per `(label, images)` pair, images on [0, 1], grey or RGB."""
    figure, axes = _figure(len(rows), columns, figsize=(columns * 0.9, len(rows) * 0.95 + 0.4), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(columns):
            axis = axes[r, c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c < len(images):
                _show(axis, images[c])
            else:
                axis.axis("off")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path)


def reconstructions(result, path, count=10):
    rows = [("test image", result["images"][:count])]
    rows += [(name, images[:count]) for name, images in result["reconstructions"].items()]
    return image_rows(rows, path, "Test images and their reconstructions", count)


def kernels(kernel_sets, path):
    """Side by side grids of encoder kernels: `{name: [n, h, w, c]}` (RGB kernels shown mid-grey at 0)."""
    figure, axes = _figure(4, 5 * len(kernel_sets) + len(kernel_sets) - 1, figsize=(12, 5))
    for axis in axes.ravel():
        axis.axis("off")
    for k, (name, weights) in enumerate(kernel_sets.items()):
        offset = k * 6
        limit = np.abs(weights).max()
        for i, weight in enumerate(weights[:20]):
            axis = axes[i // 5, offset + i % 5]
            if np.shape(weight)[-1] == 3:
                axis.imshow((weight / limit + 1) / 2)
            else:
                axis.imshow(np.squeeze(weight), cmap="seismic", vmin=-limit, vmax=limit)
        axes[0, offset + 2].set_title(name, fontsize=11)
    colours = "mid-grey at 0" if np.shape(weights)[-1] == 3 else "red +, blue -"
    figure.suptitle(f"First 20 encoder kernels (weights from each pixel to a code unit; {colours})")
    return _save(figure, path)


def denoising_vs_inpainting(result, names, path, count=10):
    """The masks, corrupted and clean images, then every repair; `names` labels the repairs."""
    rows = [
        ("mask", result["missing"][:count].astype(np.float32)),
        ("corrupted", result["corrupted"][:count]),
        ("clean", result["images"][:count]),
        *[(names.get(name, name), repair[:count]) for name, repair in result["repairs"].items()],
    ]
    title = f"Dropout-masked images repaired {len(result['repairs'])} ways (mask: white = dropped)"
    return image_rows(rows, path, title, count)


def interpolations(results, path):
    """Rows of interpolations: `{label: images}` with 10 steps each."""
    return image_rows(list(results.items()), path, "Interpolating between two test images", 10)


def manifold_inpainting(result, path, count=10):
    rows = [
        ("covered", result["covered"][:count]),
        ("clean", result["images"][:count]),
        ("manifold", result["fills"]["manifold"][:count]),
        ("autoencoder", result["fills"]["autoencoder"][:count]),
        ("Telea", result["fills"]["telea"][:count]),
    ]
    side = result["patch"]
    return image_rows(rows, path, f"Filling a {side}x{side} grey patch", count)


# The one-class scores `anomaly` draws: the lecture's, and the best one.
_ANOMALY_BARS = (
    ("reconstruction", "reconstruction MSE", "tab:blue"),
    ("combined", "relative error + latent density", "tab:green"),
)


def _reason(axis, text):
    """An empty panel saying why it has nothing to show."""
    axis.axis("off")
    axis.text(0.5, 0.5, "\n".join(textwrap.wrap(text, 50)), ha="center", va="center")


def _one_class_bars(bars, one_class):
    digits = sorted(one_class["auroc"]["reconstruction"])
    positions = np.arange(len(digits))
    lowest = min(min(one_class["auroc"][score].values()) for score, _, _ in _ANOMALY_BARS)
    for offset, (score, label, colour) in zip((-0.2, 0.2), _ANOMALY_BARS, strict=True):
        values = [one_class["auroc"][score][d] for d in digits]
        mean = one_class["mean_auroc"][score]
        bars.bar(positions + offset, values, width=0.4, color=colour, label=f"{label}, mean {mean:.1f}")
    # Published results exist for MNIST only: other data passes none, and no line is drawn.
    for (name, mean), style in zip(one_class["reference_mean_auroc"].items(), (":", "-."), strict=False):
        bars.axhline(mean, color="tab:red", linestyle=style, label=f"{name}, mean {mean:.1f}")
    bars.set_xticks(positions, [str(d) for d in digits])
    bars.set_ylim(min(80.0, lowest - 5.0), 100)
    bars.set_xlabel("normal class")
    bars.set_ylabel("AUROC (%)")
    bars.set_title("One-class anomaly detection")
    bars.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize="small")


def anomaly(
    one_class,
    ood,
    path,
    names=("MNIST", "Fashion-MNIST"),
    skipped="Fashion-MNIST not available",
    one_class_skipped="One-class detection needs class labels",
):
    """One-class AUROCs per normal class; beside them `ood`'s scores of `names` (in, out); either panel says why it is empty (None)."""
    figure, (bars, hist) = _figure(1, 2, figsize=(13, 4))
    if one_class is None:
        _reason(bars, one_class_skipped)
    else:
        _one_class_bars(bars, one_class)
    if ood is None:
        _reason(hist, skipped)
    else:
        inside, outside = names
        top = np.quantile(np.concatenate([ood["in_scores"], ood["out_scores"]]), 0.995)
        bins = np.linspace(0, top, 60)
        hist.hist(ood["in_scores"], bins=bins, alpha=0.6, label=f"{inside} test (in)")
        hist.hist(ood["out_scores"], bins=bins, alpha=0.6, label=f"{outside} test (out)")
        hist.set_xlabel("reconstruction MSE")
        hist.set_title(f"{inside} model on {outside}: AUROC {ood['auroc']:.1f}%")
        hist.legend()
    return _save(figure, path)


def pca(result, angles, path):
    figure, (mse, accuracy, angle) = _figure(1, 3, figsize=(14, 4))
    sizes = result["code_sizes"]
    for method, style in (("pca", "o--"), ("autoencoder", "s-")):
        mse.plot(sizes, result[method]["mse"], style, label=method)
        if result[method].get("probe_accuracy"):  # none without labels
            accuracy.plot(sizes, result[method]["probe_accuracy"], style, label=method)
    mse.set_xlabel("code size")
    mse.set_ylabel("test MSE")
    mse.set_title("Reconstruction")
    accuracy.set_xlabel("code size")
    accuracy.set_ylabel("probe accuracy")
    accuracy.set_title("Logistic regression on the codes")
    for axis in (mse, accuracy):
        axis.set_xticks(sizes)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
        else:  # unlabelled images: no probe was trained
            axis.text(0.5, 0.5, "no labels", ha="center", va="center", transform=axis.transAxes)
    angle.bar(range(1, len(angles) + 1), angles)
    angle.set_xlabel("principal angle")
    angle.set_ylabel("degrees")
    angle.set_title("Tied linear AE vs top PCs")
    return _save(figure, path)


def super_resolution(result, path, count=10):
    low, high = ("x".join(str(d) for d in result[k].shape[1:3]) for k in ("low", "images"))
    rows = [
        (f"{low} input", result["low"][:count]),
        ("bicubic", result["bicubic"][:count]),
        ("autoencoder", result["model"][:count]),
        ("original", result["images"][:count]),
    ]
    return image_rows(rows, path, f"Super-resolution from {low} to {high}", count)


def latent_grid(result, path):
    images = result["images"]  # [size, size, h, w, c]
    size, _, height, width = images.shape[:4]
    mosaic = images.transpose(0, 2, 1, 3, 4).reshape(size * height, size * width, -1)
    figure, axis = _figure(figsize=(8, 8))
    _show(axis, mosaic)
    ticks = np.arange(size) * width + width // 2
    axis.set_xticks(ticks, [f"{v:.1f}" for v in result["z"][0, :, 0]], fontsize=7)
    axis.set_yticks(
        np.arange(size) * height + height // 2, [f"{v:.1f}" for v in result["z"][:, 0, 1]], fontsize=7
    )
    axis.set_xlabel("z[0]")
    axis.set_ylabel("z[1]")
    axis.set_title("Decoded latent plane of the 2-D VAE (normal quantiles)")
    return _save(figure, path)


def latent_scatter(result, path, class_names=None):
    """The 2-D codes, coloured by label when there are labels (one colour per class, named if given)."""
    figure, axis = _figure(figsize=(8, 7))
    x, y, labels = result["z_mean"][:, 0], result["z_mean"][:, 1], result["labels"]
    if labels is None or len(labels) != len(x):
        axis.scatter(x, y, s=3)
    else:
        classes = int(np.max(labels)) + 1
        colours = matplotlib.colormaps["tab10" if classes <= 10 else "turbo"].resampled(classes)
        points = axis.scatter(x, y, c=labels, cmap=colours, s=3, vmin=-0.5, vmax=classes - 0.5)
        bar = figure.colorbar(points, ticks=range(classes), label="class")
        if class_names is not None:
            bar.ax.set_yticklabels(class_names[:classes])
    axis.set_xlabel("z_mean[0]")
    axis.set_ylabel("z_mean[1]")
    axis.set_title("Test images in the 2-D VAE's latent space")
    return _save(figure, path)


def samples(images, path, title):
    """Every image, ten a row (fewer than ten made no row, and a short last row was left out)."""
    rows = [("", images[i : i + 10]) for i in range(0, len(images), 10)]
    return image_rows(rows, path, title, 10)


def curve_denoising(result, path):
    figure, axis = _figure(figsize=(7, 7))
    points = axis.scatter(
        result["inputs"][:, 0], result["inputs"][:, 1], c=result["moved"], cmap="viridis", s=12
    )
    step = max(1, len(result["inputs"]) // 400)
    start, end = result["inputs"][::step], result["outputs"][::step]
    axis.quiver(
        start[:, 0],
        start[:, 1],
        end[:, 0] - start[:, 0],
        end[:, 1] - start[:, 1],
        angles="xy",
        scale_units="xy",
        scale=1,
        width=0.002,
        alpha=0.6,
    )
    axis.plot(result["curve"][:, 0], result["curve"][:, 1], color="red", linewidth=2, label="data curve")
    figure.colorbar(points, label="distance moved by the denoising autoencoder")
    axis.set_aspect("equal")
    axis.legend(loc="upper right")
    axis.set_title("Each point of the plane, and where the denoiser sends it")
    return _save(figure, path)


def data_specific_super_resolution(result, path, count=8):
    """Held-out crops of each photograph (the hardest for bicubic) upsampled by bicubic and by each model."""
    rows = []
    for tested_on, examples in result["examples"].items():
        rows.append((f"{tested_on}: input", examples["low"][:count]))
        rows.append(("bicubic", examples["bicubic"][:count]))
        rows += [(f"{trained_on} model", examples[trained_on][:count]) for trained_on in result["psnr"]]
        rows.append(("original", examples["images"][:count]))
    return image_rows(rows, path, "Super-resolution of held-out crops, by model of each photograph", count)


def unlabelled_pretraining(result, names, path):
    """Test accuracy of each classifier, one dot per labelled subset, bar at the mean."""
    figure, axis = _figure(figsize=(9, 4))
    methods = list(result["accuracy"])
    for i, method in enumerate(methods):
        values = 100 * np.asarray(result["accuracy"][method])
        axis.barh(i, values.mean(), color="tab:blue", alpha=0.4)
        axis.plot(values, np.full(len(values), i), "o", color="tab:blue")
    every = 100 * np.concatenate([result["accuracy"][m] for m in methods])
    axis.set_xlim(max(0.0, every.min() - 5), min(100.0, every.max() + 3))  # the differences, not the zero
    axis.set_yticks(range(len(methods)), [names[m] for m in methods])
    axis.set_xlabel("test accuracy (%)")
    axis.set_title(f"Classifiers trained on {result['labelled']} labelled images")
    return _save(figure, path)
