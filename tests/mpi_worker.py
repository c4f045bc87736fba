"""Run under ``mpiexec -n N`` by tests/test_mpi.py: train, evaluate and predict with
``MPIStrategy`` and write what rank 0 sees to ``OUT/result.npz`` and ``OUT/history.json``.

Usage: python tests/mpi_worker.py SCENARIO OUT, with SCENARIO one of
``plain`` (a small float64 CNN, Adam, 2 epochs, shuffled), ``syncbn`` (the same with
SyncBatchNormalization), ``kill`` (rank 1 kills itself at its third step; the others must
raise CollectiveTimeout), ``mismatch`` (rank 1 seeds its model differently), ``small``
(7 examples: less than one batch per rank).
"""

import json
import os
import signal
import sys

import numpy as np

import dojang as dj

BATCH = 4  # per rank


def data(scenario: str):
    """37 examples (3 ranks at batch 4: a last batch of 1, so two ranks get none), or 40
    for SyncBatchNormalization, which needs every rank at every step."""
    n = 40 if scenario == "syncbn" else 37
    rng = np.random.default_rng(7)
    return rng.normal(size=(n, 6, 6, 2)), rng.integers(0, 3, n)


def build(sync_bn: bool, seed: int = 5):
    dj.random.set_seed(seed)
    norm = ([dj.distribute.SyncBatchNormalization()] if sync_bn else [])
    model = dj.Sequential([dj.layers.Conv2D(4, 3, padding="same", activation="relu",
                                            input_shape=(6, 6, 2)), *norm,
                           dj.layers.MaxPooling2D(2), dj.layers.Flatten(), dj.layers.Dense(3)])
    model.compile(dj.optimizers.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    return model


def main(scenario: str, out: str) -> None:
    dj.set_default_dtype("float64")
    strategy = dj.distribute.MPIStrategy()
    x, y = data(scenario)
    if scenario == "small":
        x, y = x[:7], y[:7]
    seed = 6 if scenario == "mismatch" and strategy.rank == 1 else 5
    model = build(scenario == "syncbn", seed)
    callbacks = []
    if scenario == "kill" and strategy.rank == 1:
        callbacks.append(dj.callbacks.LambdaCallback(
            on_train_batch_begin=lambda step, logs: step == 2 and os.kill(os.getpid(),
                                                                         signal.SIGKILL)))
    try:
        history = model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=callbacks,
                            validation_data=(x[:10], y[:10]), strategy=strategy)
    except ValueError as e:
        print(f"rank {strategy.rank} refused: {e}", flush=True)
        return
    logs = model.evaluate(x, y, batch_size=3, verbose=0, return_dict=True, strategy=strategy)
    probs = model.predict(x, batch_size=5, strategy=strategy)
    if strategy.is_chief:
        np.savez(os.path.join(out, "result.npz"), *model.get_weights(), probs=probs)
        with open(os.path.join(out, "history.json"), "w") as f:
            json.dump({"history": history.history, "evaluate": logs,
                       "size": strategy.size}, f)
    else:  # every rank gets the global values
        with open(os.path.join(out, f"history-{strategy.rank}.json"), "w") as f:
            json.dump({"history": history.history, "evaluate": logs}, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
