"""The Keras 3 / TensorFlow side of ``make bench-peers``: a worker process.

Runs in the peers' virtual environment (.venv-peers: tensorflow-cpu, keras, numpy; no
dojang, no PyTorch) and answers one JSON request per line on stdin (common.Worker):
- ``{"op": "info"}``: versions, oneDNN, threads;
- ``{"op": "build", "name", "spec", "mode"}``: build workload ``spec`` (a
  workloads.Workload as JSON) the ``mode`` way, run it twice (warm-up, tracing);
- ``{"op": "time", "name", "steps"}``: seconds per step over one window.

Modes, the ways a Keras user would run each kind (the driver counts the fastest):
- train: ``train_on_batch`` (Keras compiles the step into a ``tf.function``), with XLA
  off (Keras's default on a CPU) and on (``jit_compile=True``);
- infer: ``predict_on_batch``, and ``model(x, training=False)`` in a ``tf.function``;
- conv, block: forward + ``GradientTape`` gradients (input and weights) in a
  ``tf.function``, XLA off and on.
TensorFlow gets the benchmark's threads: intra-op ``common.THREADS``, inter-op 1.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import common  # noqa: E402  (thread counts, the shared input data)

MODES = {"train": ("train_on_batch", "train_on_batch, XLA"),
         "infer": ("predict_on_batch", "tf.function call"),
         "conv": ("tf.function", "tf.function, XLA"),
         "block": ("tf.function", "tf.function, XLA")}


def keras_model(name: str, shape):
    """The Keras twin of dojang's zoo model ``name`` (softmax output) or the W6 block."""
    import keras
    from keras import layers as L

    inputs = keras.Input(shape=tuple(shape))
    if name == "fashion_cnn":
        x = L.Conv2D(32, 3, padding="same", activation="relu")(inputs)
        x = L.MaxPooling2D(2)(x)
        x = L.Conv2D(64, 3, padding="same", activation="relu")(x)
        x = L.Flatten()(L.MaxPooling2D(2)(x))
        x = L.Dropout(0.4)(L.Dense(100, activation="relu")(x))
        outputs = L.Dense(10, activation="softmax")(x)
    elif name == "lenet5":
        pad = "same" if shape[0] < 32 else "valid"
        x = L.AveragePooling2D(2)(L.Conv2D(6, 5, padding=pad, activation="tanh")(inputs))
        x = L.AveragePooling2D(2)(L.Conv2D(16, 5, activation="tanh")(x))
        x = L.Dense(84, activation="tanh")(L.Dense(120, activation="tanh")(L.Flatten()(x)))
        outputs = L.Dense(10, activation="softmax")(x)
    elif name == "resnet20":
        outputs = _resnet20(inputs)
    elif name == "dwsep":
        x = L.DepthwiseConv2D(3, padding="same")(inputs)
        outputs = L.Conv2D(shape[-1], 1)(x)
    else:
        raise ValueError(name)
    return keras.Model(inputs, outputs, name=name)


def _resnet20(inputs):
    from keras import layers as L

    def conv(x, filters, size, stride=1):
        return L.Conv2D(filters, size, strides=stride, padding="same", use_bias=False,
                        kernel_initializer="he_normal")(x)

    x = L.ReLU()(L.BatchNormalization()(conv(inputs, 16, 3)))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            stride = 2 if stage > 0 and block == 0 else 1
            y = L.ReLU()(L.BatchNormalization()(conv(x, filters, 3, stride)))
            y = L.BatchNormalization()(conv(y, filters, 3))
            if stride != 1 or x.shape[-1] != filters:
                x = L.BatchNormalization()(conv(x, filters, 1, stride))
            x = L.ReLU()(L.Add()([x, y]))
    return L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(x))


def build(spec: dict, mode: str):
    """A callable running one step of workload ``spec`` in Keras, the ``mode`` way."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    kind, shape, batch = spec["kind"], tuple(spec["shape"]), spec["batch"]
    if mode not in MODES[kind]:
        raise ValueError(f"mode {mode!r} is not one of {MODES[kind]}")
    xla = mode.endswith("XLA")
    if kind == "train":
        model = keras_model(spec["model"], shape)
        opt = (keras.optimizers.Adam(1e-3) if spec["optimizer"] == "adam"
               else keras.optimizers.SGD(0.01))
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", jit_compile=xla)
        x, y = common.make_data(batch, shape)
        return lambda: model.train_on_batch(x, y)
    if kind == "infer":
        model = keras_model(spec["model"], shape)
        x = common.make_data(batch, shape)[0]
        if mode == "predict_on_batch":
            return lambda: model.predict_on_batch(x)
        call = tf.function(lambda t: model(t, training=False))
        xt = tf.constant(x)
        return lambda: call(xt)
    if kind == "conv":
        x, k, b = common.conv_data(batch, shape)
        model = keras.Sequential([keras.Input(shape=shape),
                                  keras.layers.Conv2D(shape[-1], 3, padding="same")])
        model.layers[0].set_weights([k, b])
    else:
        x = common.make_data(batch, shape)[0]
        model = keras_model("dwsep", shape)
    return _fwd_bwd(model, tf.constant(x), xla)


def _fwd_bwd(model, x, xla: bool):
    """Forward, then the input and weight gradients for gy = y (as ``y.backward(y)``)."""
    import tensorflow as tf

    weights = model.trainable_variables

    @tf.function(jit_compile=xla)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x, training=True)
        return tape.gradient(y, [x, *weights], output_gradients=tf.stop_gradient(y))

    return lambda: step(x)


def info() -> dict:
    """Versions and settings of the peer, for the record."""
    import keras
    import tensorflow as tf

    try:
        from tensorflow.python.util import _pywrap_util_port

        onednn = bool(_pywrap_util_port.IsMklEnabled())  # oneDNN ops on (TF's own test)
    except (ImportError, AttributeError):
        onednn = None
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "onednn": onednn,
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "host": common.host_info()}


def main() -> None:
    """Serve requests until stdin closes."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(common.THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    fns = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["op"] == "info":
                answer = info()
            elif cmd["op"] == "build":
                fn = fns[cmd["name"]] = build(cmd["spec"], cmd["mode"])
                for _ in range(2):
                    fn()
                answer = {"ok": True}
            else:
                fn, steps = fns[cmd["name"]], cmd["steps"]
                t0 = time.perf_counter()
                for _ in range(steps):
                    fn()
                answer = {"sec": (time.perf_counter() - t0) / steps}
        except Exception as exc:  # noqa: BLE001 - reported to the driver, which stops
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer, default=str), flush=True)


if __name__ == "__main__":
    main()
