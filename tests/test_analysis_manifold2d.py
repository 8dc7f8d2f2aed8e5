import numpy as np

from aekeras.analysis import curve_denoising
from aekeras.analysis.manifold2d import curve, distance_to_curve


def test_distance_to_curve():
    points = curve(np.array([0.0, 0.5]))
    np.testing.assert_allclose(distance_to_curve(points), 0, atol=1e-3)
    assert distance_to_curve(np.array([[0.0, 0.9]], np.float32))[0] > 0.3


def test_points_move_towards_the_curve():
    result = curve_denoising(epochs=30, grid=21, train_points=2000)
    assert result["inputs"].shape == result["outputs"].shape == (441, 2)
    assert np.mean(result["output_distance"]) < 0.5 * np.mean(result["input_distance"])
    near = result["input_distance"] < 0.05
    far = result["input_distance"] > 0.3
    assert np.mean(result["moved"][far]) > 2 * np.mean(result["moved"][near])
