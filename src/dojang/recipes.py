"""Training recipes and run directories: what ``dojang train`` and ``make demo`` run.

A run directory holds everything one training run produces::

    runs/NAME/
        run.json            recipe, arguments, last finished epoch, history, callback state
        ckpt-EEE.dojang     model + optimizer after epoch EEE (only the newest is kept)
        best.dojang         best weights so far (EarlyStopping's restore_best_weights)
        history.csv         one row per epoch
        model.dojang        the final model
        *.png               curves, filters, feature maps, confusion matrix

Every file is written atomically (temporary file, then rename), and ``run.json`` is
written only after the checkpoint it names, so a crash or Ctrl-C at any moment leaves
the last finished epoch resumable. Resuming restores the weights, the optimizer state,
the history and the early-stopping state; each epoch's shuffle and dropout masks are
drawn from generators derived from (seed, epoch), so a resumed run equals an
uninterrupted one.
"""

from __future__ import annotations

import os
import signal
from dataclasses import asdict, dataclass, field

import numpy as np

from dojang.callbacks import Callback, EarlyStopping
from dojang.distribute.base import current as current_strategy
from dojang.fileio import (
    atomic_write,
    atomic_write_json,
    check_writable,
    confined,
    loads_json,
    read_capped,
    remove_orphans,
)

RUN_FORMAT = 1


@dataclass
class Recipe:
    """Hyper-parameters of one recipe; the CLI's flags override any field."""

    model: str = "fashion_cnn"
    dataset: str = "fashion-mnist"
    epochs: int = 20
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    validation_split: float = 0.2
    patience: int | None = 2
    schedule: str | None = None
    augment: tuple[str, ...] = ()
    seed: int = 42
    limit: int | None = None
    model_kwargs: dict = field(default_factory=dict)


RECIPES = {
    # Seed 004: the book's model, Keras defaults, 48k/12k split, EarlyStopping(2, restore).
    "seed": Recipe(),
    # Best accuracy per minute on a 2-core CPU (measured: 93.5% test in 8 epochs): batch
    # norm, a second conv in block 2, horizontal flips (2-pixel shifts underfit in so short a
    # schedule: 92.9%), batch 128 and a one-cycle learning rate; trains on all 60k images.
    "fast": Recipe(model="fashion_cnn_bn", epochs=8, batch_size=128, lr=3e-3,
                   validation_split=0.0, patience=None, schedule="onecycle", augment=("flip",)),
}


MAX_RUN_BYTES = 4 * 2**20


def read_run(run_dir: str) -> dict:
    """Read and check ``run.json`` of a run directory.

    A run only ever reads and deletes files inside its own directory: the checkpoint it
    names must be a plain file name there (no absolute path, ``..`` or symbolic link).

    Raises:
        ValueError: no run.json, or one that is too large, not JSON, of another format,
            or that names a file outside the run.
    """
    path = confined(run_dir, "run.json", "run file")
    try:
        state = loads_json(read_capped(path, MAX_RUN_BYTES), path, max_bytes=MAX_RUN_BYTES)
    except FileNotFoundError:
        raise ValueError(f"{run_dir!r} is not a dojang run directory (no run.json)") from None
    if not isinstance(state, dict) or state.get("format") != RUN_FORMAT:
        raise ValueError(f"{path!r}: Expected a run file of format {RUN_FORMAT}")
    if state.get("checkpoint") is not None:
        confined(run_dir, state["checkpoint"], "checkpoint")
    epoch = state.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0 or \
            not isinstance(state.get("recipe"), dict) or \
            not isinstance(state.get("history"), dict):
        raise ValueError(f"{path!r}: Expected 'epoch' (an int >= 0), 'recipe' and 'history' "
                         f"entries. Received: epoch={epoch!r}"[:300])
    return state


def final_model(run: str, files: bool = False):
    """``(run state, model)`` of a run directory: its final model, else its last checkpoint.

    With ``files``, a path to a model file gives ``({}, model)``: an ``.onnx`` file read by
    ``dojang.onnx.load``, any other by ``dojang.models.load_model`` (``.dojang``,
    ``.keras``).

    Raises:
        ValueError: not a run directory (or model file), or a run without a finished epoch.
    """
    from dojang import models
    from dojang.fileio import confined

    if files and os.path.isfile(run):
        if str(run).lower().endswith(".onnx"):
            from dojang import onnx

            return {}, onnx.load(run)
        return {}, models.load_model(run)
    state = read_run(run)
    path = confined(run, "model.dojang", "model")
    if not os.path.exists(path):
        if not state.get("checkpoint"):
            raise ValueError(f"run {run!r} has no model yet (no finished epoch)")
        path = confined(run, state["checkpoint"], "checkpoint")
    return state, models.load_model(path)


def history_csv(history: dict) -> str:
    keys = list(history)
    n = max((len(v) for v in history.values()), default=0)
    rows = [",".join(["epoch", *keys])]
    for i in range(n):
        rows.append(",".join([str(i + 1)] + [f"{history[k][i]:.6g}" for k in keys]))
    return "\n".join(rows) + "\n"


class RunCheckpoint(Callback):
    """Write the epoch's checkpoint, then ``run.json`` naming it; drop the older one."""

    def __init__(self, run_dir: str, state: dict, early_stopping: EarlyStopping | None):
        super().__init__()
        self.run_dir, self.state, self.early_stopping = run_dir, state, early_stopping

    def on_epoch_end(self, epoch, logs=None):
        ckpt = f"ckpt-{epoch + 1:03d}.dojang"
        self.model.save(os.path.join(self.run_dir, ckpt))  # writes on the chief only
        history = self.state["history"]
        for k, v in (logs or {}).items():
            history.setdefault(k, []).append(float(v))
        es = self.early_stopping
        if es is not None:
            if es.best_weights is not None and es.best_epoch == epoch:
                self.model.save(os.path.join(self.run_dir, "best.dojang"))
            self.state["early_stopping"] = {"wait": es.wait, "best": _finite(es.best),
                                            "best_epoch": es.best_epoch,
                                            "stopped_epoch": es.stopped_epoch}
        old = self.state.get("checkpoint")
        self.state.update(epoch=epoch + 1, checkpoint=ckpt)
        if not current_strategy().is_chief:  # every process keeps the state; one writes
            return
        atomic_write_json(os.path.join(self.run_dir, "run.json"), self.state)
        atomic_write(os.path.join(self.run_dir, "history.csv"), history_csv(history))
        if old and old != ckpt:
            _remove(confined(self.run_dir, old, "checkpoint"))


class StopOnInterrupt(Callback):
    """Turn Ctrl-C into a clean stop after the current batch (the checkpoint is kept)."""

    def __init__(self):
        super().__init__()
        self.interrupted = False

    def on_train_begin(self, logs=None):
        self.interrupted = False
        # A process started with SIGINT ignored (nohup, a background job) keeps ignoring it.
        self._old = signal.getsignal(signal.SIGINT)
        if self._old is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        self.interrupted = True
        self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        if self.interrupted:
            raise KeyboardInterrupt

    def on_train_end(self, logs=None):
        signal.signal(signal.SIGINT, self._old)


def _finite(x):
    return None if x is None or not np.isfinite(x) else float(x)


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def recipe_from_state(state: dict) -> Recipe:
    return Recipe(**state["recipe"])


def new_state(recipe: Recipe, name: str) -> dict:
    return {"format": RUN_FORMAT, "recipe": asdict(recipe), "recipe_name": name, "epoch": 0,
            "checkpoint": None, "history": {}}


DATASETS = ("fashion-mnist", "mnist", "cifar10")


def load_dataset(name: str, data_dir: str | None = None, limit: int | None = None):
    """Load a dataset as float32 NHWC images in [0, 1] with integer labels.

    Returns ``(x_train, y_train), (x_test, y_test), class_names``. ``limit`` keeps the
    first ``limit`` training and test examples (for quick runs).
    """
    from dojang import datasets
    from dojang.data import prepare_images

    modules = {"fashion-mnist": datasets.fashion_mnist, "mnist": datasets.mnist,
               "cifar10": datasets.cifar10}
    if name not in modules:
        raise ValueError(f"Expected dataset to be one of {DATASETS}. Received: {name!r}")
    module = modules[name]
    (x_train, y_train), (x_test, y_test) = module.load_data(path=data_dir)
    if limit is not None:
        x_train, y_train, x_test, y_test = (x_train[:limit], y_train[:limit], x_test[:limit],
                                            y_test[:limit])
    return ((prepare_images(x_train), y_train.reshape(-1).astype(np.int64)),
            (prepare_images(x_test), y_test.reshape(-1).astype(np.int64)),
            list(module.class_names))


def build_model(recipe: Recipe, input_shape, num_classes: int, steps_per_epoch: int):
    """Build and compile the recipe's zoo model (the seed recipe: Adam, Keras defaults)."""
    from dojang import optimizers, zoo

    model = zoo.get(recipe.model, input_shape=tuple(input_shape), num_classes=num_classes,
                    **recipe.model_kwargs)
    lr = recipe.lr
    if recipe.schedule == "onecycle":
        lr = optimizers.schedules.OneCycle(max_learning_rate=recipe.lr,
                                           total_steps=max(recipe.epochs * steps_per_epoch, 2))
    opt = optimizers.get({"class_name": recipe.optimizer, "config": {"learning_rate": lr}})
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class _ResumedEarlyStopping(EarlyStopping):
    """EarlyStopping that starts from the state a checkpoint recorded."""

    def __init__(self, saved: dict | None, best_weights, **kwargs):
        super().__init__(**kwargs)
        self._saved, self._saved_weights = saved, best_weights

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if getattr(self, "_saved", None):
            self.wait = self._saved["wait"]
            self.best = self._saved["best"]
            self.best_epoch = self._saved["best_epoch"]
            self.stopped_epoch = self._saved.get("stopped_epoch", 0)
            self.best_weights = self._saved_weights


AUGMENTATIONS = {
    "flip": lambda x, rng: _augment().random_flip_left_right(x, rng),
    "shift": lambda x, rng: _augment().random_shift(x, rng, max_shift=2),
    "cutout": lambda x, rng: _augment().cutout(x, rng, size=8),
}


def _augment():
    from dojang.data import augment

    return augment


def _augmenter(recipe: Recipe):
    """The recipe's per-batch augmentation, in the order its names are listed."""
    unknown = [name for name in recipe.augment if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"Expected augmentations among {sorted(AUGMENTATIONS)}. Received: "
                         f"{unknown}")
    if not recipe.augment:
        return None
    return _augment().compose(*(AUGMENTATIONS[name] for name in recipe.augment))


def _resumable(run_dir: str) -> dict:
    """``run.json`` of a run whose model file (the final one or the checkpoint) exists."""
    state = read_run(run_dir)
    needed = "model.dojang" if state.get("finished") else state.get("checkpoint")
    if needed and not os.path.isfile(confined(run_dir, needed, "checkpoint")):
        raise ValueError(f"run {run_dir!r}: {needed} is missing; the run cannot resume")
    return state


def _from_chief(strategy, read):
    """``read()`` (JSON data) run on the chief and given to every process; a ValueError or
    OSError it raises is raised on every process (as a ValueError on the others)."""
    if strategy.size == 1:
        return read()
    result = {"error": None, "value": None}
    if strategy.is_chief:
        try:
            result["value"] = read()
        except (ValueError, OSError) as e:
            result["error"] = str(e)
    result = strategy.broadcast(result)
    if result["error"] is not None:
        raise ValueError(result["error"])
    return result["value"]


def _load(strategy, path: str, compile: bool = True):
    """The model file the chief reads, loaded on every process (other hosts may not see
    the chief's directory, so its bytes are broadcast)."""
    import tempfile

    from dojang import models

    if strategy.size == 1:
        return models.load_model(path, compile=compile)
    if strategy.is_chief:
        with open(path, "rb") as f:
            strategy.broadcast(f.read())
        return models.load_model(path, compile=compile)
    blob = strategy.broadcast(None)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        with open(local, "wb") as f:
            f.write(blob)
        return models.load_model(local, compile=compile)


def _quiet(*args, **kwargs):
    """The print function of processes other than the chief."""


def train(recipe: Recipe, run_dir: str, *, recipe_name: str = "custom", resume: bool = False,
          data_dir: str | None = None, verbose: int = 1, print_fn=print,
          strategy=None) -> dict:
    """Train ``recipe`` into ``run_dir`` (or resume it there); return the final results.

    Under a strategy of several processes (``dojang train --distributed``) the batch size is
    per process, every process loads the data set, the chief alone reads and writes the
    run directory (it broadcasts what it reads, so resuming works with any number of
    processes) and prints.

    Returns:
        ``{"test_accuracy", "test_loss", "epochs", "confusion_matrix", "files"}``.
    """
    from dojang import random
    from dojang.data import BatchLoader
    from dojang.distribute.base import resolve

    strategy = resolve(strategy, "train")
    chief = strategy.is_chief
    if not chief:
        print_fn, verbose = _quiet, 0
    if resume:
        state = _from_chief(strategy, lambda: _resumable(run_dir))
        recipe = Recipe(**state["recipe"])
    else:
        def fresh():
            if os.path.exists(os.path.join(run_dir, "run.json")):
                raise ValueError(f"run directory {run_dir!r} already holds a run; pass "
                                 f"--resume {run_dir} to continue it or choose another --out")

        _from_chief(strategy, fresh)
        state = new_state(recipe, recipe_name)

    def prepare():  # before the long work: writable, and no litter of killed writes
        check_writable(run_dir)
        remove_orphans(run_dir)

    _from_chief(strategy, prepare)
    (x_train, y_train), (x_test, y_test), class_names = load_dataset(
        recipe.dataset, data_dir, recipe.limit)
    state["class_names"] = class_names
    random.set_seed(recipe.seed)
    n_val = int(len(x_train) * recipe.validation_split)
    n_fit = len(x_train) - n_val
    steps = -(-n_fit // (recipe.batch_size * strategy.size))
    final = confined(run_dir, "model.dojang", "model")
    if resume and state.get("finished"):
        model = _load(strategy, final)
    elif resume and state.get("checkpoint"):
        model = _load(strategy, confined(run_dir, state["checkpoint"], "checkpoint"))
    else:
        model = build_model(recipe, x_train.shape[1:], len(class_names), steps)
        # Written before the first epoch so that a run interrupted in it can be resumed.
        if chief:
            atomic_write_json(os.path.join(run_dir, "run.json"), state)
    callbacks = []
    early = None
    if recipe.patience is not None and n_val > 0:
        best = None
        best_path = confined(run_dir, "best.dojang", "best model")
        if resume and state.get("early_stopping") and _from_chief(
                strategy, lambda: os.path.exists(best_path)):
            best = _load(strategy, best_path, compile=False).get_weights()
        early = _ResumedEarlyStopping(state.get("early_stopping") if resume else None, best,
                                      monitor="val_loss", patience=recipe.patience,
                                      restore_best_weights=True, verbose=int(verbose > 0))
        callbacks.append(early)
    callbacks.append(RunCheckpoint(run_dir, state, early))
    interrupt = StopOnInterrupt()
    callbacks.append(interrupt)
    loader = BatchLoader(x_train[:n_fit], y_train[:n_fit], batch_size=recipe.batch_size,
                         shuffle=True, seed=recipe.seed, augment=_augmenter(recipe))
    validation = (x_train[n_fit:], y_train[n_fit:]) if n_val else None
    if not state.get("finished"):
        done = state["epoch"]
        # A run that early stopping ended resumes with no epochs left: fit then only
        # restores the best weights (EarlyStopping.on_train_end), as the first try would.
        stopped = (state.get("early_stopping") or {}).get("stopped_epoch", 0) > 0
        old_handler = signal.getsignal(signal.SIGINT)
        try:
            model.fit(loader, epochs=done if stopped else recipe.epochs,
                      initial_epoch=done, callbacks=callbacks, validation_data=validation,
                      verbose=verbose, strategy=strategy)
            if interrupt.interrupted:  # Ctrl-C during validation or the checkpoint
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            kept = (f"the checkpoint of epoch {state['epoch']} is kept" if state["epoch"]
                    else "no epoch had finished")
            print_fn(f"\ninterrupted; {kept}. Resume with: dojang train --resume {run_dir}")
            raise
        finally:
            signal.signal(signal.SIGINT, old_handler)
        # The final model is saved before the run is marked finished, so that resuming a
        # run interrupted later (evaluation, plots) uses these weights, not the checkpoint.
        model.save(final)  # the chief writes
        state["finished"] = True
        if chief:
            atomic_write_json(os.path.join(run_dir, "run.json"), state)
    return finish(model, run_dir, state, (x_test, y_test), class_names, print_fn, strategy)


def finish(model, run_dir: str, state: dict, test, class_names, print_fn=print,
           strategy=None) -> dict:
    """Evaluate the final model on the test set, draw the plots (on the chief); return the
    results (on every process)."""
    from dojang import metrics, viz
    from dojang.distribute.base import resolve

    x_test, y_test = test
    final = os.path.join(run_dir, "model.dojang")
    logs = model.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True,
                          strategy=strategy)
    probs = model.predict(x_test, batch_size=256, strategy=strategy)
    matrix = metrics.confusion_matrix(y_test, probs.argmax(axis=-1),
                                      num_classes=len(class_names))
    results = {"test_accuracy": float(logs["accuracy"]), "test_loss": float(logs["loss"]),
               "epochs": state["epoch"], "confusion_matrix": matrix.tolist(), "files": [final]}
    if not resolve(strategy, "finish").is_chief:
        return results
    files = results["files"]
    try:
        files.append(viz.plot_history(state["history"], os.path.join(run_dir, "history.png")))
        conv = next(layer for layer in model.layers if type(layer).__name__ == "Conv2D")
        files.append(viz.plot_filters(conv.get_weights()[0], os.path.join(run_dir,
                                                                           "filters.png")))
        maps = viz.feature_maps(model, x_test[0])
        files.append(viz.plot_feature_maps(maps, x_test[0],
                                           os.path.join(run_dir, "feature_maps.png")))
        files.append(viz.plot_confusion_matrix(matrix, class_names,
                                               os.path.join(run_dir, "confusion.png")))
    except ImportError:
        print_fn("matplotlib is not installed: no plots (pip install dojang[plots])")
    atomic_write_json(os.path.join(run_dir, "results.json"), results)
    print_fn(f"test accuracy: {results['test_accuracy']:.4f}   test loss: "
             f"{results['test_loss']:.4f}   ({state['epoch']} epochs)")
    print_fn(format_confusion(matrix, class_names))
    return results


def format_confusion(matrix, class_names) -> str:
    """The confusion matrix as text: rows are true classes, columns predicted ones."""
    names = [n[:10] for n in class_names]
    width = max(6, max(len(n) for n in names) + 1)
    lines = ["confusion matrix (rows: true, columns: predicted)",
             " " * width + "".join(f"{i:>6d}" for i in range(len(names)))]
    for i, row in enumerate(np.asarray(matrix)):
        lines.append(f"{names[i]:<{width}}" + "".join(f"{v:>6d}" for v in row))
    return "\n".join(lines)
