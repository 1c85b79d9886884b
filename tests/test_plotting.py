import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from nnlearn.plotting import decision_map, image_grid


def test_decision_map_values_on_grid():
    fig, ax = plt.subplots()
    im = decision_map(ax, lambda P: P[:, 0] > 0, low=-1, high=1, n=11)
    arr = im.get_array()
    assert arr.shape == (11, 11) and arr[:, -1].all() and not arr[:, 0].any()
    plt.close(fig)


def test_image_grid_handles_nan_and_checks_shape():
    imgs = np.zeros((3, 4, 4))
    imgs[0, 0, 0] = np.nan
    imgs[0, 1, 1] = 2.0
    fig, axes = image_grid(imgs, ncols=2)
    assert axes.shape == (2, 2) and axes[0, 0].images[0].get_clim() == (-2.0, 2.0)
    plt.close(fig)
    with pytest.raises(ValueError):
        image_grid(np.zeros((4, 4)))
