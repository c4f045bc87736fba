"""The ``dojang`` command: train, evaluate, predict, export, summary.

Examples::

    dojang train                               # the seed recipe on Fashion-MNIST
    dojang train --recipe fast --out runs/fast
    dojang train --resume runs/fast            # continue an interrupted run
    dojang evaluate runs/fast
    dojang predict runs/fast shirt.png --top-k 3
    dojang export runs/fast --onnx fast.onnx --keras fast.keras
    dojang summary fashion_cnn

Bad arguments, user errors and operating-system errors (read-only or full disk, missing
permission) print one line (``dojang: error: ...``) and exit with status 2; what can be
checked (a writable run directory, existing files) is checked before data is loaded or a
model built. Tracebacks are kept for bugs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not a usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from dojang import recipes, zoo

    p = _Parser(prog="dojang", description="dojang: CNNs written from scratch on NumPy.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model (the seed recipe by default)",
                       description="Train a zoo model on a dataset into a run directory.")
    t.add_argument("--recipe", choices=sorted(recipes.RECIPES), default="seed",
                   help="seed: the book's recipe (default); fast: best accuracy per minute")
    t.add_argument("--model", choices=sorted(zoo.MODELS), help="zoo model (recipe default)")
    t.add_argument("--dataset", choices=recipes.DATASETS, help="dataset (recipe default)")
    t.add_argument("--epochs", type=_positive_int, help="maximum number of epochs")
    t.add_argument("--batch-size", type=_positive_int, help="examples per step")
    t.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
    t.add_argument("--lr", type=_positive_float, help="(peak) learning rate")
    t.add_argument("--seed", type=int, help="random seed (default 42)")
    t.add_argument("--limit", type=_positive_int,
                   help="use only the first N training and test examples")
    t.add_argument("--out", help="run directory (default runs/<recipe>-<model>-<dataset>)")
    t.add_argument("--resume", metavar="RUN", help="continue the run in this directory")
    t.add_argument("--data-dir", help="directory holding the dataset files")
    t.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1)

    e = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a run",
                       description="Evaluate a run's final model on its test set.")
    e.add_argument("run", help="run directory")
    e.add_argument("--data-dir", help="directory holding the dataset files")

    pr = sub.add_parser("predict", help="classify image files with a run's model",
                        description="Print the top-k classes of each image.")
    pr.add_argument("run", help="run directory")
    pr.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    pr.add_argument("--top-k", type=_positive_int, default=3)
    pr.add_argument("--invert", action="store_true",
                    help="invert grey levels (Fashion-MNIST items are light on black)")

    x = sub.add_parser("export", help="write a run's model as ONNX or Keras 3 files",
                       description="Export a run's final model for other runtimes.")
    x.add_argument("run", help="run directory")
    x.add_argument("--onnx", metavar="PATH", help="write an ONNX file")
    x.add_argument("--opset", type=_positive_int, default=17, help="ONNX opset (default 17)")
    x.add_argument("--channels-first-io", action="store_true",
                   help="ONNX inputs and outputs in NCHW order")
    x.add_argument("--keras", metavar="PATH", help="write a Keras 3 .keras file")

    s = sub.add_parser("summary", help="print a zoo model's summary",
                       description="Print the layer table of a zoo model.")
    s.add_argument("model", choices=sorted(zoo.MODELS))
    return p


def cmd_train(args) -> int:
    from dojang import recipes

    if args.resume:
        overrides = [k for k in ("model", "dataset", "epochs", "batch_size", "optimizer", "lr",
                                 "seed", "limit") if getattr(args, k) is not None]
        if overrides:
            raise ValueError(f"--resume continues the run as it was; drop "
                             f"{', '.join('--' + k.replace('_', '-') for k in overrides)}")
        recipes.train(None, args.resume, resume=True, data_dir=args.data_dir,
                      verbose=args.verbose)
        return 0
    recipe = dataclasses.replace(recipes.RECIPES[args.recipe])
    for key in ("model", "dataset", "epochs", "batch_size", "optimizer", "lr", "seed", "limit"):
        if getattr(args, key) is not None:
            setattr(recipe, key, getattr(args, key))
    out = args.out or os.path.join("runs", f"{args.recipe}-{recipe.model}-{recipe.dataset}")
    recipes.train(recipe, out, recipe_name=args.recipe, data_dir=args.data_dir,
                  verbose=args.verbose)
    return 0


def _final_model(run: str):
    from dojang import models, recipes
    from dojang.fileio import confined

    state = recipes.read_run(run)
    path = confined(run, "model.dojang", "model")
    if not os.path.exists(path):
        if not state.get("checkpoint"):
            raise ValueError(f"run {run!r} has no model yet (no finished epoch)")
        path = confined(run, state["checkpoint"], "checkpoint")
    return state, models.load_model(path)


def cmd_evaluate(args) -> int:
    from dojang import metrics, recipes

    state, model = _final_model(args.run)
    recipe = recipes.Recipe(**state["recipe"])
    _, (x_test, y_test), class_names = recipes.load_dataset(recipe.dataset, args.data_dir,
                                                            recipe.limit)
    logs = model.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)
    probs = model.predict(x_test, batch_size=256)
    matrix = metrics.confusion_matrix(y_test, probs.argmax(-1), num_classes=len(class_names))
    print(f"test accuracy: {logs['accuracy']:.4f}   test loss: {logs['loss']:.4f}   "
          f"({len(x_test)} images)")
    print(recipes.format_confusion(matrix, class_names))
    return 0


def load_image(path: str, height: int, width: int, channels: int, invert: bool = False):
    """Read an image file as a float32 (H, W, C) array in [0, 1] at the model's size."""
    try:
        from PIL import Image
    except ImportError:
        raise ValueError("predict needs Pillow to read images: pip install 'dojang[images]'"
                         ) from None
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            img = img.resize((width, height), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise ValueError(f"no such image file: {path!r}") from None
    except OSError as e:
        raise ValueError(f"cannot read {path!r} as an image: {e}") from None
    if channels not in (1, 3):
        raise ValueError(f"the model expects {channels} channels; images have 1 or 3")
    arr = arr.reshape(height, width, channels)
    return 1.0 - arr if invert else arr


def cmd_predict(args) -> int:
    missing = [p for p in args.images if not os.path.isfile(p)]
    if missing:  # checked before the model is loaded
        raise ValueError(f"no such image file: {missing[0]!r}")
    state, model = _final_model(args.run)
    names = state.get("class_names") or []
    h, w, c = model.input_shape[1:]
    batch = np.stack([load_image(p, h, w, c, args.invert) for p in args.images])
    probs = model.predict(batch, batch_size=len(batch))
    k = min(args.top_k, probs.shape[-1])
    for path, p in zip(args.images, probs):
        top = np.argsort(-p, kind="stable")[:k]
        ranked = ", ".join(f"{names[i] if i < len(names) else i} {p[i]:.3f}" for i in top)
        print(f"{path}: {ranked}")
    return 0


def cmd_export(args) -> int:
    if not args.onnx and not args.keras:
        raise ValueError("nothing to write; give --onnx PATH and/or --keras PATH")
    if args.keras and not args.keras.endswith(".keras"):
        raise ValueError(f"--keras expects a path ending in .keras, got {args.keras!r}")
    _, model = _final_model(args.run)
    if args.onnx:
        from dojang import onnx

        onnx.export(model, args.onnx, opset=args.opset,
                    channels_first_io=args.channels_first_io)
        print(f"wrote {args.onnx} (ONNX opset {args.opset})")
    if args.keras:
        model.save(args.keras)
        print(f"wrote {args.keras} (Keras 3)")
    return 0


def cmd_summary(args) -> int:
    from dojang import zoo

    zoo.get(args.model).summary()
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "export": cmd_export, "summary": cmd_summary}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, TypeError, OSError) as e:
        # OSError: a read-only --out, a full disk, a missing permission or file.
        print(f"dojang {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
