"""The kernel sliding over the padded input, drawn cell by cell (after Dumoulin and Visin,
"A guide to convolution arithmetic for deep learning", 2016).

``conv_frames(explanation)`` paints each frame as an RGB array with NumPy alone: the
canvas of ``dojang.shapes.explain`` (input cells blue, zero padding white with a grey
border, the zeros a transposed convolution inserts light grey), the kernel's taps dark
over it, and the output grid to the right with the unit being computed highlighted.
``save_gif`` writes the frames as an animated GIF through Pillow.
"""

from __future__ import annotations

import itertools

import numpy as np

CELL, GAP, MARGIN = 18, 2, 10
_INPUT, _PAD, _ZERO = (96, 145, 230), (255, 255, 255), (225, 225, 225)
_TAP, _OUT, _OUT_NOW, _BORDER = (20, 45, 110), (120, 205, 190), (0, 110, 95), (160, 160, 160)


def window_cells(explanation, unit) -> list[tuple[int, int]]:
    """Canvas cells ``(row, col)`` the kernel covers for output unit ``unit = (i, j)``.

    Row ``i * step + a * dilation`` for kernel row ``a`` (and the same for columns): the
    formula of ``dojang.shapes.conv_output_length`` read cell by cell.
    """
    e = explanation
    per_axis = [[u * st + a * d for a in range(k)]
                for u, st, d, k in zip(unit, e.step, e.dilation, e.kernel)]
    return list(itertools.product(*per_axis))


def _planar(explanation):
    """The explanation as 2-d: a 1-d one gets a single row; a 3-d one is refused."""
    from dataclasses import replace

    e = explanation
    if len(e.axes) == 2:
        return e
    if len(e.axes) == 1:
        return replace(e, axes=("H", "W"), input=(1,) + e.input, kernel=(1,) + e.kernel,
                       stride=(1,) + e.stride, dilation=(1,) + e.dilation,
                       pads=((0, 0),) + e.pads, output=(1,) + e.output, canvas=(1,) + e.canvas,
                       real=((True,),) + e.real, step=(1,) + e.step)
    raise ValueError(f"the animation draws 1-d and 2-d convolutions; this one has "
                     f"{len(e.axes)} spatial dimensions")


def _paint(img, row: int, col: int, colour, x0: int = MARGIN, border=None) -> None:
    top, left = MARGIN + row * (CELL + GAP), x0 + col * (CELL + GAP)
    img[top:top + CELL, left:left + CELL] = border or colour
    if border:
        img[top + 1:top + CELL - 1, left + 1:left + CELL - 1] = colour


def conv_frames(explanation, max_frames: int = 100) -> list[np.ndarray]:
    """One RGB uint8 frame per output unit (row-major, at most ``max_frames``).

    Example:
        >>> from dojang.shapes import explain
        >>> frames = conv_frames(explain((5, 5), 3, stride=2, padding="same"))
        >>> len(frames), frames[0].dtype
        (9, dtype('uint8'))
    """
    e = _planar(explanation)
    (ch, cw), (oh, ow) = e.canvas, e.output
    out_x0 = 2 * MARGIN + cw * (CELL + GAP) + 2 * CELL
    height = 2 * MARGIN + max(ch, oh) * (CELL + GAP)
    width = out_x0 + ow * (CELL + GAP) + MARGIN
    base = np.full((height, width, 3), 255, dtype=np.uint8)
    real_h, real_w = e.real
    for r, c in itertools.product(range(ch), range(cw)):
        if real_h[r] and real_w[c]:
            _paint(base, r, c, _INPUT)
        elif e.transpose and _inside(e, r, c):
            _paint(base, r, c, _ZERO, border=_BORDER)
        else:
            _paint(base, r, c, _PAD, border=_BORDER)
    for r, c in itertools.product(range(oh), range(ow)):
        _paint(base, r, c, _OUT, x0=out_x0)
    frames = []
    for unit in itertools.islice(itertools.product(range(oh), range(ow)), max_frames):
        frame = base.copy()
        for r, c in window_cells(e, unit):  # the taps shade what lies under them
            top, left = MARGIN + r * (CELL + GAP), MARGIN + c * (CELL + GAP)
            cell = frame[top:top + CELL, left:left + CELL]
            cell[...] = (0.4 * cell + 0.6 * np.array(_TAP)).astype(np.uint8)
        _paint(frame, *unit, _OUT_NOW, x0=out_x0)
        frames.append(frame)
    return frames


def _inside(e, r: int, c: int) -> bool:
    """True for a zero inserted between input values (not the outer padding)."""
    rows = [i for i, v in enumerate(e.real[0]) if v]
    cols = [i for i, v in enumerate(e.real[1]) if v]
    return rows[0] <= r <= rows[-1] and cols[0] <= c <= cols[-1]


def save_gif(frames, path, ms_per_frame: int = 500) -> str:
    """Write ``frames`` (RGB uint8 arrays) as a looping GIF, atomically; returns the path."""
    import io

    from PIL import Image

    from dojang.fileio import atomic_write

    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=ms_per_frame, loop=0)
    atomic_write(path, buffer.getvalue())
    return str(path)
