import numpy as np
import pytest

from aekeras.analysis import latent_grid, latent_scatter
from aekeras.models import VAE, ConditionalVAE


def test_grid_at_normal_quantiles(trained_vae2):
    result = latent_grid(trained_vae2, size=5)
    assert result["images"].shape == (5, 5, 28, 28, 1)
    z = result["z"]
    np.testing.assert_allclose(z[0, 0], [-1.6448536, 1.6448536], rtol=1e-5)  # top left: low z1, high z2
    np.testing.assert_allclose(z[2, 2], [0, 0], atol=1e-6)
    np.testing.assert_allclose(
        result["images"][1, 3], trained_vae2.decode(z[1, 3][None]).numpy()[0], atol=1e-6
    )
    with pytest.raises(ValueError, match="needs a VAE with latent_dim=2"):
        latent_grid(VAE(latent_dim=3))


def test_scatter(trained_vae2, digits, mnist_test_arrays):
    labels = mnist_test_arrays[1][:100]
    result = latent_scatter(trained_vae2, digits[:100], labels)
    assert result["z_mean"].shape == (100, 2)
    # The means of q(z|x), not its log-variances or a draw, each beside its own label.
    np.testing.assert_allclose(result["z_mean"], trained_vae2.embed(digits[:100]), atol=1e-6)
    np.testing.assert_array_equal(result["labels"], labels)


def test_scatter_figures_without_labels_and_with_many_classes(tmp_path, trained_vae2, digits):
    import matplotlib.image

    from aekeras import plotting

    unlabelled = latent_scatter(trained_vae2, digits[:60], None)
    assert unlabelled["labels"] is None
    plotting.latent_scatter(unlabelled, tmp_path / "plain.png")
    many = latent_scatter(trained_vae2, digits[:60], np.arange(60) % 20)
    names = [f"class {i}" for i in range(20)]
    plotting.latent_scatter(many, tmp_path / "many.png", class_names=names)
    for name in ("plain.png", "many.png"):
        picture = matplotlib.image.imread(tmp_path / name)
        assert picture.shape[0] > 100 and picture.std() > 0  # drawn, not blank


def test_a_conditional_vae_maps_its_codes_given_the_labels(digits, mnist_test_arrays):
    """It was refused ("needs labels"), though latent_scatter held the labels."""
    cvae = ConditionalVAE(latent_dim=2, hidden_dims=(8,), num_classes=10)
    labels = mnist_test_arrays[1][:50]
    scatter = latent_scatter(cvae, digits[:50], labels)
    np.testing.assert_allclose(scatter["z_mean"], cvae.embed(digits[:50], labels=labels), atol=1e-6)
    grid = latent_grid(cvae, size=3, label=7)
    np.testing.assert_allclose(
        grid["images"][1, 2], cvae.decode(grid["z"][1, 2][None], labels=np.array([7], np.int32))[0], atol=1e-6
    )
    with pytest.raises(ValueError, match="latent_grid of a ConditionalVAE decodes one class: pass label="):
        latent_grid(cvae, size=3)


def test_the_samples_figure_shows_every_sample(tmp_path, trained_vae2):
    """Fewer than ten made no row (matplotlib refused), and a short last row was left out."""
    import matplotlib.image

    from aekeras import plotting

    drawn = np.asarray(
        trained_vae2.decode(np.random.default_rng(0).standard_normal((15, 2)).astype(np.float32))
    )
    pictures = {
        count: matplotlib.image.imread(plotting.samples(drawn[:count], tmp_path / f"{count}.png", "prior"))
        for count in (5, 10, 15)
    }
    assert pictures[5].std() > 0  # drawn, not blank
    assert pictures[15].shape[0] > 1.5 * pictures[10].shape[0]  # a second row
