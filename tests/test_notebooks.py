"""The Korean notebooks in notebooks/: committed without outputs, and every one runs.

Each notebook is executed top to bottom by nbclient in a fresh Jupyter kernel, in the fast
mode (``DOJANG_NOTEBOOK_FAST=1``: a few hundred images, one epoch). A notebook's own
``assert`` cells check the numbers its text states and the answers to its exercises, so a
failing assert fails the test with the cell that raised.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def _ids(paths):
    return [p.stem for p in paths]


def test_there_are_five_notebooks_in_the_tutorials_order():
    assert [p.name[:3] for p in PATHS] == ["01_", "02_", "03_", "04_", "05_"]


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_committed_notebook_is_valid_and_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {index} has outputs"
            assert cell.execution_count is None, f"{path.name}: cell {index} has a count"
    assert "widgets" not in nb.metadata


@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_notebook_runs_in_fast_mode(path, monkeypatch):
    from nbclient import NotebookClient

    import dojang

    monkeypatch.setenv("DOJANG_NOTEBOOK_FAST", "1")
    # The kernel imports the same dojang as this test (a relative PYTHONPATH would not
    # survive the kernel's working directory, notebooks/).
    source = str(Path(dojang.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [source] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.delenv("MPLBACKEND", raising=False)       # the kernel's inline backend
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "1")    # this environment's python3 kernel
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no figure inline"
    fits = [c for c in nb.cells if c.cell_type == "code" and ".fit(" in c.source]
    for cell in fits:                   # training shows tqdm's notebook bar, a widget
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for o in cell.outputs), f"{path.name}: fit drew no progress widget"
    glyph_warnings = [o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs
                      if o.output_type == "stream" and "Glyph" in o.text]
    assert glyph_warnings == [], "a figure has characters its font cannot draw"


def test_use_korean_font_draws_hangul_without_missing_glyphs():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import dojang as dj

    before = dict(matplotlib.rcParams)
    try:
        family = dj.viz.use_korean_font()
        assert family == "NanumGothic"
        assert matplotlib.rcParams["font.family"] == [family]
        fig, ax = plt.subplots()
        ax.set_title("합성곱 신경망 -1")
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # "Glyph ... missing from font(s)" fails
            fig.canvas.draw()
        plt.close(fig)
    finally:
        matplotlib.rcParams.update(before)


def test_use_korean_font_says_what_to_install_when_no_package_has_the_font(monkeypatch):
    import dojang as dj
    from dojang.viz import fonts

    monkeypatch.setattr(fonts, "_font_dirs", lambda: [])
    assert dj.viz.korean_font_path() is None
    with pytest.raises(FileNotFoundError, match="pip install koreanize-matplotlib"):
        dj.viz.use_korean_font()


def test_fast_mode_falls_back_to_scikit_learn_digits_and_says_so(monkeypatch, capsys):
    import sys

    import numpy as np

    import dojang as dj

    monkeypatch.syspath_prepend(str(NOTEBOOKS))
    monkeypatch.delitem(sys.modules, "nbhelp", raising=False)
    import nbhelp

    def missing(path=None):
        raise dj.datasets.DatasetNotFoundError("no Fashion-MNIST here")

    monkeypatch.setattr(dj.datasets.fashion_mnist, "load_data", missing)
    monkeypatch.setattr(nbhelp, "FAST", True)
    (x, y), (x_test, y_test), names = nbhelp.load_fashion_mnist(n_train=300, n_test=50)
    assert "digits" in capsys.readouterr().out
    assert x.shape == (300, 28, 28, 1) and x_test.shape == (50, 28, 28, 1)
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() == 1
    assert names == tuple("0123456789") and set(np.unique(y)) == set(range(10))

    monkeypatch.setattr(nbhelp, "FAST", False)          # the full run never swaps the data
    with pytest.raises(dj.datasets.DatasetNotFoundError):
        nbhelp.load_fashion_mnist()
