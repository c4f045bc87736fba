"""dojang show ...: PNGs from a run directory or a model file; bad input is one line, exit 2.

The commands run in-process through ``dojang.cli.main`` (the argument parsing and the
error handling are the same as the console script's).
"""

import json
import os

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L
from dojang.cli import main
from dojang.recipes import RECIPES, new_state

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    dj.layers.clear_session()
    root = tmp_path_factory.mktemp("show")
    model = dj.Sequential([
        L.Conv2D(4, 3, activation="relu", padding="same", input_shape=(12, 12, 1)),
        L.MaxPooling2D(2),
        L.Conv2D(6, 3, activation="relu", name="conv2d_1"),
        L.Flatten(),
        L.Dense(3, activation="softmax"),
    ])
    model.save(root / "model.dojang")
    run = root / "run"
    run.mkdir()
    model.save(run / "model.dojang")
    (run / "run.json").write_text(json.dumps(new_state(RECIPES["seed"], "seed")))
    rgb = (np.random.default_rng(0).random((20, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(root / "photo.jpg")
    Image.fromarray(rgb[..., 0]).save(root / "grey.png")
    (root / "notes.png").write_text("not an image")
    return root


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("source", ["model.dojang", "run"])
@pytest.mark.parametrize("args,name", [
    (["features", "{m}", "{d}/photo.jpg", "--layer", "conv2d_1"], "features_conv2d_1.png"),
    (["features", "{m}", "{d}/grey.png"], "features_conv2d.png"),
    (["filters", "{m}"], "filters_conv2d.png"),
    (["filters", "{m}", "--layer", "2"], "filters_conv2d_1.png"),
    (["rf", "{m}", "--layer", "conv2d_1", "--image", "{d}/photo.jpg"], "rf_conv2d_1.png"),
    (["rf", "{m}", "--unit", "0,3"], "rf_conv2d_1.png"),
    (["gradcam", "{m}", "{d}/photo.jpg"], "gradcam.png"),
    (["saliency", "{m}", "{d}/photo.jpg", "--class", "1"], "saliency.png"),
])
def test_show_writes_a_png_and_prints_its_path(workspace, capsys, monkeypatch, tmp_path, source,
                                               args, name):
    monkeypatch.chdir(tmp_path)
    args = [a.format(m=workspace / source, d=workspace) for a in args]
    code, out, err = run_cli(capsys, "show", *args)
    assert code == 0, err
    assert out.strip() == str(tmp_path / name)
    assert (tmp_path / name).read_bytes()[:8] == PNG


def test_show_kernel_and_out(workspace, capsys, tmp_path):
    target = tmp_path / "sobel.png"
    code, out, err = run_cli(capsys, "show", "kernel", "sobel", workspace / "photo.jpg", "--out",
                             target)
    assert code == 0, err
    assert out.strip() == str(target) and target.read_bytes()[:8] == PNG


def test_predict_takes_a_model_file(workspace, capsys):
    code, out, err = run_cli(capsys, "predict", workspace / "model.dojang",
                             workspace / "photo.jpg")
    assert code == 0, err
    assert out.startswith(f"{workspace / 'photo.jpg'}: ")


@pytest.mark.parametrize("args,message", [
    (["show", "features", "{d}/model.dojang", "{d}/missing.png"], "no such image file"),
    (["show", "features", "{d}/model.dojang", "{d}/notes.png"], "cannot read"),
    (["show", "features", "{d}/model.dojang", "{d}/photo.jpg", "--layer", "conv9"],
     "no layer named 'conv9'"),
    (["show", "rf", "{d}/model.dojang", "--layer", "dense"], "has no spatial output"),
    (["show", "filters", "{d}/model.dojang", "--layer", "max_pooling2d"],
     "has no 2-d conv filters"),
    (["show", "filters", "{d}/nowhere"], "is not a dojang run directory"),
    (["show", "kernel", "sobel", "{d}/missing.png"], "no such image file"),
    (["explain", "conv", "--input", "2x2", "--kernel", "3"], "impossible convolution"),
    (["show", "rf", "{d}/model.dojang", "--unit", "9,0"], "outside layer 'conv2d_1'"),
])
def test_bad_input_is_one_line_and_exit_2(workspace, capsys, args, message):
    code, out, err = run_cli(capsys, *[a.format(d=workspace) for a in args])
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_unconvertible_image_for_the_model(workspace, capsys, tmp_path):
    model = dj.Sequential([L.Conv2D(2, 3, input_shape=(8, 8, 4))])
    model.save(tmp_path / "four.dojang")
    code, _, err = run_cli(capsys, "show", "features", tmp_path / "four.dojang",
                           workspace / "photo.jpg")
    assert code == 2 and "cannot convert an image to 4 channels" in err


@pytest.mark.parametrize("args", [["show", "--help"], ["explain", "--help"],
                                  ["show", "rf", "--help"], ["explain", "conv", "--help"]])
def test_help(capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    assert "usage: dojang" in capsys.readouterr().out


def test_show_features_arrays_are_the_layer_output(workspace):
    from dojang.image import load
    from dojang.viz import find_layer, layer_output

    model = dj.models.load_model(workspace / "model.dojang")
    image = load(workspace / "photo.jpg", (12, 12), 1)
    maps = layer_output(model, find_layer(model, "conv2d_1"), image[None]).numpy()
    probe = dj.Sequential(model.layers[:3])
    np.testing.assert_allclose(maps, probe.predict(image[None]), rtol=1e-6)
    assert os.path.exists(workspace / "model.dojang")


def test_explain_a_models_layer(workspace, capsys, tmp_path):
    for source in ("model.dojang", "run"):
        code, out, err = run_cli(capsys, "explain", "conv", workspace / source, "--layer",
                                 "conv2d_1", "--out", tmp_path / "c.gif")
        assert code == 0, err
        lines = out.splitlines()
        assert "output: 4x4" in lines and "params: 222" in lines  # (3*3*4 + 1) * 6
    code, out, err = run_cli(capsys, "explain", "conv", workspace / "model.dojang", "--layer",
                             "flatten", "--out", tmp_path / "c.gif")
    assert code == 2 and "is not a convolution or pooling layer" in err
