"""matplotlib figures for receptive fields, heatmaps and image kernels (PNG files).

Each function draws arrays computed elsewhere (``receptive.py``, ``gradcam.py``,
``dojang.image``) and returns the path it wrote; nothing here computes what it shows.
"""

from __future__ import annotations

import numpy as np

from dojang.viz.figures import _figure, _pyplot


def _show_image(ax, image, title: str) -> None:
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")


def plot_receptive_field(image, box, erf, radius: float, path, layer: str = "") -> str:
    """Left: the image with the theoretical receptive field of the centre unit as a box.
    Right: the effective receptive field as a heatmap, its RMS radius as a circle.

    Args:
        image: (H, W) or (H, W, C) in [0, 1].
        box: ``(top, left, bottom, right)`` from ``receptive_field_box``.
        erf: (H, W) from ``effective_receptive_field``; radius: ``rms_radius(erf)``.
    """
    plt = _pyplot()
    from matplotlib.patches import Circle, Rectangle

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 5))
    top, left, bottom, right = box
    _show_image(ax0, image, f"theoretical RF of {layer}: {bottom - top}x{right - left}")
    ax0.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                            edgecolor="red", linewidth=2))
    im = ax1.imshow(erf, cmap="inferno")
    rows, cols = np.indices(erf.shape)
    cy, cx = (erf * rows).sum() / erf.sum(), (erf * cols).sum() / erf.sum()
    ax1.add_patch(Circle((cx, cy), radius, fill=False, edgecolor="cyan", linewidth=1.5))
    ax1.set_title(f"effective RF: RMS radius {radius:.2f} px")
    ax1.axis("off")
    fig.colorbar(im, ax=ax1, fraction=0.046)
    return _figure(path, fig)


def plot_heatmap(image, heat, path, title: str) -> str:
    """The image, the heatmap, and the heatmap laid over the image (Grad-CAM, saliency)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    _show_image(axes[0], image, "input")
    axes[1].imshow(heat, cmap="jet", vmin=0, vmax=1)
    axes[1].set_title(title)
    _show_image(axes[2], image, "overlay")
    axes[2].imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    for ax in axes:
        ax.axis("off")
    return _figure(path, fig)


def plot_kernel(image, filtered, kernel, name: str, path) -> str:
    """The image, the kernel's weights, and the filtered image (grey levels scaled)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 1, 3]})
    _show_image(axes[0], image, "input")
    k = np.asarray(kernel)
    k = k[0] if k.ndim == 3 else k
    axes[1].imshow(k, cmap="RdBu_r", vmin=-np.abs(k).max(), vmax=np.abs(k).max())
    for (r, c), v in np.ndenumerate(k):
        axes[1].text(c, r, f"{v:.3g}", ha="center", va="center", fontsize=9)
    axes[1].set_title(f"{name} kernel" + (" (x; y is its transpose)" if name == "sobel" else ""))
    axes[1].axis("off")
    f = np.asarray(filtered, dtype=np.float64)
    grey = f.mean(-1) if f.ndim == 3 else f
    if name in ("box_blur", "gaussian_blur", "sharpen") and f.ndim == 3:
        _show_image(axes[2], np.clip(f, 0, 1), f"{name}(input)")
    else:
        axes[2].imshow(grey, cmap="gray")
        axes[2].set_title(f"{name}(input)")
        axes[2].axis("off")
    return _figure(path, fig)


def plot_erf_growth(ns, radii, fit: float, path) -> str:
    """RMS radius of the ERF against depth n, with the fitted ``a * sqrt(n)`` and 2n+1."""
    plt = _pyplot()
    ns = np.asarray(ns, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ns, radii, "o", label="effective: RMS radius (measured)")
    ax.plot(ns, fit * np.sqrt(ns), "-", label=f"{fit:.2f} * sqrt(n)")
    ax.plot(ns, 2 * ns + 1, "--", label="theoretical size 2n + 1")
    ax.set_xlabel("n (stacked 3x3 convolutions)")
    ax.set_ylabel("pixels")
    ax.legend()
    ax.grid(alpha=0.3)
    return _figure(path, fig)


def plot_filtered(image, results: dict, path) -> str:
    """The image and each ``name -> filtered image`` beside it, in one row (grey levels
    of the filtered results min-max scaled, as the seeds show them)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(results) + 1, figsize=(2.6 * (len(results) + 1), 3.2))
    _show_image(axes[0], image, "input")
    for ax, (name, f) in zip(axes[1:], results.items()):
        f = np.asarray(f, dtype=np.float64)
        grey = f.mean(-1) if f.ndim == 3 else f
        ax.imshow(grey, cmap="gray")
        ax.set_title(name)
        ax.axis("off")
    return _figure(path, fig)


def plot_frames(frames, titles, path) -> str:
    """Animation frames (RGB uint8) side by side, one title each: stills of the GIF."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(frames), figsize=(3.2 * len(frames), 2.4))
    for ax, frame, title in zip(np.atleast_1d(axes), frames, titles):
        ax.imshow(frame)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return _figure(path, fig)
