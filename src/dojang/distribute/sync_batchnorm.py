"""SyncBatchNormalization: batch normalization with statistics over every process's shard.

Under data parallelism a ``BatchNormalization`` layer normalizes each process's shard by the
shard's own statistics. ``SyncBatchNormalization`` sums the channel sums over processes
instead, so N processes at batch B normalize as one process at batch N*B does.

With ``n`` the rows (examples times positions) of all processes, ``m`` this process's rows,
``mean = sum_all(x) / n`` and ``var = sum_all((x - mean)**2) / n`` (two reductions, no
cancellation). Backward: ``fit`` weights process ``r``'s parameter gradients by ``m_r / n``
and sums them (``Strategy.reduce_gradients``), so the input gradient is kept in that same
local scale: with ``S1 = sum_r (m_r/n) sum(gy_r)`` and ``S2 = sum_r (m_r/n) sum(gy_r xhat_r)``,
``dx = s * (gy - S1/m - xhat * S2/m)``; with one process this is BatchNormalization's
``s * (gy - sum(gy)/n - xhat * sum(gy xhat)/n)``.
"""

from __future__ import annotations

from dojang.autograd import Tensor
from dojang.distribute.base import current
from dojang.kernels.batchnorm.reference import _add_product, _column_dots, _column_sums, _Layout
from dojang.layers.normalization import BatchNormalization
from dojang.ops.nn import BatchNormTrain


class _SyncBatchNormTrain(BatchNormTrain):
    """``BatchNormTrain`` whose sums run over every process (NumPy reference kernels)."""

    def forward(self, x, gamma, beta):
        self.strategy = strategy = current()
        self.lay = lay = _Layout(x, self.axis)
        w = lay.matrix(x)
        summed = strategy.reduce_logs({"sum": lay.fold(_column_sums(w))}, lay.n)
        n = summed["count"]
        mean = (summed["sum"] / n).astype(x.dtype, copy=False)
        xc = w - lay.tile(mean)
        var = strategy.reduce_logs({"sq": lay.fold(_column_dots(xc, xc))}, 0)["sq"] / n
        var = var.astype(x.dtype, copy=False)
        self.inv_std = inv_std = 1 / lay.xp.sqrt(var + x.dtype.type(self.epsilon))
        self.scale = scale = inv_std if gamma is None else gamma * inv_std
        self.xc, self.share = xc, lay.n / n
        self._update_running(mean, var, empty=n == 0)
        y = xc * lay.tile(scale)
        if beta is not None:
            y += lay.tile(beta)
        return lay.unmatrix(y)

    def backward(self, gy):
        lay, xc, inv_std, scale, m = self.lay, self.xc, self.inv_std, self.scale, self.lay.n
        gyw = lay.matrix(gy)
        gy_sum = lay.fold(_column_sums(gyw))
        gy_xhat_sum = lay.fold(_column_dots(gyw, xc)) * inv_std
        total = self.strategy.reduce_logs({"s1": gy_sum * self.share,
                                           "s2": gy_xhat_sum * self.share}, 0)
        s1, s2 = (total[k].astype(gy.dtype, copy=False) for k in ("s1", "s2"))
        gx = None
        if self.needs_input_grad[0]:
            gx = xc * lay.tile(scale * inv_std * s2 / -m)
            gx += lay.tile(scale * s1 / -m)
            _add_product(gx, gyw, lay.tile(scale))
            gx = lay.unmatrix(gx)
        return self._grads(gx, None, gy_sum, gy_xhat_sum)


class SyncBatchNormalization(BatchNormalization):
    """``BatchNormalization`` whose training statistics cover every process's shard.

    Same arguments, weights and inference as ``BatchNormalization``; in training, the
    mean and variance are those of the whole global batch (see the module docstring).
    With one process it computes what ``BatchNormalization`` computes.

    Every process must run the layer at every training step (``fit`` refuses data whose
    last batch would leave a process without examples).

    Example:
        >>> import numpy as np, dojang as dj
        >>> bn = dj.distribute.SyncBatchNormalization()
        >>> bn(np.ones((2, 4, 4, 3)), training=True).shape
        (2, 4, 4, 3)
    """

    synchronized = True

    def call(self, inputs, training: bool = False):
        if not training:
            return super().call(inputs, training=False)
        x = inputs if isinstance(inputs, Tensor) else Tensor(inputs)
        return _SyncBatchNormTrain.apply(
            x, self.gamma, self.beta, axis=self.axis % x.ndim, epsilon=self.epsilon,
            momentum=self.momentum, running_mean=self.moving_mean.data,
            running_var=self.moving_variance.data)
