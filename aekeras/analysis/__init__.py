"""The lecture's and lesson's applications, measured.

Each function computes one part of `aekeras report` on real data and
returns a dict of numpy arrays and metrics; `aekeras.plotting` draws them.
"""

from aekeras.analysis.anomaly import OneClassScores, one_class_anomaly_detection, out_of_distribution
from aekeras.analysis.anomaly import check_labels as check_one_class_labels
from aekeras.analysis.inpainting import (
    best_inpainting_radii,
    cv2_inpaint,
    denoising_vs_inpainting,
    manifold_inpainting,
)
from aekeras.analysis.interpolation import interpolation
from aekeras.analysis.latent_maps import latent_grid, latent_scatter
from aekeras.analysis.manifold2d import curve_denoising
from aekeras.analysis.metrics import image_metrics, mse, pooled_psnr, psnr
from aekeras.analysis.pca import check_probe_labels, compare_with_pca, principal_angles, tied_linear_subspace
from aekeras.analysis.pretraining import METHODS as PRETRAINING_METHODS
from aekeras.analysis.pretraining import check_labels as check_pretraining_labels
from aekeras.analysis.pretraining import unlabelled_pretraining
from aekeras.analysis.reconstructions import encoder_kernels, reconstructions
from aekeras.analysis.superresolution import data_specific_super_resolution, super_resolution

__all__ = [
    "best_inpainting_radii",
    "check_one_class_labels",
    "check_pretraining_labels",
    "check_probe_labels",
    "compare_with_pca",
    "curve_denoising",
    "data_specific_super_resolution",
    "cv2_inpaint",
    "denoising_vs_inpainting",
    "encoder_kernels",
    "image_metrics",
    "mse",
    "interpolation",
    "latent_grid",
    "latent_scatter",
    "manifold_inpainting",
    "OneClassScores",
    "one_class_anomaly_detection",
    "out_of_distribution",
    "pooled_psnr",
    "PRETRAINING_METHODS",
    "principal_angles",
    "psnr",
    "reconstructions",
    "super_resolution",
    "tied_linear_subspace",
    "unlabelled_pretraining",
]
