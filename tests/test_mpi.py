"""Data parallelism over MPI (issue 15), run with the venv's ``mpiexec`` in subprocesses.

N ranks at per-rank batch B must give what one process gives at batch N*B: weights,
History (every rank's), evaluate and predict, within 1e-6 in float64 (tests/mpi_worker.py
trains; the reference is computed here in-process). Then faults: a killed rank, a launch
whose ranks disagree, and resuming a CLI run from rank 0's checkpoint with the same and
another number of ranks. Compiled kernels are off (DOJANG_JIT=0) so that each rank starts
in about half a second instead of compiling.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dojang as dj

pytest.importorskip("mpi4py")
MPIEXEC = Path(sys.executable).with_name("mpiexec")
if not MPIEXEC.exists():
    pytest.skip(f"no mpiexec beside {sys.executable} (pip install 'dojang[mpi]')",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "mpi_worker.py"
ENV = {**os.environ, "DOJANG_JIT": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                      os.environ.get("PYTHONPATH", "")])}


def mpirun(n: int, *args, env=None, extra=(), timeout=90) -> subprocess.CompletedProcess:
    return subprocess.run([str(MPIEXEC), *extra, "-n", str(n), sys.executable, *map(str, args)],
                          env={**ENV, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def reference(scenario: str, size: int):
    """One process at batch size * BATCH: weights, history, evaluate, predict."""
    from tests import mpi_worker as w

    with dj.default_dtype("float64"):
        x, y = w.data(scenario)
        model = w.build(scenario == "syncbn")
        history = model.fit(x, y, batch_size=size * w.BATCH, epochs=2, verbose=0,
                            validation_data=(x[:10], y[:10]))
        logs = model.evaluate(x, y, batch_size=3, verbose=0, return_dict=True)
        return model.get_weights(), history.history, logs, model.predict(x, batch_size=5)


@pytest.mark.parametrize("scenario, size", [("plain", 2), ("plain", 3), ("syncbn", 2),
                                            ("syncbn", 3)])
def test_ranks_equal_one_process_at_the_global_batch(tmp_path, scenario, size):
    proc = mpirun(size, WORKER, scenario, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    weights, history, logs, probs = reference(scenario, size)
    got = np.load(tmp_path / "result.npz")
    assert len(got.files) == len(weights) + 1
    for i, w in enumerate(weights):
        np.testing.assert_allclose(got[f"arr_{i}"], w, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["probs"], probs, rtol=0, atol=1e-6)
    for path in [tmp_path / "history.json",
                 *(tmp_path / f"history-{r}.json" for r in range(1, size))]:
        result = json.loads(path.read_text())
        assert result["history"].keys() == history.keys()
        for k in history:
            np.testing.assert_allclose(result["history"][k], history[k], rtol=0, atol=1e-6)
        for k in logs:
            np.testing.assert_allclose(result["evaluate"][k], logs[k], rtol=0, atol=1e-6)


def test_a_killed_rank_makes_the_others_exit_with_a_clear_error(tmp_path):
    start = time.monotonic()
    proc = mpirun(3, WORKER, "kill", tmp_path, env={"DOJANG_MPI_TIMEOUT": "3"},
                  extra=["-disable-auto-cleanup"], timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert proc.stderr.count("CollectiveTimeout: MPIStrategy: rank") == 2, proc.stderr
    assert "waited 3 s for the gradients of a step" in proc.stderr
    assert elapsed < 30
    assert not (tmp_path / "result.npz").exists()


@pytest.mark.parametrize("scenario, message", [
    ("mismatch", "MPIStrategy: Expected every rank to have the same model (class and weights; "
                 "seed every process alike). Received: ranks [1] differ from rank 0"),
    ("small", "fit: Expected at least size * batch_size = 2 * 4 examples, so that every "
              "process's shard holds one batch. Received: 7 examples"),
])
def test_bad_launches_are_refused_on_every_rank(tmp_path, scenario, message):
    proc = mpirun(2, WORKER, scenario, tmp_path)
    assert proc.returncode == 0, proc.stderr
    # The ranks' lines may interleave on mpiexec's stdout.
    assert sorted(r for r in (0, 1) if f"rank {r} refused: {message}" in proc.stdout) == [0, 1]


KILL_RANK_1 = (
    "import os, signal\n"
    "kill_at = os.environ.get('DOJANG_TEST_KILL_AT')\n"
    "if kill_at and os.environ.get('PMI_RANK') == '1':\n"
    "    from dojang import recipes\n"
    "    end = recipes.RunCheckpoint.on_epoch_end\n"
    "    def on_epoch_end(self, epoch, logs=None):\n"
    "        end(self, epoch, logs)\n"
    "        if str(epoch + 1) == kill_at:\n"
    "            os.kill(os.getpid(), signal.SIGKILL)\n"
    "    recipes.RunCheckpoint.on_epoch_end = on_epoch_end\n"
)


def test_cli_resume_from_rank_0_checkpoint_after_a_killed_rank(tmp_path):
    """mpiexec -n 2 dojang train --distributed; rank 1 is killed after epoch 2 and the
    launcher ends rank 0 (MPICH's Hydra also does with -disable-auto-cleanup when a PMI
    message is pending for the dead rank; test_a_killed_rank... covers the timeout); the
    last checkpoint is intact; --resume with 2 ranks ends where an uninterrupted 2-rank run
    ends, bit for bit, and with 3 ranks it finishes the run too."""
    from tests.test_cli import EPOCHS, LAUNCH, TRAIN, Workspace

    ws = Workspace(tmp_path)
    env = {**ws.env, **{k: v for k, v in ENV.items() if k != "PYTHONPATH"},
           "DOJANG_MPI_TIMEOUT": "4"}

    def launch(n, *args, extra_env=None, extra=()):
        return subprocess.run(
            [str(MPIEXEC), *extra, "-n", str(n), sys.executable, "-c", KILL_RANK_1 + LAUNCH,
             *map(str, args)], cwd=tmp_path, env={**env, **(extra_env or {})},
            capture_output=True, text=True, timeout=120)

    whole = launch(2, *TRAIN, "--distributed", "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout.count("test accuracy") == 1  # the chief prints, the others do not
    killed = launch(2, *TRAIN, "--distributed", "--out", tmp_path / "cut",
                    extra_env={"DOJANG_TEST_KILL_AT": "2"})
    assert killed.returncode != 0
    state = json.loads((tmp_path / "cut" / "run.json").read_text())
    done = state["epoch"]
    assert done in (1, 2) and (tmp_path / "cut" / state["checkpoint"]).exists()
    shutil.copytree(tmp_path / "cut", tmp_path / "cut3")
    for n, run in ((2, "cut"), (3, "cut3")):
        resumed = launch(n, "train", "--resume", tmp_path / run, "--distributed")
        assert resumed.returncode == 0, resumed.stderr
        history = json.loads((tmp_path / run / "run.json").read_text())["history"]
        assert len(history["loss"]) == EPOCHS
    reference = json.loads((tmp_path / "whole" / "results.json").read_text())
    got = json.loads((tmp_path / "cut" / "results.json").read_text())
    assert got["test_loss"] == reference["test_loss"]
    assert (json.loads((tmp_path / "cut" / "run.json").read_text())["history"]
            == json.loads((tmp_path / "whole" / "run.json").read_text())["history"])
    three = json.loads((tmp_path / "cut3" / "run.json").read_text())["history"]
    whole_history = json.loads((tmp_path / "whole" / "run.json").read_text())["history"]
    assert three["loss"][:done] == whole_history["loss"][:done]
    assert three["loss"][done:] != whole_history["loss"][done:]  # 3 ranks: batch 96, not 64


def test_distributed_without_a_launcher_runs_as_one_process_with_a_notice(tmp_path):
    from tests.test_cli import TRAIN, Workspace

    ws = Workspace(tmp_path)
    env = {k: v for k, v in ws.env.items() if k not in ("PMI_SIZE", "PMI_RANK")}
    proc = subprocess.run(ws.command([*TRAIN[:2], "1", *TRAIN[3:], "--distributed", "--out",
                                      tmp_path / "one"], True), cwd=tmp_path,
                          env={**env, "DOJANG_JIT": "0"}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert ("--distributed: not started by an MPI launcher; training as one process. Start N "
            "processes with: mpiexec -n N dojang train --distributed") in proc.stderr
    assert "test accuracy" in proc.stdout
