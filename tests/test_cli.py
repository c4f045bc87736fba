"""The ``dojang`` command run as a user runs it, in subprocesses, on a tiny dataset.

A Fashion-MNIST-format dataset of 300 + 100 images (a bright block whose place gives
the class, on noise) is written as IDX files into ``$DOJANG_DATA``. One run trains
uninterrupted; others are killed mid-run (SIGKILL, and SIGINT for Ctrl-C) and resumed,
and must end with the same weights, history and test accuracy, bit for bit. The last 60
training images have random labels: with ``--limit 300`` they are the validation split,
whose loss then rises, so that early stopping ends the run and restores an earlier epoch.

The loaders verify the published SHA-256 of every file, so the training subprocesses
start the CLI through ``LAUNCH``, which swaps in the checksums of the tiny files and then
runs ``dojang.cli`` as ``python -m dojang.cli`` would. Commands that read no dataset run
``python -m dojang.cli`` itself.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.test_datasets import IDX_NAMES, idx_bytes, sha

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
EPOCHS = 6


def train_args(limit: int) -> list[str]:
    return ["train", "--epochs", str(EPOCHS), "--batch-size", "32", "--limit", str(limit),
            "--seed", "3", "--verbose", "2"]


TRAIN = train_args(240)  # validation: 48 images of the learnable 240
EARLY_STOPPED = train_args(300)  # validation: the 60 images with random labels
LAUNCH = (
    "import json, os, runpy, signal\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even when\n"
    "# the tests run in a background job, which starts with SIGINT ignored\n"
    "from dojang.datasets import fashion_mnist\n"
    "from dojang.datasets._sources import RemoteFile\n"
    "files = json.loads(os.environ['DOJANG_TEST_FILES'])\n"
    "fashion_mnist.FILES = tuple(RemoteFile(*f) for f in files)\n"
    "at = os.environ.get('DOJANG_TEST_SIGINT_AT')\n"
    "if at:\n"
    "    import signal\n"
    "    from dojang import recipes\n"
    "    end, finish = recipes.RunCheckpoint.on_epoch_end, recipes.finish\n"
    "    def on_epoch_end(self, epoch, logs=None):\n"
    "        end(self, epoch, logs)\n"
    "        if at == str(epoch + 1) or at == 'stop' and self.model.stop_training:\n"
    "            os.kill(os.getpid(), signal.SIGINT)\n"
    "    def interrupted_finish(*args, **kwargs):\n"
    "        os.kill(os.getpid(), signal.SIGINT)\n"
    "        return finish(*args, **kwargs)\n"
    "    recipes.RunCheckpoint.on_epoch_end = on_epoch_end\n"
    "    if at == 'finish':\n"
    "        recipes.finish = interrupted_finish\n"
    "module = os.environ.get('DOJANG_TEST_MODULE', 'dojang.cli')\n"
    "runpy.run_module(module, run_name='__main__')\n"
)
# With DOJANG_TEST_SIGINT_AT, LAUNCH sends itself Ctrl-C at a chosen moment: right after
# the checkpoint of epoch N ('N'), after the checkpoint where early stopping ends the run
# ('stop'), or when the run is finished and being evaluated and plotted ('finish').
# DOJANG_TEST_MODULE=dojang.demo runs ``make demo``'s module instead of the CLI.
TIMEOUT = 120

pytest.importorskip("PIL")
pytest.importorskip("matplotlib")


def tiny_fashion_mnist(rng: np.random.Generator, n: int, amplitude: int = 100):
    """Images of noise plus a 8x4 block at one of 10 places (the label), as uint8."""
    y = rng.integers(0, 10, n).astype(np.uint8)
    x = rng.integers(0, 256 - amplitude, (n, 28, 28)).astype(np.uint8)
    rows, cols = np.divmod(y.astype(int), 5)
    for i in range(n):
        x[i, 4 + 10 * rows[i]: 12 + 10 * rows[i], 2 + 5 * cols[i]: 6 + 5 * cols[i]] += amplitude
    return x, y


class Workspace:
    """A directory with the tiny dataset and the environment every subprocess gets."""

    def __init__(self, root: Path):
        self.root = root
        rng = np.random.default_rng(0)
        x_train, y_train = tiny_fashion_mnist(rng, 300)
        y_train[240:] = rng.integers(0, 10, 60)
        self.arrays = (x_train, y_train, *tiny_fashion_mnist(rng, 100))
        data = root / "data" / "fashion-mnist"
        data.mkdir(parents=True)
        files = []
        for name, array in zip(IDX_NAMES, self.arrays, strict=True):
            raw = idx_bytes(array)
            blob = gzip.compress(raw, mtime=0)
            (data / name).write_bytes(blob)
            files.append([name, sha(blob), len(blob), sha(raw)])
        (root / "empty").mkdir()
        src = str(Path(__file__).resolve().parents[1] / "src")
        self.env = {**os.environ, "DOJANG_DATA": str(root / "data"),
                    "DOJANG_SYSTEM_DATA": str(root / "empty"),
                    "DOJANG_CACHE": str(root / "cache"), "DOJANG_TEST_FILES": json.dumps(files),
                    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                    "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
                    "MPLBACKEND": "Agg"}

    def command(self, args, data: bool) -> list[str]:
        entry = ["-c", LAUNCH] if data else ["-m", "dojang.cli"]
        return [sys.executable, *entry, *map(str, args)]

    def run(self, *args, data: bool = True, env=None) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(args, data), cwd=self.root,
                              env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=TIMEOUT)

    def run_ok(self, *args, data: bool = True) -> str:
        proc = self.run(*args, data=data)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        return proc.stdout

    def interrupt(self, run_dir: Path, sig: int) -> subprocess.CompletedProcess:
        """Start ``train --out run_dir``; send ``sig`` once run.json records an epoch."""
        out, err = self.root / f"{run_dir.name}.out", self.root / f"{run_dir.name}.err"
        with open(out, "w") as fo, open(err, "w") as fe:
            proc = subprocess.Popen(self.command([*TRAIN, "--out", run_dir], True),
                                    cwd=self.root, env=self.env, stdout=fo, stderr=fe, text=True)
            try:
                deadline = time.monotonic() + TIMEOUT
                while finished_epochs(run_dir) < 1:
                    assert proc.poll() is None, f"exited early: {err.read_text()}"
                    assert time.monotonic() < deadline, "no epoch finished in time"
                    time.sleep(0.005)
                proc.send_signal(sig)
                proc.wait(timeout=TIMEOUT)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.read_text(),
                                           err.read_text())


def finished_epochs(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "run.json").read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def load_weights(run_dir: Path) -> list[np.ndarray]:
    from dojang.models import load_model

    return load_model(run_dir / "model.dojang").get_weights()


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = load_weights(a), load_weights(b)
    assert len(wa) == len(wb) == 8
    for x, y in zip(wa, wb, strict=True):
        np.testing.assert_array_equal(x, y)
    assert (a / "history.csv").read_text() == (b / "history.csv").read_text()
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    assert ra["test_accuracy"] == rb["test_accuracy"]
    assert ra["test_loss"] == rb["test_loss"]
    assert ra["confusion_matrix"] == rb["confusion_matrix"]
    sa, sb = (json.loads((d / "run.json").read_text()) for d in (a, b))
    assert sa["history"] == sb["history"] and sa["epoch"] == sb["epoch"]


def read_state(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def self_interrupted(ws: Workspace, args, at: str) -> subprocess.CompletedProcess:
    """Run LAUNCH with a Ctrl-C at ``at``: a clean exit with status 130 is expected."""
    proc = ws.run(*args, env={"DOJANG_TEST_SIGINT_AT": at})
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def interrupted_then_resumed(ws: Workspace, name: str, sig: int):
    run_dir = ws.root / name
    killed = ws.interrupt(run_dir, sig)
    state = json.loads((run_dir / "run.json").read_text())
    # The signal must have landed mid-run, after a checkpoint and before the end.
    assert 1 <= state["epoch"] < EPOCHS and not state.get("finished"), state["epoch"]
    assert (run_dir / state["checkpoint"]).is_file()
    assert not (run_dir / "results.json").exists()
    resumed = ws.run_ok("train", "--resume", run_dir, "--verbose", "2")
    return run_dir, killed, state, resumed


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def run_a(ws) -> tuple[Path, str]:
    stdout = ws.run_ok(*TRAIN, "--out", ws.root / "A")
    return ws.root / "A", stdout


@pytest.fixture(scope="module")
def run_b(ws, run_a) -> Path:
    run_dir, killed, state, _ = interrupted_then_resumed(ws, "B", signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    return run_dir


@pytest.fixture(scope="module")
def run_early_stopped(ws) -> Path:
    run_dir = ws.root / "U"
    ws.run_ok(*EARLY_STOPPED, "--out", run_dir)
    state = read_state(run_dir)
    es = state["early_stopping"]
    # The data make early stopping end the run and restore weights older than the last
    # checkpoint, so that resuming with the checkpoint's weights would show.
    assert es["stopped_epoch"] > 0 and state["epoch"] < EPOCHS, state
    assert es["best_epoch"] + 1 < state["epoch"], state
    return run_dir


# ---------------------------------------------------------------- train / resume


def test_uninterrupted_run_writes_every_file(run_a, ws):
    run_dir, stdout = run_a
    names = {p.name for p in run_dir.iterdir()}
    assert {"run.json", "history.csv", "model.dojang", "best.dojang", "results.json",
            "history.png", "filters.png", "feature_maps.png", "confusion.png"} <= names
    state = json.loads((run_dir / "run.json").read_text())
    assert state["finished"] and state["recipe"]["limit"] == 240
    assert state["recipe"]["seed"] == 3 and state["recipe"]["epochs"] == EPOCHS
    checkpoints = sorted(n for n in names if n.startswith("ckpt-"))
    assert checkpoints == [state["checkpoint"]] == [f"ckpt-{state['epoch']:03d}.dojang"]
    assert not [n for n in names if ".tmp" in n]
    # 240 examples, 20% held out: 192 to fit, 48 to validate.
    rows = (run_dir / "history.csv").read_text().splitlines()
    assert rows[0] == "epoch,loss,accuracy,val_loss,val_accuracy"
    assert len(rows) == 1 + state["epoch"]
    results = json.loads((run_dir / "results.json").read_text())
    matrix = np.array(results["confusion_matrix"])
    assert matrix.sum() == 100  # the whole test set (fewer than --limit)
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(ws.arrays[3], minlength=10))
    assert results["test_accuracy"] == pytest.approx(np.trace(matrix) / 100, abs=1e-9)
    assert results["test_accuracy"] > 0.3  # it learned something (chance is 0.1)
    assert f"test accuracy: {results['test_accuracy']:.4f}" in stdout
    for png in ("history.png", "filters.png", "feature_maps.png", "confusion.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_after_sigkill_equals_uninterrupted_run(run_a, run_b):
    assert_same_run(run_a[0], run_b)


def test_ctrl_c_keeps_the_checkpoint_and_resumes_to_the_same_result(ws, run_a):
    run_dir, killed, state, resumed = interrupted_then_resumed(ws, "C", signal.SIGINT)
    assert killed.returncode == 130
    assert "Traceback" not in killed.stderr + killed.stdout
    assert (f"interrupted; the checkpoint of epoch {state['epoch']} is kept. Resume with: "
            f"dojang train --resume {run_dir}") in killed.stdout
    assert f"Epoch {state['epoch'] + 1}/{EPOCHS}" in resumed
    assert "Epoch 1/" not in resumed
    assert_same_run(run_a[0], run_dir)


def test_ctrl_c_during_validation_or_checkpoint_does_not_end_the_run(ws, run_a):
    run_dir = ws.root / "D"
    proc = self_interrupted(ws, [*TRAIN, "--out", run_dir], "2")
    assert "interrupted; the checkpoint of epoch 2 is kept" in proc.stdout
    state = read_state(run_dir)
    assert state["epoch"] == 2 and not state.get("finished")
    assert not (run_dir / "results.json").exists()
    ws.run_ok("train", "--resume", run_dir, "--verbose", "2")
    assert_same_run(run_a[0], run_dir)


@pytest.mark.parametrize("at", ["stop", "finish"])
def test_interrupt_after_early_stopping_resumes_to_the_restored_weights(ws, run_early_stopped,
                                                                        at):
    run_dir = ws.root / f"U-{at}"
    self_interrupted(ws, [*EARLY_STOPPED, "--out", run_dir], at)
    state = read_state(run_dir)
    assert state["epoch"] == read_state(run_early_stopped)["epoch"]
    assert bool(state.get("finished")) == (at == "finish")
    assert not (run_dir / "results.json").exists()
    resumed = ws.run_ok("train", "--resume", run_dir, "--verbose", "2")
    assert re.search(r"^Epoch \d+/", resumed, re.M) is None  # no epoch is trained again
    assert_same_run(run_early_stopped, run_dir)


def test_demo_on_a_finished_run_evaluates_it_again(ws, run_early_stopped):
    weights = load_weights(run_early_stopped)
    results = (run_early_stopped / "results.json").read_text()
    proc = ws.run(env={"DOJANG_TEST_MODULE": "dojang.demo",
                       "DOJANG_DEMO_OUT": str(run_early_stopped)})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith(f"continuing the demo run in {run_early_stopped}")
    assert re.search(r"^Epoch \d+/", proc.stdout, re.M) is None
    for before, after in zip(weights, load_weights(run_early_stopped), strict=True):
        np.testing.assert_array_equal(before, after)  # the restored best weights are kept
    assert (run_early_stopped / "results.json").read_text() == results


# ---------------------------------------------------------------- evaluate / predict


def test_evaluate_prints_the_run_test_accuracy(ws, run_b):
    results = json.loads((run_b / "results.json").read_text())
    stdout = ws.run_ok("evaluate", run_b)
    assert stdout.splitlines()[0] == (f"test accuracy: {results['test_accuracy']:.4f}   "
                                      f"test loss: {results['test_loss']:.4f}   (100 images)")
    table = stdout.splitlines()[3:]
    assert [[int(v) for v in line.split()[-10:]] for line in table] == \
        results["confusion_matrix"]


def parse_predictions(stdout: str) -> dict[str, list[tuple[str, float]]]:
    """``path: name p, name p, ...`` lines -> {path: [(name, p), ...]}."""
    out = {}
    for line in stdout.splitlines():
        path, ranked = line.split(": ", 1)
        out[path] = [(e.rsplit(" ", 1)[0], float(e.rsplit(" ", 1)[1]))
                     for e in ranked.split(", ")]
    return out


def test_predict_top_k_matches_model_predict(ws, run_b):
    from PIL import Image

    from dojang.models import load_model

    gray = ws.arrays[2][0]  # a test image, 28x28 grayscale
    Image.fromarray(gray, mode="L").save(ws.root / "gray.png")
    rgb = np.random.default_rng(1).integers(0, 256, (36, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb, mode="RGB").save(ws.root / "rgb.png")  # another size, 3 channels
    stdout = ws.run_ok("predict", run_b, "gray.png", "rgb.png", "--top-k", "3", data=False)

    # The model's input: grey levels in [0, 1] at 28x28, one channel.
    with Image.open(ws.root / "rgb.png") as img:
        rgb_input = np.asarray(img.convert("L").resize((28, 28), Image.BILINEAR), np.float32)
    batch = np.stack([gray.astype(np.float32) / 255, rgb_input / 255])[..., None]
    probs = load_model(run_b / "model.dojang").predict(batch)

    predictions = parse_predictions(stdout)
    assert list(predictions) == ["gray.png", "rgb.png"]
    for p, ranked in zip(probs, predictions.values(), strict=True):
        top = np.argsort(-p)[:3]
        assert [name for name, _ in ranked] == [CLASS_NAMES[i] for i in top]
        np.testing.assert_allclose([q for _, q in ranked], p[top], atol=5e-4 + 1e-7)
    assert re.fullmatch(r"gray\.png: (.+ \d\.\d{3}, ){2}.+ \d\.\d{3}", stdout.splitlines()[0])


def test_export_writes_onnx_and_keras_files_that_predict_the_same(ws, run_a):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("h5py")
    from dojang.models import load_model
    from tests.interchange_helpers import assert_agree, run_onnx

    run_dir = run_a[0]
    stdout = ws.run_ok("export", run_dir, "--onnx", "m.onnx", "--keras", "m.keras", data=False)
    assert stdout.splitlines() == ["wrote m.onnx (ONNX opset 17)", "wrote m.keras (Keras 3)"]
    model = load_model(run_dir / "model.dojang")
    x = ws.arrays[2][:4, :, :, None].astype(np.float32) / 255
    assert_agree(run_onnx(ws.root / "m.onnx", x)[0], model.predict(x))
    np.testing.assert_array_equal(load_model(ws.root / "m.keras").predict(x), model.predict(x))
    proc = ws.run("export", run_dir, data=False)
    assert proc.returncode == 2 and "give --onnx PATH and/or --keras PATH" in proc.stderr
    from PIL import Image

    Image.fromarray(ws.arrays[2][0]).save(ws.root / "first.png")
    # the same model in three formats (a file has no class names: indices are printed)
    answers = {re.sub(r"[^,]* (\d\.\d{3})", r"\1",
                      ws.run_ok("predict", source, "first.png", data=False).split(": ", 1)[1])
               for source in (run_dir, "m.onnx", "m.keras")}
    assert len(answers) == 1, answers


# ---------------------------------------------------------------- summary, help, errors


def test_summary(ws):
    stdout = ws.run_ok("summary", "fashion_cnn", data=False)
    assert "Total params: 333,526" in stdout


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["predict"], ["export"],
                                     ["summary"]])
def test_help(ws, command):
    stdout = ws.run_ok(*command, "--help", data=False)
    assert stdout.startswith(f"usage: {' '.join(['dojang', *command])} ")
    assert "-h, --help" in stdout


def test_bad_arguments_give_one_line_errors(ws, run_b):
    (ws.root / "not-an-image.png").write_text("hello")
    cases = [
        (["train", "--epochs", "0"],
         "dojang train: error: argument --epochs: expected a positive integer, got '0'"),
        (["train", "--model", "nope"],
         "dojang train: error: argument --model: invalid choice: 'nope'"),
        (["train", "--resume", run_b, "--epochs", "3"],
         "dojang train: error: --resume continues the run as it was; drop --epochs"),
        (["train", "--out", run_b],
         f"dojang train: error: run directory '{run_b}' already holds a run"),
        (["predict", run_b, "missing.png"],
         "dojang predict: error: no such image file: 'missing.png'"),
        (["predict", run_b, "not-an-image.png"],
         "dojang predict: error: cannot read 'not-an-image.png' as an image"),
        (["evaluate", "/nonexistent"],
         "dojang evaluate: error: '/nonexistent' is not a dojang run directory (no run.json)"),
        (["frobnicate"], "dojang: error: argument command: invalid choice: 'frobnicate'"),
    ]
    for args, message in cases:
        proc = ws.run(*args, data=False)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith(message), (args, proc.stderr)
        assert proc.stdout == ""


# ---------------------------------------------------------------- the seed recipe's data


def test_seed_recipe_is_the_issue_recipe():
    from dojang import recipes

    seed = recipes.RECIPES["seed"]
    assert (seed.model, seed.dataset, seed.optimizer, seed.lr, seed.batch_size) == \
        ("fashion_cnn", "fashion-mnist", "adam", 1e-3, 32)
    assert (seed.epochs, seed.patience, seed.validation_split) == (20, 2, 0.2)
    assert int(60_000 * seed.validation_split) == 12_000  # the 48,000/12,000 split


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="the dataset-fashion-mnist package is not installed")
def test_seed_recipe_data_from_the_system_directory(monkeypatch, tmp_path):
    from dojang import recipes

    monkeypatch.delenv("DOJANG_DATA", raising=False)
    monkeypatch.delenv("DOJANG_SYSTEM_DATA", raising=False)
    monkeypatch.setenv("DOJANG_CACHE", str(tmp_path))  # nothing may come from a cache
    (x_train, y_train), (x_test, y_test), names = recipes.load_dataset("fashion-mnist")
    assert names == list(CLASS_NAMES)
    assert x_train.shape == (60_000, 28, 28, 1) and x_test.shape == (10_000, 28, 28, 1)
    assert x_train.dtype == x_test.dtype == np.float32
    assert y_train.shape == (60_000,) and y_test.shape == (10_000,)
    assert y_train.dtype == y_test.dtype == np.int64
    assert x_train.min() == x_test.min() == 0.0 and x_train.max() == x_test.max() == 1.0
    grey = x_test * 255  # k/255 grey levels
    np.testing.assert_allclose(grey, np.round(grey), atol=1e-4)
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class.
    np.testing.assert_array_equal(np.bincount(y_train), np.full(10, 6_000))
    np.testing.assert_array_equal(np.bincount(y_test), np.full(10, 1_000))
    assert list(os.listdir(tmp_path)) == []


def test_device_option_is_checked_before_any_work(tmp_path, capsys):
    from dojang import cli

    for argv in (["train", "--device", "tpu", "--out", str(tmp_path / "r")],
                 ["evaluate", str(tmp_path), "--device", "gpu:x"],
                 ["predict", str(tmp_path), "a.png", "--device", "tpu"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"dojang {argv[0]}: error: Expected device to be one of")
        assert "\n" not in err
    assert not (tmp_path / "r").exists()


def test_a_run_on_a_device_saves_files_any_device_reads(ws, run_a):
    """``--device`` (strict: CuPy's rules without a GPU) for train, evaluate and predict;
    the files it writes are the CPU's files."""
    root = str(Path(__file__).resolve().parents[1])
    env = {"DOJANG_TEST_MODULE": "tests.strict_cli",
           "PYTHONPATH": os.pathsep.join([ws.env["PYTHONPATH"], root])}
    run_dir = ws.root / "on-strict"
    args = ["train", "--epochs", "2", "--batch-size", "32", "--limit", "240", "--seed", "3",
            "--verbose", "0", "--device", "strict", "--out", run_dir]
    proc = ws.run(*args, env=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    state = read_state(run_dir)
    assert state["finished"] and state["epoch"] == 2
    cpu = ws.run("evaluate", run_dir)  # a file written from the device, read on the CPU
    strict_eval = ws.run("evaluate", run_dir, "--device", "strict", env=env)
    assert cpu.returncode == strict_eval.returncode == 0, cpu.stderr + strict_eval.stderr
    accuracy = re.findall(r"test accuracy: ([0-9.]+)", cpu.stdout)
    assert accuracy and accuracy == re.findall(r"test accuracy: ([0-9.]+)", strict_eval.stdout)
    png = ws.root / "digit.png"
    from PIL import Image

    Image.fromarray(ws.arrays[2][0]).save(png)
    on_device = ws.run("predict", run_a[0], png, "--device", "strict", env=env)
    on_cpu = ws.run("predict", run_a[0], png, data=False)
    assert on_device.returncode == 0, on_device.stderr
    top = [p.stdout.split(": ", 1)[1].split(",")[0].rsplit(" ", 1)[0] for p in (on_device, on_cpu)]
    assert top[0] == top[1]
