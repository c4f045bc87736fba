"""The ``dojang`` command: train, evaluate, predict, export, summary.

Examples::

    dojang train                               # the seed recipe on Fashion-MNIST
    dojang train --recipe fast --out runs/fast
    dojang train --resume runs/fast            # continue an interrupted run
    mpiexec -n 4 dojang train --distributed    # data-parallel over 4 MPI processes
    dojang evaluate runs/fast
    dojang predict runs/fast shirt.png --top-k 3
    dojang export runs/fast --onnx fast.onnx --keras fast.keras
    dojang summary fashion_cnn
    dojang show features runs/fast shirt.png --layer conv2d_1   # see dojang/cli_show.py
    dojang explain conv --input 5x5 --kernel 3 --padding same --stride 2

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
    _device_option(t)
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes of an MPI launch: mpiexec -n 4 "
                        "dojang train --distributed (--batch-size is per process)")

    e = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a run",
                       description="Evaluate a run's final model on its test set.")
    e.add_argument("run", help="run directory")
    e.add_argument("--data-dir", help="directory holding the dataset files")
    _device_option(e)

    pr = sub.add_parser("predict", help="classify image files with a run's model",
                        description="Print the top-k classes of each image.")
    pr.add_argument("run", help="run directory or model file (.dojang)")
    pr.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    pr.add_argument("--top-k", type=_positive_int, default=3)
    _device_option(pr)
    pr.add_argument("--invert", action="store_true",
                    help="invert grey levels (Fashion-MNIST items are light on black)")

    x = sub.add_parser("export", help="write a run's model as ONNX or Keras 3 files",
                       description="Export a run's final model for other runtimes.")
    x.add_argument("run", help="run directory or model file (.dojang, .keras)")
    x.add_argument("--onnx", metavar="PATH", help="write an ONNX file")
    x.add_argument("--opset", type=_positive_int, default=17, help="ONNX opset (default 17)")
    x.add_argument("--channels-first-io", action="store_true",
                   help="ONNX inputs and outputs in NCHW order")
    x.add_argument("--keras", metavar="PATH", help="write a Keras 3 .keras file")

    s = sub.add_parser("summary", help="print a zoo model's summary",
                       description="Print the layer table of a zoo model.")
    s.add_argument("model", choices=sorted(zoo.MODELS))

    from dojang import cli_show

    cli_show.register(sub)
    return p


def _device_option(parser) -> None:
    parser.add_argument("--device", default="cpu",
                        help="where the model computes: cpu (default), gpu or gpu:N "
                             "(needs dojang[gpu])")


def cmd_train(args) -> int:
    from dojang import recipes

    if args.resume:
        overrides = [k for k in ("model", "dataset", "epochs", "batch_size", "optimizer", "lr",
                                 "seed", "limit") if getattr(args, k) is not None]
        if overrides:
            raise ValueError(f"--resume continues the run as it was; drop "
                             f"{', '.join('--' + k.replace('_', '-') for k in overrides)}")
        recipes.train(None, args.resume, resume=True, data_dir=args.data_dir,
                      verbose=args.verbose, strategy=_strategy(args))
        return 0
    recipe = dataclasses.replace(recipes.RECIPES[args.recipe])
    for key in ("model", "dataset", "epochs", "batch_size", "optimizer", "lr", "seed", "limit"):
        if getattr(args, key) is not None:
            setattr(recipe, key, getattr(args, key))
    out = args.out or os.path.join("runs", f"{args.recipe}-{recipe.model}-{recipe.dataset}")
    recipes.train(recipe, out, recipe_name=args.recipe, data_dir=args.data_dir,
                  verbose=args.verbose, strategy=_strategy(args))
    return 0


# Variables an MPI launcher sets in each process it starts (MPICH/Hydra, Open MPI, PMIx).
_LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")


def _strategy(args):
    """``MPIStrategy`` for ``--distributed`` under an MPI launcher; else None (one process)."""
    if not args.distributed:
        return None
    if not any(v in os.environ for v in _LAUNCHER_VARIABLES):
        print("dojang train: --distributed: not started by an MPI launcher; training as one "
              "process. Start N processes with: mpiexec -n N dojang train --distributed",
              file=sys.stderr)
        return None
    from dojang.distribute import MPIStrategy

    return MPIStrategy()


def cmd_evaluate(args) -> int:
    from dojang import metrics, recipes

    state, model = recipes.final_model(args.run)
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
    from dojang.image import load

    arr = load(path, (height, width), channels)
    return 1.0 - arr if invert else arr


def cmd_predict(args) -> int:
    from dojang import recipes

    missing = [p for p in args.images if not os.path.isfile(p)]
    if missing:  # checked before the model is loaded
        raise ValueError(f"no such image file: {missing[0]!r}")
    state, model = recipes.final_model(args.run, files=True)
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
    from dojang import recipes

    _, model = recipes.final_model(args.run, files=True)
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
    from dojang import backends
    from dojang.distribute import CollectiveTimeout

    parser = build_parser()
    args = parser.parse_args(argv)
    command = getattr(args, "func", None) or COMMANDS[args.command]
    try:
        with backends.device(getattr(args, "device", "cpu")):  # new models are made there
            return command(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, TypeError, OSError, ImportError) as e:
        # OSError: a read-only --out, a full disk, a missing permission or file;
        # ImportError: --distributed without mpi4py.
        print(f"dojang {args.command}: error: {e}", file=sys.stderr)
        return 2
    except CollectiveTimeout as e:  # another process of an MPI launch died or hangs
        print(f"dojang {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
