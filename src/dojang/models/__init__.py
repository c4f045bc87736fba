"""Models: ``Sequential``, functional ``Model(inputs, outputs)``, subclassing, saving.

Example:
    >>> import dojang as dj
    >>> model = dj.models.Sequential([dj.layers.Dense(1, input_shape=(2,))])
    >>> model.count_params()
    3
"""

from dojang.models.model import Functional, Model
from dojang.models.saving import load_model
from dojang.models.sequential import Sequential
from dojang.models.summary import summary_text

__all__ = ["Functional", "Model", "Sequential", "load_model", "summary_text"]
