"""Models: ``Sequential``, functional ``Model(inputs, outputs)``, subclassing, saving.

``dj.models.graph.walk(model)`` gives any model's layer calls in topological order;
the summary (``dojang.models.summary``) and saving are functions over models.

Example:
    >>> import dojang as dj
    >>> model = dj.models.Sequential([dj.layers.Dense(1, input_shape=(2,))])
    >>> model.count_params()
    3
"""

from dojang.models import graph
from dojang.models.model import Functional, Model
from dojang.models.saving import load_model, save_model
from dojang.models.sequential import Sequential
from dojang.models.summary import summary_text

__all__ = ["Functional", "Model", "Sequential", "graph", "load_model", "save_model",
           "summary_text"]
