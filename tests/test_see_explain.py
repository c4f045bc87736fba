"""dojang explain conv and dj.shapes.explain: numbers against the formulas written out
here, the seeds' worked examples, dojang's own layers, and the animation's cells."""

import math

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L
from dojang.shapes import explain
from dojang.viz.conv_anim import conv_frames, window_cells


def direct_output(n, k, s, p_before, p_after, d=1):
    return math.floor((n + p_before + p_after - d * (k - 1) - 1) / s) + 1


@pytest.mark.parametrize("size,kernel,stride,padding,dilation", [
    ((5, 5), 3, 2, "same", 1), ((5, 5), 3, 2, "same", 2), ((15, 9), 3, 2, "valid", 1),
    ((15, 9), (3, 5), (2, 1), "same", 1), ((7, 8), 4, 3, 1, 1), ((6, 6), 2, 2, "same", 1),
])
def test_forward_numbers_match_the_formula_and_conv2d(size, kernel, stride, padding, dilation):
    e = explain(size, kernel, stride, padding, dilation, in_channels=3, filters=8)
    k = (kernel,) * 2 if isinstance(kernel, int) else kernel
    s = (stride,) * 2 if isinstance(stride, int) else stride
    for i, n in enumerate(size):
        if padding == "same":
            out = math.ceil(n / s[i])
            total = max((out - 1) * s[i] + dilation * (k[i] - 1) + 1 - n, 0)
            assert e.pads[i] == (total // 2, total - total // 2)  # the odd pixel at the end
        elif padding == "valid":
            assert e.pads[i] == (0, 0)
        assert e.output[i] == direct_output(n, k[i], s[i], *e.pads[i], dilation)
    layer = L.Conv2D(8, k, strides=s, padding=padding if isinstance(padding, str) else "valid",
                     dilation_rate=dilation)
    if isinstance(padding, str):
        y = layer(np.zeros((1, *size, 3), np.float32))
        assert y.shape[1:3] == e.output
        assert e.params == layer.count_params() == (k[0] * k[1] * 3 + 1) * 8
    assert e.macs == math.prod(e.output) * 8 * k[0] * k[1] * 3
    assert e.text().splitlines()[-1] == f"output: {e.output[0]}x{e.output[1]}"


@pytest.mark.parametrize("size,stride", [((5, 5), 2), ((4, 7), 3), ((3, 3), 1)])
def test_transposed_same_outputs_input_times_stride_as_keras(size, stride):
    e = explain(size, 3, stride, "same", transpose=True, in_channels=2, filters=4)
    assert e.output == tuple(n * stride for n in size)
    y = L.Conv2DTranspose(4, 3, strides=stride, padding="same")(np.zeros((1, *size, 2)))
    assert y.shape[1:3] == e.output
    assert e.text().splitlines()[-1] == f"output: {e.output[0]}x{e.output[1]}"


def test_transposed_valid_matches_the_layer():
    e = explain((4, 6), (3, 2), 2, "valid", transpose=True)
    y = L.Conv2DTranspose(1, (3, 2), strides=2)(np.zeros((1, 4, 6, 1)))
    assert y.shape[1:3] == e.output == ((4 - 1) * 2 + 3, (6 - 1) * 2 + 2)


def test_seeds_worked_examples():
    # Seed 000: 4x4 input, 3x3 filter, padding 1, stride 1 -> 4x4; SAME ceil(13/5) = 3.
    assert explain((4, 4), 3, 1, 1).output == (4, 4)
    assert explain(13, 6, 5, "same").output == (3,)
    # Seed 001: (5 - 3 + 1) = 3 and (5 + 2(1) - 3 + 1) = 5; flower 427x640 -> same.
    assert explain((5, 5), 3).output == (3, 3)
    assert explain((5, 5), 3, padding=1).output == (5, 5)
    assert explain((427, 640), 3, padding="same").output == (427, 640)
    # Seed 003: (k * k * C_in + 1) * C_out parameters.
    assert explain((32, 32), 5, in_channels=3, filters=6).params == (5 * 5 * 3 + 1) * 6
    # Seed 004: (4, 4) with a (3, 3) kernel -> (2, 2); corners, edges and centres join
    # 1, 2 and 4 windows, and 4, 6 and 9 with one pixel of padding.
    e = explain((4, 4), 3)
    assert e.output == (2, 2)
    assert (e.coverage[0][0], e.coverage[0][1], e.coverage[1][1]) == (1, 2, 4)
    e = explain((4, 4), 3, padding="same")
    assert (e.coverage[0][0], e.coverage[0][1], e.coverage[1][1]) == (4, 6, 9)


def test_impossible_and_bad_arguments():
    with pytest.raises(ValueError, match="impossible convolution along H"):
        explain((2, 5), 3)
    with pytest.raises(ValueError, match="Expected both in_channels and filters"):
        explain((5, 5), 3, in_channels=3)
    with pytest.raises(ValueError, match="Expected padding to be one of"):
        explain((5, 5), 3, padding="full")
    with pytest.raises(ValueError, match="Expected stride"):
        explain((5, 5), 3, stride=0)


@pytest.mark.parametrize("kwargs", [
    dict(input=(5, 5), kernel=3, stride=2, padding="same"),
    dict(input=(6, 7), kernel=(3, 2), stride=(1, 2), padding="valid", dilation=(2, 1)),
    dict(input=(3, 3), kernel=3, stride=2, padding="same", transpose=True),
])
def test_animation_frames_shade_the_window_of_each_output(kwargs):
    from dojang.viz import conv_anim

    e = explain(**kwargs)
    frames = conv_frames(e)
    assert len(frames) == min(math.prod(e.output), 100)
    step = (1, 1) if e.transpose else e.stride
    for index, frame in enumerate(frames[:6]):
        unit = divmod(index, e.output[1])
        cells = set(window_cells(e, unit))
        assert cells == {(unit[0] * step[0] + a * e.dilation[0], unit[1] * step[1] +
                          b * e.dilation[1]) for a in range(e.kernel[0])
                         for b in range(e.kernel[1])}
        for r in range(e.canvas[0]):
            for c in range(e.canvas[1]):
                top = conv_anim.MARGIN + r * (conv_anim.CELL + conv_anim.GAP)
                left = conv_anim.MARGIN + c * (conv_anim.CELL + conv_anim.GAP)
                centre = frame[top + conv_anim.CELL // 2, left + conv_anim.CELL // 2]
                shaded = int(centre.astype(int).sum()) < 440  # darkened: a kernel tap
                assert shaded == ((r, c) in cells), (unit, r, c)


def test_frames_figure_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from dojang.viz.plots import plot_frames

    frames = conv_frames(explain((4, 4), 3))
    out = plot_frames(frames[:2], ["a", "b"], tmp_path / "f.png")
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_cli_explain_prints_the_pinned_line(tmp_path, capsys):
    from dojang.cli import main

    gif = tmp_path / "conv.gif"
    assert main(["explain", "conv", "--input", "5x5", "--kernel", "3", "--padding", "same",
                 "--stride", "2", "--in-channels", "3", "--filters", "16", "--out",
                 str(gif)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "output: 3x3" in out and "params: 448" in out and "MACs: 3,888" in out
    assert any("top 1, bottom 1" in line for line in out)
    assert gif.read_bytes()[:6] == b"GIF89a"
    assert main(["explain", "conv", "--input", "15x9", "--kernel", "3", "--out",
                 str(gif)]) == 0
    assert "output: 13x7" in capsys.readouterr().out.splitlines()
    assert main(["explain", "conv", "--input", "5x5", "--kernel", "3", "--padding", "same",
                 "--stride", "2", "--transpose", "--out", str(gif)]) == 0
    assert "output: 10x10" in capsys.readouterr().out.splitlines()
    assert main(["explain", "conv", "--input", "3x3", "--kernel", "5", "--out",
                 str(gif)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "impossible convolution" in err
    assert dj.shapes.explain((5, 5), 3).output == (3, 3)
