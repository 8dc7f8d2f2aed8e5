"""`aekeras report --quick` end to end, as a user runs it."""

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from aekeras import losses, models
from aekeras.analysis.anomaly import LATENT_COMPONENTS, SCORES
from aekeras.report import Context, ReportSettings, Section, build_report, builder, cached_model, parts
from aekeras.report.context import data_digest, training_code

FIGURES = [
    "reconstructions.png",
    "kernels.png",
    "denoising_vs_inpainting.png",
    "interpolation.png",
    "manifold_inpainting.png",
    "anomaly.png",
    "pca.png",
    "super_resolution.png",
    "vae_latent_grid.png",
    "vae_latent_scatter.png",
    "vae_samples.png",
    "curve_denoising.png",
    "data_specific.png",
    "unlabelled_pretraining.png",
]


def test_quick_report_writes_every_figure_and_number(tmp_path):
    result = subprocess.run(
        # The limits in place of --quick's 2,000 and 300.
        [sys.executable, "-m", "aekeras", "report", "--out", "reports", "--quick", "--limit", "1500"]
        + ["--test-limit", "250"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "reports"
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (out / "REPORT.md").read_text()
    linked = set(re.findall(r"\]\(([\w.]+\.png)\)", report))
    assert linked == set(FIGURES)
    assert [f"## {i}." in report for i in range(1, 13)] == [True] * 12
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["train_limit"] == 1500 and metrics["settings"]["seed"] == 0
    assert metrics["settings"]["test_limit"] == 250 and "the real MNIST test set (250 images)" in report
    part3 = metrics["denoising_vs_inpainting"]
    repairs = {"denoising", "conv_denoising", "telea", "navier_stokes"}
    assert set(part3) == {"corrupted", *repairs, "radii", "gain_over_best_inpainter_db"}
    assert set(part3["gain_over_best_inpainter_db"]) == {"denoising", "conv_denoising"}
    best = max(part3["telea"]["psnr"], part3["navier_stokes"]["psnr"])
    gain = part3["gain_over_best_inpainter_db"]["conv_denoising"]
    assert gain == pytest.approx(part3["conv_denoising"]["psnr"] - best)
    part6 = metrics["anomaly"]
    assert set(part6["auroc"]) == set(part6["mean_auroc"]) == set(SCORES)
    assert all(len(part6["auroc"][name]) == 10 for name in SCORES)
    assert set(part6["latent_components"].values()) <= set(LATENT_COMPONENTS)
    assert (
        metrics["pca"]["code_sizes"] == [2, 10, 30]
        and len(metrics["pca"]["tied_linear_principal_angles"]) == 10
    )
    part11 = metrics["data_specific"]
    assert set(part11["psnr"]) == set(part11["bicubic"]) == {"china", "flower"}
    # Quick: the photographs' 256x256 corners, 8 test blocks of 4 crops each.
    assert metrics["settings"]["photograph_side"] == 256 and part11["crops"]["flower"]["test"] == 32
    assert "(their top-left 256x256 corners)" in report
    assert part11["gain_over_bicubic_db"]["china"]["flower"] == pytest.approx(
        part11["psnr"]["china"]["flower"] - part11["bicubic"]["flower"]
    )
    part12 = metrics["unlabelled_pretraining"]
    assert part12["labelled"] == 100 and all(len(v) == 2 for v in part12["accuracy"].values())
    assert "[report" in result.stdout and "12/12" in result.stdout  # progress is shown


def testcached_models_are_reused(tmp_path, mnist_train_small):
    images = mnist_train_small[0][:256]
    messages = []

    def build():
        return models.DenseAutoencoder(latent_dim=4, output_activation="sigmoid", value_range=(0, 1))

    first = cached_model(tmp_path, "tiny", build, images, None, 1, 0, messages.append)
    second = cached_model(tmp_path, "tiny", build, images, None, 1, 0, messages.append)
    assert messages[0] == "tiny: training 1 epochs" and messages[1].startswith("tiny: reusing")
    np.testing.assert_array_equal(first(images[:4]), second(images[:4]))
    cached_model(tmp_path, "tiny", build, images, None, 2, 0, messages.append)
    assert messages[2] == "tiny: training 2 epochs"  # other settings, another model
    assert len(list(tmp_path.glob("tiny-*.keras"))) == 2


def test_a_cached_model_is_trained_again_when_its_training_code_changes(
    tmp_path, mnist_train_small, monkeypatch
):
    images = mnist_train_small[0][:256]
    messages = []

    def build():
        return models.DenseAutoencoder(latent_dim=4, output_activation="sigmoid", value_range=(0, 1))

    cached_model(tmp_path, "tiny", build, images, None, 1, 0, messages.append)
    # The objective's source changes (as the VAE's likelihood did); the config does not.
    real_source = inspect.getsource

    def edited_source(module):
        return real_source(module) + ("# edited" if module is losses else "")

    monkeypatch.setattr(inspect, "getsource", edited_source)
    cached_model(tmp_path, "tiny", build, images, None, 1, 0, messages.append)
    assert messages == ["tiny: training 1 epochs", "tiny: training 1 epochs"]
    assert len(list(tmp_path.glob("tiny-*.keras"))) == 2


def _tiny():
    return models.DenseAutoencoder(latent_dim=4, output_activation="sigmoid", value_range=(0, 1))


def test_a_cached_model_is_keyed_by_its_data(tmp_path, mnist_train_small):
    """A report on other data (Fashion-MNIST's IDX files, say) trains its own models."""
    images = mnist_train_small[0][:256]
    messages = []
    cached_model(tmp_path, "tiny", _tiny, images, None, 1, 0, messages.append)
    cached_model(tmp_path, "tiny", _tiny, images[::-1].copy(), None, 1, 0, messages.append)
    assert messages == ["tiny: training 1 epochs", "tiny: training 1 epochs"]
    assert data_digest(images) != data_digest(images[::-1].copy())
    assert data_digest(images) == data_digest(images.copy())


def test_an_interrupted_cache_save_leaves_nothing_and_an_unreadable_one_is_trained_again(
    tmp_path, mnist_train_small, monkeypatch
):
    images = mnist_train_small[0][:256]
    real_save = keras.Model.save

    def interrupted_save(model, path, *args, **kwargs):
        real_save(model, path, *args, **kwargs)
        Path(path).write_bytes(Path(path).read_bytes()[:2000])  # what a Ctrl-C leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        cached_model(tmp_path, "tiny", _tiny, images, None, 1, 0, print)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(keras.Model, "save", real_save)
    messages = []
    first = cached_model(tmp_path, "tiny", _tiny, images, None, 1, 0, messages.append)
    (path,) = tmp_path.glob("tiny-*.keras")
    path.write_bytes(path.read_bytes()[:2000])  # cut short by a crash of an older aekeras
    again = cached_model(tmp_path, "tiny", _tiny, images, None, 1, 0, messages.append)
    assert messages[1].startswith(f"tiny: cannot read {path} (") and messages[1].endswith("training it again")
    assert messages[2] == "tiny: training 1 epochs"
    np.testing.assert_allclose(again(images[:4]), first(images[:4]), atol=1e-6)
    assert keras.models.load_model(path) is not None


def _part_writing(name, text):
    def part(ctx):
        figure = ctx.out / name
        figure.write_text(text)
        return Section(key=name, title=text, figure=figure, text=text)

    part.__name__ = name.replace(".", "_")
    return part


def test_an_interrupted_report_leaves_the_earlier_one_as_it_was(tmp_path, monkeypatch):
    def interrupted(ctx):
        raise KeyboardInterrupt

    out = tmp_path / "reports"
    settings = ReportSettings(train_limit=10, test_limit=10)
    monkeypatch.setattr(builder, "PARTS", [_part_writing("figure.png", "first")])
    build_report(out, settings, progress=lambda message: None)
    before = {p.name: p.read_text() for p in out.iterdir()}
    assert set(before) == {"figure.png", "REPORT.md", "metrics.json"} and before["figure.png"] == "first"
    monkeypatch.setattr(builder, "PARTS", [_part_writing("figure.png", "second"), interrupted])
    with pytest.raises(KeyboardInterrupt):
        build_report(out, settings, progress=lambda message: None)
    assert {p.name: p.read_text() for p in out.iterdir()} == before
    metrics = json.loads(before["metrics.json"])
    assert metrics["data"]["test_images"] == 10 and len(metrics["data"]["digest"]) == 32


def test_a_report_on_fashion_mnist_does_not_score_it_against_itself(tmp_path, fashion_dir):
    """It did: `--data-dir` at Fashion-MNIST's IDX files gave "separates Fashion-MNIST from MNIST's ... 50.0%"."""
    said = []
    ctx = Context(tmp_path, ReportSettings(train_limit=10, test_limit=100), fashion_dir, said.append)
    scores, skipped = parts._out_of_distribution(ctx)  # returns before any model is trained
    assert scores is None
    assert skipped == "The report's own data is Fashion-MNIST, so the out-of-distribution part was skipped."
    assert len(said) == 1 and said[0].endswith(
        "] the report's data is Fashion-MNIST, out-of-distribution part skipped"
    )


def test_the_anomaly_figure_names_its_data_and_why_a_histogram_is_missing(tmp_path, monkeypatch):
    """It said "Fashion-MNIST not available" on Fashion-MNIST's own report, and "MNIST" on any data."""
    from sklearn.datasets import load_digits

    from aekeras import analysis, data, plotting, presets

    digits = load_digits()
    images, labels = data.unit_scale(np.uint8(digits.images[..., None] * 255 / 16)), digits.target
    spec = data.ImageSpec(shape=(8, 8, 1))
    one_class = analysis.one_class_anomaly_detection(
        lambda: presets.one_class(spec),
        images[:1500],
        labels[:1500],
        images[1500:],
        labels[1500:],
        epochs=1,
        digits=[0, 1],
    )
    model = presets.one_class(spec)
    ood = analysis.out_of_distribution(model, images[1500:], images[1500:, ::-1])
    drawn = []
    monkeypatch.setattr(plotting, "_save", lambda figure, path: drawn.append(figure.axes[1]))
    plotting.anomaly(one_class, None, tmp_path / "a.png", skipped="The report's own data is Fashion-MNIST")
    plotting.anomaly(one_class, ood, tmp_path / "b.png", names=("digits", "mirrored digits"))
    assert [text.get_text() for text in drawn[0].texts] == ["The report's own data is Fashion-MNIST"]
    assert drawn[1].get_title().startswith("digits model on mirrored digits: AUROC")
    assert [text.get_text() for text in drawn[1].get_legend().get_texts()] == [
        "digits test (in)",
        "mirrored digits test (out)",
    ]


def test_the_training_code_digest_reads_the_model_classes_and_the_losses(monkeypatch):
    read, real_source = set(), inspect.getsource

    def recording_source(module):
        read.add(module.__name__)
        return real_source(module)

    monkeypatch.setattr(inspect, "getsource", recording_source)
    training_code(models.VAE(latent_dim=2, seed=0))
    assert {"aekeras.models.vae", "aekeras.models.base", "aekeras.losses"} <= read
    assert not any(name.startswith("keras") for name in read)


def test_the_training_code_digest_works_without_sources(monkeypatch):
    """An install without .py files (only compiled ones) keys the cache by aekeras's version."""
    model = models.VAE(latent_dim=2, seed=0)
    with_sources = training_code(model)

    def no_source(module):
        raise OSError("could not get source code")

    monkeypatch.setattr(inspect, "getsource", no_source)
    without = training_code(model)
    assert without == training_code(model) and without != with_sources


def test_each_parts_rows_and_numbers_are_its_own(tmp_path, monkeypatch):
    """Each row of a part's table, and each number of metrics.json, stands under the model or method it measures.

    The analyses are stood in for by ones that answer with a distinct number
    per model and per method, so no model trains.
    """
    from aekeras import analysis, plotting

    for name in ("reconstructions", "denoising_vs_inpainting", "pca", "super_resolution"):
        monkeypatch.setattr(plotting, name, lambda *args, **kwargs: tmp_path / "figure.png")
    monkeypatch.setattr(plotting, "data_specific_super_resolution", lambda result, path: path)
    ctx = Context(tmp_path, ReportSettings(train_limit=10, test_limit=5), progress=lambda message: None)
    ctx.model = lambda name: name  # each model stands in as its name
    ctx.labelled_splits = lambda: (None,) * 4
    quality = {"standard": 0.01, "denoising": 0.02, "conv_denoising": 0.03, "telea": 0.04}
    quality |= {"navier_stokes": 0.05, "corrupted": 0.06}

    def measured(names):
        return {
            name: {"mse": quality[name], "psnr": 100 * quality[name], "ssim": quality[name]} for name in names
        }

    monkeypatch.setattr(
        analysis,
        "reconstructions",
        lambda models, images: {"metrics": {label: measured([m])[m] for label, m in models.items()}},
    )
    section = parts.reconstructions(ctx)
    assert (
        section.metrics["standard (30)"]["mse"] == 0.01 and section.metrics["denoising (500)"]["mse"] == 0.02
    )
    assert "| standard (30) | 0.0100 | 1.00 | 0.010 |" in section.table

    monkeypatch.setattr(
        analysis, "best_inpainting_radii", lambda images, seed: {"telea": 1, "navier_stokes": 7}
    )

    def repairs(denoisers, images, radii, seed):
        assert denoisers == {"denoising": "denoising", "conv_denoising": "conv_denoising"}
        return {"metrics": measured(["corrupted", *denoisers, "telea", "navier_stokes"])}

    monkeypatch.setattr(analysis, "denoising_vs_inpainting", repairs)
    section = parts.denoising_vs_inpainting(ctx)
    # Navier-Stokes (5 dB) is the better inpainter: the denoisers' gains are over it.
    assert section.metrics["gain_over_best_inpainter_db"] == pytest.approx(
        {"denoising": -3.0, "conv_denoising": -2.0}
    )
    assert "Against the better of the two, OpenCV Navier-Stokes:" in section.text
    assert "Telea 1, Navier-Stokes 7" in section.text
    assert "| OpenCV Telea | 0.0400 | 4.00 | 0.040 |" in section.table

    comparison = {
        "code_sizes": [2, 10],
        "pca": {"mse": [0.05, 0.03], "probe_accuracy": [0.4, 0.8]},
        "autoencoder": {"mse": [0.04, 0.02], "probe_accuracy": [0.5, 0.9]},
    }
    monkeypatch.setattr(analysis, "compare_with_pca", lambda *args, **kwargs: comparison)
    monkeypatch.setattr(
        analysis, "tied_linear_subspace", lambda *args, **kwargs: {"angles": np.array([3.0, 1.0])}
    )
    section = parts.pca(ctx)
    assert "| 10 | 0.0300 | 0.0200 | 0.800 | 0.900 |" in section.table
    assert (
        section.metrics["tied_linear_principal_angles"] == [3.0, 1.0]
        and "largest 3.0 degrees" in section.text
    )

    monkeypatch.setattr(
        analysis, "super_resolution", lambda model, images: {"psnr": {"bicubic": 20.0, "model": 22.5}}
    )
    section = parts.super_resolution(ctx)
    assert "| bicubic | 20.00 |" in section.table and "| model | 22.50 |" in section.table

    specific = {
        "psnr": {"china": {"china": 30.0, "flower": 25.0}, "flower": {"china": 28.0, "flower": 33.0}},
        "bicubic": {"china": 29.0, "flower": 31.0},
        "epochs": {"china": 2, "flower": 3},
        "crops": {
            "china": {"train": 1, "validation": 2, "test": 3},
            "flower": {"train": 4, "validation": 5, "test": 6},
        },
    }
    monkeypatch.setattr(analysis, "data_specific_super_resolution", lambda *args, **kwargs: specific)
    section = parts.data_specific(ctx)
    # Rows: the photograph tested on; columns: the model, by the photograph it trained on.
    assert "| china (held out) | 29.00 | 30.00 | 28.00 |" in section.table
    assert "| flower (held out) | 31.00 | 25.00 | 33.00 |" in section.table
    assert section.metrics["gain_over_bicubic_db"] == {
        "china": {"china": 1.0, "flower": -6.0},
        "flower": {"china": -1.0, "flower": 2.0},
    }
    assert "flower model on china -1.00 dB" in section.text and "(epoch china 2, flower 3)" in section.text
    assert "sample photographs, each cut into" in section.text  # whole, as settings default


# The parts that never read the report's data (a toy 2-D curve, scikit-learn's
# photographs): the MNIST report above runs them; the reports on other data
# below leave them out to stay quick.
SOURCE_FREE_PARTS = {"curve_denoising", "data_specific"}


def _figure_shapes(monkeypatch):
    """`{figure file: [image shapes drawn]}`, recorded as the report draws its images, kernels and latent grid."""
    from aekeras import plotting

    drawn = {}

    def recording(draw, shapes_of):
        def record(data, path, *args, **kwargs):
            drawn.setdefault(Path(path).name, []).extend(shapes_of(data))
            return draw(data, path, *args, **kwargs)

        return record

    for name, shapes_of in {
        "image_rows": lambda rows: [np.shape(image) for _, images in rows for image in images],
        "kernels": lambda sets: [np.shape(kernel) for kernels in sets.values() for kernel in kernels],
        "latent_grid": lambda grid: [np.shape(grid["images"])[2:]],
    }.items():
        monkeypatch.setattr(plotting, name, recording(getattr(plotting, name), shapes_of))
    return drawn


def _quick_report_on(source, out):
    """`(metrics, REPORT.md, console lines, figure shapes)` of a quick report on `source`, less `SOURCE_FREE_PARTS`."""
    settings = ReportSettings.quick()
    settings.train_limit, settings.test_limit = 300, 40
    settings.pretraining_draws, settings.pretraining_epochs = 1, 5
    said = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(builder, "PARTS", [p for p in parts.PARTS if p.__name__ not in SOURCE_FREE_PARTS])
        drawn = _figure_shapes(patch)
        metrics = build_report(out, settings, progress=said.append, source=str(source))
    return metrics, (out / "REPORT.md").read_text(), said, drawn


def _finite_numbers(value, where="metrics"):
    """Every number in `value` (nested dicts and lists), as `(where, number)` pairs."""
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _finite_numbers(v, f"{where}.{k}")]
    if isinstance(value, (list, tuple)):
        return [pair for i, v in enumerate(value) for pair in _finite_numbers(v, f"{where}[{i}]")]
    return [(where, value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def _check_every_part(metrics, report, drawn, shape, skipped):
    """Each part drew its figures at `shape` and wrote finite numbers, or (the `skipped` ones) said why not."""
    keys = {part.__name__ for part in parts.PARTS} - SOURCE_FREE_PARTS
    with_metrics = keys - {"kernels", "interpolation", "vae_maps"}  # figures only
    assert with_metrics <= set(metrics)
    assert {k for k in metrics if isinstance(metrics[k], dict) and "skipped" in metrics[k]} == skipped
    for key in skipped:
        assert f"Skipped: {metrics[key]['skipped']}." in report
    linked = set(re.findall(r"\]\(([\w.]+\.png)\)", report))
    pretrained = set() if "unlabelled_pretraining" in skipped else {"unlabelled_pretraining.png"}
    assert linked == set(drawn) | {"anomaly.png", "pca.png", "vae_latent_scatter.png"} | pretrained
    for name, shapes in drawn.items():
        if name != "super_resolution.png":
            assert set(shapes) == {shape}, name
    even = (shape[0] - shape[0] % 2, shape[1] - shape[1] % 2, shape[2])
    assert set(drawn["super_resolution.png"]) == {even, (even[0] // 2, even[1] // 2, shape[2])}
    small = min(shape[:2]) < 11  # SSIM's window: NaN, as image_metrics says
    numbers = [(w, v) for w, v in _finite_numbers(metrics) if not (small and w.endswith(".ssim"))]
    assert numbers and all(np.isfinite(v) for _, v in numbers), [w for w, v in numbers if not np.isfinite(v)]


@pytest.fixture(scope="module")
def photo_patches_folder(tmp_path_factory):
    """400 unlabelled 21x30 RGB patches of scikit-learn's two photographs, as PNG files in one folder.

    Odd height, so that super-resolution's halving has a row to cut.
    """
    from PIL import Image
    from sklearn.datasets import load_sample_images

    folder = tmp_path_factory.mktemp("photos") / "photo_patches"
    folder.mkdir()
    for p, photo in enumerate(load_sample_images().images):
        corners = [(r, c) for r in range(0, 400, 30) for c in range(0, 600, 40)][:200]
        for i, (r, c) in enumerate(corners):
            Image.fromarray(photo[r : r + 21, c : c + 30]).save(folder / f"{p}-{i:03d}.png")
    return folder


def test_a_quick_report_on_an_unlabelled_rgb_folder(tmp_path, photo_patches_folder):
    out = tmp_path / "reports"
    metrics, report, said, drawn = _quick_report_on(photo_patches_folder, out)
    _check_every_part(metrics, report, drawn, (21, 30, 3), skipped={"unlabelled_pretraining"})
    assert metrics["data"]["source"] == str(photo_patches_folder) and metrics["data"]["image_shape"] == [
        21,
        30,
        3,
    ]
    assert f"the test split of `{photo_patches_folder}` (40 images, 21x30 RGB)" in report
    assert not re.search(r"\bdigits?\b", report, re.IGNORECASE) and not re.search(
        r"(?<!Fashion-)MNIST", report
    )
    assert "(1890-30-1890, tanh)" in report and "as 21x30 RGB images" in report
    assert "cut to 20x30 RGB (even sides), average-pooled to 10x15 RGB" in report
    # Labels: the one-class half of part 6 and part 12 say why they did not run, in REPORT.md and on the console.
    assert metrics["anomaly"]["one_class_skipped"].endswith(
        "needs class labels, and `photo_patches` has none"
    )
    assert metrics["unlabelled_pretraining"]["skipped"].endswith(
        "needs class labels, and `photo_patches` has none"
    )
    assert any(
        line.endswith(
            "] 6. Anomaly detection: one-class part skipped, " + metrics["anomaly"]["one_class_skipped"]
        )
        for line in said
    )
    assert any(
        line.endswith(
            "] 12. Learning from unlabelled data: skipped, " + metrics["unlabelled_pretraining"]["skipped"]
        )
        for line in said
    )
    assert "no probe classifies the codes" in report and metrics["pca"]["pca"]["probe_accuracy"] == []


def test_a_quick_report_on_labelled_8x8_digits(tmp_path, digits_npz):
    out = tmp_path / "reports"
    metrics, report, said, drawn = _quick_report_on(digits_npz, out)
    _check_every_part(metrics, report, drawn, (8, 8, 1), skipped=set())
    assert f"the test split of `{digits_npz}` (40 images, 8x8)" in report
    assert "(64-256-32-256-64, sigmoid output, BCE)" in report and "Published mean AUROCs" not in report
    assert (
        len(metrics["anomaly"]["auroc"]["reconstruction"]) == 10
        and metrics["anomaly"]["reference_mean_auroc"] == {}
    )
    assert metrics["unlabelled_pretraining"]["labelled"] == 100
    assert "test digit" not in report and "10 of each class" in report
    assert "A 2x2 grey square covers rows and columns 3-4" in report
    if metrics["anomaly"]["mnist_vs_fashion_auroc"] is not None:  # Fashion-MNIST installed
        assert "Fashion-MNIST test set (resized to 8x8)" in report


def test_the_report_command_takes_a_source(tmp_path):
    """`--source` is listed, and a source that is not there is one line, exit 2, nothing written."""
    helped = subprocess.run(
        [sys.executable, "-m", "aekeras", "report", "--help"], capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0 and "--source SOURCE" in helped.stdout and "--image-size" in helped.stdout
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "aekeras",
            "report",
            "--out",
            "reports",
            "--quick",
            "--source",
            "no_such_images",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "aekeras: error: no_such_images: no such file or folder (expected mnist, fashion_mnist, tfds:NAME, a "
        "folder of images, or an .npz/.npy file)"
    ]
    assert list(tmp_path.iterdir()) == []


def _digits_of(tmp_path, name, count=None, rows=8, keep=lambda labels: labels >= 0):
    """An .npz of the first `count` of scikit-learn's labelled 8x8 digits that `keep` picks, cut to their first `rows`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    kept = np.flatnonzero(keep(digits.target))[:count]
    path = tmp_path / f"{name}.npz"
    images = np.round(digits.images[kept, :rows] * 255 / 16).astype(np.uint8)
    np.savez(path, images=images, labels=digits.target[kept])
    return path


def test_labels_that_cannot_train_one_class_models_or_probes_skip_them_with_a_reason(tmp_path):
    """Digits of one class: parts 6 and 7 stopped in a traceback, one-class detection after training."""
    zeros = _digits_of(tmp_path, "zeros", keep=lambda labels: labels == 0)
    said = []
    settings = ReportSettings(train_limit=100, test_limit=20, dense_epochs=1, pca_epochs=1)
    ctx = Context(tmp_path / "out", settings, progress=said.append, source=str(zeros))
    ctx.out.mkdir()
    anomaly, pca = parts.anomaly(ctx), parts.pca(ctx)
    reason = (
        "one-class detection cannot run: the test images must hold class 0 and other classes, to rank one "
        "against the other (the classes they hold: [0])"
    )
    assert anomaly.metrics["one_class_skipped"] == reason and anomaly.text.startswith(f"Skipped: {reason}. ")
    assert anomaly.table is None and "auroc" not in anomaly.metrics
    assert any(line.endswith(f"] 6. Anomaly detection: one-class part skipped, {reason}") for line in said)
    why = "the probes tell classes apart: the first 10000 training labels need two classes or more, got classes [0]"
    assert pca.metrics["probes_skipped"] == why and pca.metrics["pca"]["probe_accuracy"] == []
    assert f"no probe classifies the codes, as {why}." in pca.text
    assert len(pca.metrics["pca"]["mse"]) == 3 and all(np.isfinite(pca.metrics["pca"]["mse"]))
    assert any(line.endswith(f"] 7. Autoencoder vs PCA: compared without probes, {why}") for line in said)


def _digit_pngs(folder, count):
    """The first `count` of scikit-learn's 8x8 digits as PNG files in `folder` (unlabelled)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    folder.mkdir()
    for i, image in enumerate(load_digits().images[:count]):
        Image.fromarray(np.round(image * 255 / 16).astype(np.uint8)).save(folder / f"{i:02d}.png")
    return folder


@pytest.mark.parametrize("thin", ["3 images", "1-pixel rows", "a folder of 3"])
def test_data_too_thin_for_the_report_is_one_line_before_anything_trains(tmp_path, monkeypatch, capsys, thin):
    """A test split of 1 image stopped part 4 in an IndexError, and 1x8 images part 5, after parts had trained."""
    from aekeras import cli
    from aekeras.data import folder

    monkeypatch.setattr(folder, "PROGRESS_FILES", 1)  # the scan of any folder shows its progress
    monkeypatch.chdir(tmp_path)
    if thin == "a folder of 3":
        source, found = _digit_pngs(tmp_path / "three", 3), "2 training and 1 test images of 8x8 pixels"
    elif thin == "3 images":  # the held-out tenth rounds up to 1
        source, found = _digits_of(tmp_path, "three", count=3), "2 training and 1 test images of 8x8 pixels"
    else:
        source, found = (
            _digits_of(tmp_path, "rows", count=40, rows=1),
            "36 training and 4 test images of 1x8 pixels",
        )
    assert cli.main(["report", "--quick", "--out", "reports", "--source", str(source)]) == 2
    printed = capsys.readouterr()
    assert printed.err.splitlines() == [
        f"aekeras: error: {source}: {found}, where the report needs 2 or more of each, of 2x2 pixels or more"
    ]
    assert not (tmp_path / "reports").exists()
    # The report reads a folder as `aekeras train` does, its scan shown.
    assert ("scanning images (files): 3/3 (" in printed.out) == (thin == "a folder of 3")


def test_the_report_records_only_the_read_options_given(tmp_path, monkeypatch):
    """--test-fraction's 0.1 default went into every report's Data line, MNIST's included."""
    from aekeras.cli import build_parser
    from aekeras.cli.common import read_options
    from aekeras.cli.train import _config

    parse = build_parser().parse_args
    assert read_options(parse(["report"])) == {}
    assert read_options(parse(["report", "--test-fraction", "0.2"])) == {"test_fraction": 0.2}
    # `aekeras train` records the held-out share it read with, given or not, as before.
    assert _config(parse(["train", "dense"])).read_options()["test_fraction"] == 0.1
    assert _config(parse(["train", "dense", "--test-fraction", "0.2"])).read_options()["test_fraction"] == 0.2
    settings = ReportSettings(train_limit=10, test_limit=5)
    ctx = Context(tmp_path, settings, progress=lambda line: None, **read_options(parse(["report"])))
    assert "read_options" not in ctx.data_description
    assert "applications on the real MNIST test set (5 images), produced" in builder._header(ctx, 1)
    # MNIST resized says its size.
    resized = Context(
        tmp_path,
        settings,
        progress=lambda line: None,
        **read_options(parse(["report", "--image-size", "32"])),
    )
    assert resized.data_description["read_options"] == {"image_size": (32, 32)}
    assert "applications on the real MNIST test set (5 images, 32x32), produced" in builder._header(
        resized, 1
    )


def test_a_source_given_as_a_dot_is_named_by_its_folder(tmp_path, monkeypatch):
    """`--source .` named the data '' in every text: "`` has none", "'s training images"."""
    monkeypatch.chdir(_digit_pngs(tmp_path / "sklearn_digits", 30))
    ctx = Context(
        tmp_path / "out", ReportSettings(train_limit=10, test_limit=5), progress=lambda line: None, source="."
    )
    assert ctx.data_name == "sklearn_digits"
    assert parts.labels_missing(ctx, "It") == "It needs class labels, and `sklearn_digits` has none"
