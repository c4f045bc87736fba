"""Array builders and matplotlib figures for filters, feature maps and training history."""

from __future__ import annotations

import math

import numpy as np


def _host(a, dtype) -> np.ndarray:
    """``a`` (a Tensor, or an array on any device) as a NumPy array, fetched explicitly."""
    from dojang.autograd import Tensor
    from dojang.backend import to_numpy

    return np.asarray(a.numpy() if isinstance(a, Tensor) else to_numpy(a), dtype=dtype)


def _tile(images: np.ndarray, cols: int | None = None, pad: int = 1, fill: float = np.nan):
    """Tile ``images`` (n, h, w[, 3]) into one (rows*(h+pad)-pad, cols*(w+pad)-pad) grid."""
    n, h, w = images.shape[:3]
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad) + images.shape[3:], fill,
                   dtype=np.float64)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = images[i]
    return grid


def filter_grid(kernel, cols: int | None = None, channel: int | None = None) -> np.ndarray:
    """Tile the filters of a 2-d conv kernel ``(KH, KW, C_in, C_out)`` into one image.

    Filter ``k`` occupies tile ``k`` in row-major order. With 3 input channels the tiles
    are RGB, each filter min-max scaled to [0, 1]; otherwise tile ``k`` shows input
    channel ``channel`` (default 0) of filter ``k`` unscaled, so the grid holds the
    layer's weights. Gaps between tiles are NaN.
    """
    k = _host(kernel, np.float64)
    if k.ndim != 4:
        raise ValueError(f"filter_grid: Expected a 2-d conv kernel of shape (KH, KW, C_in, C_out)."
                         f" Received: shape={k.shape}")
    if k.shape[2] == 3 and channel is None:
        imgs = np.moveaxis(k, 3, 0)
        lo = imgs.min(axis=(1, 2, 3), keepdims=True)
        hi = imgs.max(axis=(1, 2, 3), keepdims=True)
        imgs = (imgs - lo) / np.where(hi > lo, hi - lo, 1.0)
        return _tile(imgs, cols)
    c = 0 if channel is None else channel
    if not 0 <= c < k.shape[2]:
        raise ValueError(f"filter_grid: Expected channel in [0, {k.shape[2]}). Received: "
                         f"channel={channel}")
    return _tile(np.moveaxis(k[:, :, c, :], 2, 0), cols)


def feature_map_grid(maps, cols: int | None = None) -> np.ndarray:
    """Tile one example's feature maps ``(H, W, C)`` into a grid, channel ``c`` at tile ``c``."""
    m = _host(maps, np.float64)
    if m.ndim != 3:
        raise ValueError(f"feature_map_grid: Expected maps of shape (H, W, C). Received: "
                         f"shape={m.shape}")
    return _tile(np.moveaxis(m, 2, 0), cols)


def feature_maps(model, image, layer_types=("Conv2D",),
                 limit: int = 2) -> list[tuple[str, np.ndarray]]:
    """Run ``image`` through a model and return the first conv layers' outputs.

    Args:
        model: a built model with one input (Sequential, functional or subclassed).
        image: one input example shaped like the model's input, without the batch axis.
        layer_types: class names of the layers whose outputs to keep.
        limit: how many such layers (the book's chapter 8-3 shows the first two).

    Returns:
        ``[(layer_name, maps)]`` with ``maps`` of shape (H, W, C) for each kept layer, in
        the order of ``model.layers``.
    """
    from dojang.config import no_grad
    from dojang.viz.probe import layer_output

    x = _host(image, np.float32)[None]
    kept = [layer for layer in model.layers if type(layer).__name__ in layer_types][:limit]
    with no_grad():
        return [(layer.name, layer_output(model, layer, x).numpy()[0]) for layer in kept]


def _figure(path, fig) -> str:
    """Save ``fig`` as a PNG atomically (temporary file, then rename) and close it."""
    import io

    from dojang.fileio import atomic_write

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write(path, buffer.getvalue())
    return str(path)


class _Figures:
    """``subplots`` as pyplot has it, on a bare ``matplotlib.figure.Figure``: the figures
    are only saved to files, so pyplot's global state (its list of open figures, the
    backend, which ``matplotlib.use("Agg")`` would switch even inside Jupyter) is left
    alone."""

    @staticmethod
    def subplots(nrows: int = 1, ncols: int = 1, figsize=None, **kwargs):
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        return fig, fig.subplots(nrows, ncols, **kwargs)


def _pyplot():
    return _Figures


def plot_filters(kernel, path, title: str = "first-layer filters") -> str:
    """Draw ``filter_grid(kernel)`` to a PNG file and return its path."""
    plt = _pyplot()
    grid = filter_grid(kernel)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(np.ma.masked_invalid(grid), cmap=None if grid.ndim == 3 else "gray")
    ax.set_title(title)
    ax.axis("off")
    return _figure(path, fig)


def plot_feature_maps(maps: list[tuple[str, np.ndarray]], image, path) -> str:
    """Draw the input image and each layer's feature-map grid side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(5 * (len(maps) + 1), 5))
    img = _host(image, np.float64)
    axes[0].imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray")
    axes[0].set_title("input")
    for ax, (name, m) in zip(axes[1:], maps):
        ax.imshow(np.ma.masked_invalid(feature_map_grid(m)), cmap="viridis")
        ax.set_title(f"{name}: {m.shape[-1]} feature maps")
    for ax in axes:
        ax.axis("off")
    return _figure(path, fig)


def plot_history(history: dict, path) -> str:
    """Draw loss and accuracy curves (train and validation) per epoch."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    keys = [k for k in ("loss", "accuracy") if k in history]
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], marker="o", label=f"train {key}")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    return _figure(path, fig)


def plot_confusion_matrix(matrix, class_names, path) -> str:
    """Draw a confusion matrix (rows: true class, columns: predicted class)."""
    plt = _pyplot()
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im)
    return _figure(path, fig)
