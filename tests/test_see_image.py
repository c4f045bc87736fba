"""dj.image: the classic kernels on real photos against scipy.ndimage, and image loading.

The photos are scikit-learn's bundled china.jpg and flower.jpg (seed 001) and
scikit-image's sample data; scipy.ndimage.correlate with zero padding is the reference
(cross-correlation, as a conv layer computes it).
"""

import numpy as np
import pytest

from dojang import image

ndimage = pytest.importorskip("scipy.ndimage")


def photos():
    from sklearn.datasets import load_sample_image

    skdata = pytest.importorskip("skimage.data")
    # Crops keep the test fast; every filter sees colour and grey images of odd sizes.
    return {
        "china": load_sample_image("china.jpg")[100:181, 200:297] / 255.0,
        "flower": load_sample_image("flower.jpg")[150:223, 300:391] / 255.0,
        "camera": skdata.camera()[200:263, 180:251].astype(np.float64) / 255.0,
        "astronaut": skdata.astronaut()[40:97, 150:219],
    }


def reference(img, kernel):
    planes = np.atleast_3d(np.asarray(img, dtype=np.float64))
    out = np.stack([ndimage.correlate(planes[..., c], kernel, mode="constant", cval=0.0)
                    for c in range(planes.shape[-1])], axis=-1)
    return out[..., 0] if np.ndim(img) == 2 else out


@pytest.mark.parametrize("name", sorted(image.FILTERS))
def test_filters_match_scipy_on_real_photos(name):
    kernels = image.FILTERS[name]
    for photo, img in photos().items():
        got = image.filter(img, name)
        if kernels.ndim == 2:
            expected = reference(img, kernels)
        else:  # a stack: the gradient magnitude
            expected = np.sqrt(sum(reference(img, k) ** 2 for k in kernels))
        assert got.shape == np.shape(img), photo
        scale = max(np.abs(expected).max(), 1.0)
        np.testing.assert_allclose(got, expected, atol=1e-4 * scale, err_msg=photo)


def test_filter_set_is_the_seeds_and_sobel_is_the_magnitude():
    assert set(image.FILTERS) == {"box_blur", "gaussian_blur", "sharpen", "sobel", "sobel_x",
                                  "sobel_y", "laplacian", "emboss", "outline"}
    for name in ("box_blur", "gaussian_blur"):
        assert image.FILTERS[name].sum() == pytest.approx(1.0)
    img = np.random.default_rng(0).random((9, 8))
    gx, gy = image.filter(img, "sobel_x"), image.filter(img, "sobel_y")
    np.testing.assert_allclose(image.filter(img, "sobel"), np.hypot(gx, gy), atol=1e-5)


def test_filter_errors():
    with pytest.raises(ValueError, match="Expected name to be one of"):
        image.filter(np.ones((4, 4)), "blur")
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\)"):
        image.filter(np.ones((1, 4, 4, 1)), "sobel")
    with pytest.raises(TypeError, match="numeric image"):
        image.filter(np.array([["a"]]), "sobel")


def test_load_converts_size_and_channels(tmp_path):
    from PIL import Image

    rgb = (np.random.default_rng(1).random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(tmp_path / "a.png")
    np.testing.assert_allclose(image.load(tmp_path / "c.png"), rgb / 255.0, atol=1e-6)
    assert image.load(tmp_path / "g.png").shape == (20, 30, 1)
    assert image.load(tmp_path / "g.png", (28, 28), 3).shape == (28, 28, 3)
    assert image.load(tmp_path / "a.png", channels=3).shape == (20, 30, 3)
    grey = image.load(tmp_path / "c.png", channels=1)[..., 0]
    luma = (rgb @ [299, 587, 114]) / 1000 / 255.0  # ITU-R 601, as PIL's "L"
    np.testing.assert_allclose(grey, luma, atol=1 / 255)
    jpg = image.load(tmp_path / "c.jpg", (10, 15), 1)
    assert jpg.shape == (10, 15, 1) and jpg.dtype == np.float32 and 0 <= jpg.min() <= 1


def test_load_errors(tmp_path):
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(ValueError, match="no such image file"):
        image.load(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="cannot read .* as an image"):
        image.load(tmp_path / "x.png")
    with pytest.raises(ValueError, match="cannot convert an image to 4 channels"):
        image.load(tmp_path / "x.png", channels=4)


def test_filtered_figure_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from dojang.viz.plots import plot_erf_growth, plot_filtered

    img = np.random.default_rng(2).random((12, 10, 3))
    out = plot_filtered(img, {n: image.filter(img, n) for n in ("sobel", "emboss")},
                        tmp_path / "k.png")
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    out = plot_erf_growth([2, 3, 4], [1.6, 2.0, 2.3], 1.15, tmp_path / "g.png")
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
