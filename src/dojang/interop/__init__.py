"""Weights from other frameworks: ``dj.interop.load_torch_state_dict(model, path_or_dict)``.

Keras 3 files (``.keras``, ``.weights.h5``; ``dojang.models.keras_file``) go through
``dj.models.load_model``, ``model.save`` and ``model.load_weights``; ONNX through
``dj.onnx``.
"""

from dojang.interop.torch_weights import load_torch_state_dict

__all__ = ["load_torch_state_dict"]
