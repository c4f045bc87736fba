"""Shared pieces of the interchange tests: onnxruntime runs and random batch statistics."""

from __future__ import annotations

import numpy as np

import dojang as dj


def randomize_batch_norm(model, seed: int = 0) -> None:
    """Give every BatchNormalization non-trivial statistics, so inference BN is tested."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, dj.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.data[...] = rng.standard_normal(c) * 0.1
            layer.moving_variance.data[...] = rng.uniform(0.5, 1.5, c)
            if layer.gamma is not None:
                layer.gamma.data[...] = rng.uniform(0.5, 1.5, c)
            if layer.beta is not None:
                layer.beta.data[...] = rng.standard_normal(c) * 0.1


def run_onnx(proto_or_path, *inputs):
    """Run an ONNX model (proto or file) in onnxruntime on the CPU; returns the outputs."""
    import onnxruntime as ort

    source = proto_or_path.SerializeToString() if hasattr(proto_or_path, "SerializeToString") \
        else str(proto_or_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def assert_agree(got, ref, tol: float = 1e-5) -> float:
    """|got - ref| <= tol * max|ref| (the interchange tolerance); returns the ratio."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    scale = max(float(np.abs(ref).max(initial=0.0)), 1e-30)
    ratio = float(np.abs(got - ref).max(initial=0.0)) / scale
    assert ratio <= tol, f"max |got - ref| / max |ref| = {ratio:.3g} > {tol}"
    return ratio
