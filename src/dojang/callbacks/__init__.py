"""Callbacks for ``fit``/``evaluate``/``predict``: History, ProgbarLogger, EarlyStopping,
ModelCheckpoint, ReduceLROnPlateau, LearningRateScheduler, TerminateOnNaN, CSVLogger,
TensorBoard.

Callbacks reach the model only through ``model.stop_training``,
``model.optimizer.learning_rate``, ``model.get_weights()``/``set_weights()`` and
``model.save``/``save_weights``.
"""

from dojang.callbacks.base import Callback, LambdaCallback
from dojang.callbacks.callback_list import CallbackList
from dojang.callbacks.checkpoint import ModelCheckpoint
from dojang.callbacks.early_stopping import EarlyStopping
from dojang.callbacks.history import CSVLogger, History
from dojang.callbacks.lr import LearningRateScheduler, ReduceLROnPlateau
from dojang.callbacks.progbar import ProgbarLogger
from dojang.callbacks.tensorboard import TensorBoard
from dojang.callbacks.terminate import TerminateOnNaN

__all__ = [
    "CSVLogger", "Callback", "CallbackList", "EarlyStopping", "History", "LambdaCallback",
    "LearningRateScheduler", "ModelCheckpoint", "ProgbarLogger", "ReduceLROnPlateau",
    "TensorBoard", "TerminateOnNaN",
]
