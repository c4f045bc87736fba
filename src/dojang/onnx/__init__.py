"""ONNX interchange: ``dj.onnx.export(model, path)`` and ``dj.onnx.load(path)``.

Both need the ``onnx`` package (``pip install 'dojang[interchange]'``), imported only
when they run.
"""

from dojang.onnx.export import export
from dojang.onnx.load import load

__all__ = ["export", "load"]
