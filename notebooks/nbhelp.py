"""What every notebook here starts with: the fast mode, the Korean font, the data.

``DOJANG_NOTEBOOK_FAST=1`` (the test suite sets it) trains on a few hundred images for one
epoch, so that ``make test`` runs all five notebooks in a few minutes. Without it the
notebooks train as the tutorials do.
"""

from __future__ import annotations

import os

import numpy as np

import dojang as dj

FAST = os.environ.get("DOJANG_NOTEBOOK_FAST") == "1"


def start(seed: int = 42) -> None:
    """Seed dojang's generators, give matplotlib a Hangul font and say which mode runs."""
    dj.random.set_seed(seed)
    dj.viz.use_korean_font()
    if FAST:
        print("빠른 모드(DOJANG_NOTEBOOK_FAST=1): 훈련은 이미지 몇백 장으로 한 에포크만 합니다.")


def _digits_as_clothes_size():
    """scikit-learn's bundled 8x8 digits, scaled to 28x28 uint8 like Fashion-MNIST."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.kron(digits.images, np.ones((3, 3)))              # 8x8 -> 24x24
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))             # -> 28x28
    images = np.round(images / 16 * 255).astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    split = len(images) * 4 // 5
    names = tuple(str(d) for d in range(10))
    return (images[:split], labels[:split]), (images[split:], labels[split:]), names


def load_fashion_mnist(n_train: int | None = None, n_test: int | None = None):
    """Fashion-MNIST as floats in [0, 1] with a channel axis: ``(x, y), (x_test, y_test), names``.

    ``n_train``/``n_test`` keep only the first images. In the fast mode, where Fashion-MNIST
    cannot be found or downloaded, scikit-learn's bundled digits stand in (and we say so).
    """
    from dojang.datasets import fashion_mnist

    try:
        (x, y), (x_test, y_test) = fashion_mnist.load_data()
        names = fashion_mnist.class_names
    except dj.datasets.DatasetNotFoundError:
        if not FAST:
            raise
        print("Fashion-MNIST를 찾을 수 없어서 scikit-learn에 들어 있는 손글씨 숫자(digits)로 "
              "대신합니다. 클래스 이름이 옷 대신 숫자 0-9가 됩니다.")
        (x, y), (x_test, y_test), names = _digits_as_clothes_size()
    x, y, x_test, y_test = x[:n_train], y[:n_train], x_test[:n_test], y_test[:n_test]
    scale = np.float32(1 / 255)
    return (x[..., None] * scale, y), (x_test[..., None] * scale, y_test), names


def show_numbers(ax, array, title: str = "", box=None, cmap: str = "Blues") -> None:
    """Draw a small 2-d array as a grid of coloured cells with each number written in it.

    ``box=(row, col, height, width)`` outlines a window in red (the stamp of a filter).
    """
    import matplotlib.patches as patches

    a = np.asarray(array, dtype=np.float64)
    low, high = min(a.min(), 0), max(a.max(), 1)
    ax.imshow(a, cmap=cmap, vmin=low, vmax=high + (high - low) * 0.6)   # keep cells light
    for (i, j), v in np.ndenumerate(a):
        text = f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=11)
    for r in np.arange(0.5, a.shape[0] - 1):
        ax.axhline(r, color="white", linewidth=2)
    for c in np.arange(0.5, a.shape[1] - 1):
        ax.axvline(c, color="white", linewidth=2)
    ax.set_xticks([])
    ax.set_yticks([])
    if box is not None:
        r, c, h, w = box
        ax.add_patch(patches.Rectangle((c - 0.5, r - 0.5), w, h, fill=False, edgecolor="red",
                                       linewidth=4, zorder=5))
    ax.set_title(title)
