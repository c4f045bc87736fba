"""TensorBoard: event files of a training run, readable by ``tensorboard --logdir``."""

from __future__ import annotations

import numpy as np

from dojang.callbacks.base import Callback


class TensorBoard(Callback):
    """Write a run's scalars, weight histograms and images as TensorBoard event files.

    Scalars: each epoch's logs under exactly History's keys (``loss``, ``accuracy``,
    ``val_loss``, ...), at step = the epoch counted from 0; with ``update_freq="batch"``
    (or every N batches) also each training batch's logs as ``batch_<key>`` at step = the
    batch counted from 0 over the whole run. Histograms (every ``histogram_freq`` epochs):
    every weight, tagged ``<layer>/<weight>``. Images (``write_images``): the filters of
    each 2-d conv layer as a grid (``<layer>/filters``) and, given ``images``, the feature
    maps of each conv layer on the first of them (``<layer>/feature_maps``).

    The files are written by ``tensorboardX`` (``pip install 'dojang[all]'``) into
    ``log_dir`` itself.

    Args:
        log_dir: the directory for the event files (made if missing).
        histogram_freq: write weight histograms every this many epochs (0: never).
        write_images: write filter grids (and feature maps, with ``images``).
        update_freq: ``"epoch"``, ``"batch"`` or an int N (every N training batches).
        images: (N, H, W, C) inputs whose first image's feature maps are drawn.

    Raises:
        ValueError: a bad update_freq or histogram_freq, or tensorboardX missing (at the
            start of training).

    Example:
        >>> import dojang as dj, numpy as np, tempfile
        >>> m = dj.Sequential([dj.layers.Dense(1, input_shape=(2,))])
        >>> m.compile("sgd", "mse")
        >>> tb = dj.callbacks.TensorBoard(tempfile.mkdtemp())
        >>> m.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=2, verbose=0, callbacks=[tb]).epoch
        [0, 1]
    """

    def __init__(self, log_dir: str = "logs", histogram_freq: int = 0, write_images: bool = False,
                 update_freq="epoch", images=None):
        super().__init__()
        if update_freq not in ("epoch", "batch") and not (
                isinstance(update_freq, int) and not isinstance(update_freq, bool)
                and update_freq >= 1):
            raise ValueError(f"TensorBoard: Expected update_freq to be 'epoch', 'batch' or an "
                             f"int >= 1. Received: update_freq={update_freq!r}")
        if not isinstance(histogram_freq, int) or histogram_freq < 0:
            raise ValueError(f"TensorBoard: Expected histogram_freq to be an int >= 0. "
                             f"Received: histogram_freq={histogram_freq!r}")
        self.log_dir = str(log_dir)
        self.histogram_freq = histogram_freq
        self.write_images = bool(write_images)
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self.images = None if images is None else np.asarray(images)[:1]
        self._writer = None
        self._batches = 0

    def on_train_begin(self, logs=None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ValueError("TensorBoard needs tensorboardX: pip install 'dojang[all]'"
                             ) from None
        self._writer = SummaryWriter(self.log_dir)
        self._batches = 0

    def on_train_batch_end(self, batch, logs=None):
        step, self._batches = self._batches, self._batches + 1
        if self.update_freq != "epoch" and step % self.update_freq == 0:
            for key, value in _scalars(logs):
                self._writer.add_scalar(f"batch_{key}", value, step)

    def on_epoch_end(self, epoch, logs=None):
        w = self._writer
        for key, value in _scalars(logs):
            w.add_scalar(key, value, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            for layer in self.model.layers:
                for weight in layer.weights:
                    w.add_histogram(f"{layer.name}/{_weight_name(weight)}",
                                    np.asarray(weight.numpy(), dtype=np.float64), epoch)
        if self.write_images:
            self._write_images(epoch)
        w.flush()

    def _write_images(self, epoch: int) -> None:
        from dojang.viz.figures import feature_map_grid, filter_grid
        from dojang.viz.probe import layer_output

        for layer in self.model.layers:
            kernel = getattr(layer, "kernel", None)
            if kernel is None or kernel.ndim != 4:
                continue
            self._writer.add_image(f"{layer.name}/filters", _unit(filter_grid(kernel.numpy())),
                                   epoch, dataformats="HWC")
            if self.images is not None:
                maps = layer_output(self.model, layer, self.images).numpy()[0]
                self._writer.add_image(f"{layer.name}/feature_maps",
                                       _unit(feature_map_grid(maps)), epoch, dataformats="HWC")

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _scalars(logs):
    """The logs' numeric entries as (key, float) pairs."""
    for key, value in (logs or {}).items():
        arr = np.asarray(value)
        if arr.ndim == 0 and arr.dtype.kind in "biuf":
            yield key, float(arr)


def _weight_name(weight) -> str:
    name = getattr(weight, "name", None) or "weight"
    return name.split("/")[-1]


def _unit(grid: np.ndarray) -> np.ndarray:
    """A tile grid (NaN gaps) as an (H, W, 3) image in [0, 1]: min-max scaled, gaps white."""
    g = np.asarray(grid, dtype=np.float64)
    finite = np.isfinite(g)
    lo, hi = (g[finite].min(), g[finite].max()) if finite.any() else (0.0, 1.0)
    g = np.where(finite, (g - lo) / (hi - lo if hi > lo else 1.0), 1.0)
    return g if g.ndim == 3 else np.repeat(g[..., None], 3, axis=-1)
