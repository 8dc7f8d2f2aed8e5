"""What the figures show: each image in its row and column, clipped to [0, 1] on a fixed grey scale, and their labels."""

import numpy as np
import pytest

from aekeras import plotting


@pytest.fixture
def figures(monkeypatch):
    """The figures the plotting functions save, in order (each still written to its PNG)."""
    saved = []
    save = plotting._save

    def keep(figure, path):
        saved.append(figure)
        return save(figure, path)

    monkeypatch.setattr(plotting, "_save", keep)
    return saved


def shown(axis):
    (image,) = axis.get_images()
    return np.asarray(image.get_array())


def test_image_rows_puts_each_image_in_its_row_and_column_clipped_on_a_fixed_scale(figures, digits, tmp_path):
    # Real digits pushed past [0, 1] (as a model's raw outputs may be), and a dim one whose
    # grey scale must not be stretched to white.
    images = digits[:5] * 1.5 - 0.2
    images[4] = digits[4] * 0.5
    rows = [("first", images[:3]), ("second", images[3:5])]
    path = plotting.image_rows(rows, tmp_path / "rows.png", "a title", columns=4)
    assert path.stat().st_size > 0
    (figure,) = figures
    axes = figure.axes
    assert len(axes) == 8 and figure._suptitle.get_text() == "a title"
    for r, (label, row) in enumerate(rows):
        assert axes[r * 4].get_ylabel() == label
        for c in range(4):
            axis = axes[r * 4 + c]
            if c < len(row):
                np.testing.assert_array_equal(shown(axis), np.clip(row[c][..., 0], 0, 1))
                assert axis.get_images()[0].get_clim() == (0, 1)
            else:  # a short row's empty cells are blank
                assert not axis.get_images() and not axis.axison
    assert shown(axes[5]).max() == pytest.approx(0.5, abs=0.01)


def test_reconstructions_and_samples_label_their_rows(figures, digits, tmp_path):
    result = {"images": digits[:12], "reconstructions": {"dense": digits[12:24]}}
    plotting.reconstructions(result, tmp_path / "reconstructions.png")
    plotting.samples(digits[:25], tmp_path / "samples.png", "prior draws")
    reconstructions, samples = figures
    assert reconstructions._suptitle.get_text() == "Test images and their reconstructions"
    assert [reconstructions.axes[i].get_ylabel() for i in (0, 10)] == ["test image", "dense"]
    np.testing.assert_array_equal(shown(reconstructions.axes[10 + 3]), digits[15, ..., 0])
    # Ten a row, the short last row kept.
    assert len(samples.axes) == 30 and samples._suptitle.get_text() == "prior draws"
    drawn = [shown(axis) for axis in samples.axes if axis.get_images()]
    np.testing.assert_array_equal(np.stack(drawn), digits[:25, ..., 0])


def test_latent_grid_puts_the_decoded_code_of_each_grid_point_under_its_ticks(figures, digits, tmp_path):
    size = 3
    images = digits[: size * size].reshape(size, size, 28, 28, 1)  # [row (z[1]), column (z[0]), ...]
    z = np.stack(np.meshgrid(np.linspace(-1, 1, size), np.linspace(-2, 2, size)), -1)
    plotting.latent_grid({"images": images, "z": z}, tmp_path / "grid.png")
    ((axis,),) = [figure.axes for figure in figures]
    mosaic = shown(axis)
    for i in range(size):
        for j in range(size):
            np.testing.assert_array_equal(
                mosaic[i * 28 : (i + 1) * 28, j * 28 : (j + 1) * 28], images[i, j, ..., 0]
            )
    assert [t.get_text() for t in axis.get_xticklabels()] == ["-1.0", "0.0", "1.0"]
    assert [t.get_text() for t in axis.get_yticklabels()] == ["-2.0", "0.0", "2.0"]


def test_super_resolution_rows_show_each_photographs_crops_then_every_models_upsampling(
    figures, rgb_crops, tmp_path
):
    """Per photograph: its inputs, bicubic's, each model's (in the table's order), then the originals."""
    crops = rgb_crops[1][:80].astype(np.float32) / 255  # held-out photograph crops, 10 rows of 8
    rows = ["low", "bicubic", "china", "flower", "images"]
    examples = {
        tested_on: {row: crops[8 * (5 * t + r) : 8 * (5 * t + r + 1)] for r, row in enumerate(rows)}
        for t, tested_on in enumerate(("china", "flower"))
    }
    result = {"psnr": {"china": {}, "flower": {}}, "examples": examples}
    plotting.data_specific_super_resolution(result, tmp_path / "sr.png", count=6)
    (figure,) = figures
    labels = ["input", "bicubic", "china model", "flower model", "original"]
    assert len(figure.axes) == 10 * 6
    for t, tested_on in enumerate(("china", "flower")):
        for r, (row, label) in enumerate(zip(rows, labels, strict=True)):
            first = figure.axes[(5 * t + r) * 6]
            assert first.get_ylabel() == (f"{tested_on}: {label}" if r == 0 else label)
            for c in range(6):
                np.testing.assert_array_equal(
                    shown(figure.axes[(5 * t + r) * 6 + c]), examples[tested_on][row][c]
                )
