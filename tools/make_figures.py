"""Draw the README's "See inside" figures into docs/img/ (run from the repository root).

    python tools/make_figures.py            # about a minute on 2 cores

Trains the seed CNN (seed 004's fashion_cnn) for one epoch on 12,000 Fashion-MNIST
images, then draws with dojang.viz: its first-layer filters and feature maps, the
theoretical and effective receptive field, Grad-CAM; the ERF growth on uniform 3x3
stacks; the classic image kernels on scikit-learn's china.jpg; and three steps of the
convolution-arithmetic animation. Everything is seeded, so reruns give the same pictures.
"""

from __future__ import annotations

import io
import os
import sys

import numpy as np

OUT = os.path.join("docs", "img")


def trained_seed_cnn():
    import dojang as dj

    (x, y), (x_test, y_test) = dj.datasets.fashion_mnist.load_data()
    x = x[:12000, ..., None].astype(np.float32) / 255.0
    x_test = x_test[..., None].astype(np.float32) / 255.0
    dj.random.set_seed(42)
    model = dj.zoo.fashion_cnn()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y[:12000], epochs=1, batch_size=64, verbose=0)
    return model, x_test, y_test


def main() -> int:
    from sklearn.datasets import load_sample_image

    import dojang as dj
    from dojang import viz
    from dojang.viz import plots
    from dojang.viz.conv_anim import conv_frames

    os.makedirs(OUT, exist_ok=True)
    path = lambda name: os.path.join(OUT, name)  # noqa: E731

    model, x_test, y_test = trained_seed_cnn()
    image = x_test[0]  # an ankle boot
    conv1 = model.layers[0]
    viz.plot_filters(conv1.kernel.numpy(), path("filters.png"),
                     title="seed CNN, conv2d: 32 learned 3x3 filters")
    maps = viz.layer_output(model, conv1, image[None]).numpy()[0]
    viz.plot_feature_maps([(conv1.name, maps)], image, path("feature_maps.png"))

    layer = "conv2d_1"
    erf = viz.effective_receptive_field(model, layer, x_test[:64])
    plots.plot_receptive_field(image, viz.receptive_field_box(model, layer), erf,
                               viz.rms_radius(erf), path("receptive_field.png"), layer)
    plots.plot_heatmap(image, viz.grad_cam(model, image), path("grad_cam.png"),
                       f"Grad-CAM, class {int(model.predict(image[None]).argmax())} "
                       f"(true {int(y_test[0])})")

    ns = np.arange(2, 17)
    radii = [viz.rms_radius(viz.effective_receptive_field(viz.uniform_stack(n))) for n in ns]
    fit = float((np.asarray(radii) * np.sqrt(ns)).sum() / ns.sum())
    plots.plot_erf_growth(ns, radii, fit, path("erf_growth.png"))

    china = load_sample_image("china.jpg")[20:420:3, 40:340:3] / 255.0  # the pagoda
    plots.plot_filtered(china, {name: dj.image.filter(china, name) for name in
                                ("gaussian_blur", "sobel", "laplacian", "emboss")},
                        path("kernels.png"))

    e = dj.shapes.explain((5, 5), 3, stride=2, padding="same")
    frames = conv_frames(e)
    units = [(0, 0), (0, 1), (1, 1)]
    plots.plot_frames([frames[i * e.output[1] + j] for i, j in units],
                      [f"output unit {u}" for u in units], path("conv_arithmetic.png"))
    for name in sorted(os.listdir(OUT)):
        print(shrink(os.path.join(OUT, name)))
    return 0


def shrink(png: str) -> str:
    """Re-encode a figure with a 256-colour palette (a third of the size, looks the same)."""
    from PIL import Image

    from dojang.fileio import atomic_write

    with Image.open(png) as img:
        small = img.convert("RGB").quantize(256, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    atomic_write(png, buffer.getvalue())
    return png


if __name__ == "__main__":
    sys.exit(main())
