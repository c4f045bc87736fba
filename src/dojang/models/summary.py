"""``summary(model)``, ``summary_text(model)``: Keras's table plus MACs and receptive fields.

A pure function of the model over ``graph.walk(model)``: one row per layer call, with the
call's symbolic shapes, the layer's parameter count, ``compute_macs`` and
``receptive_field_spec`` (nested models are followed through their own graph for the
receptive field). A model whose graph is unknown (a subclassed model not built yet, or
whose ``call`` cannot be traced) is listed layer by layer without connections.

Columns: ``Layer (type)``, ``Output Shape`` (batch axis ``None``), ``Param #`` (as
Keras), ``MACs`` (multiply-accumulates per example), ``Receptive field`` (size of the
input window one output unit sees, and the jump: input pixels between neighbouring
output units, the product of the strides so far), and for functional models
``Connected to``.
"""

from __future__ import annotations

from dojang.layers.base import format_shape
from dojang.layers.input import InputLayer
from dojang.models import graph
from dojang.shapes import ReceptiveField, receptive_field_step

_MIN_WIDTHS = (29, 26, 10, 12, 16, 16)  # Keras's 65-column layout for the first three


def readable_memory_size(nbytes: float) -> str:
    """``1334104`` -> ``'1.27 MB'`` (powers of 1024, two decimals, as Keras)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes < 1024 or unit == "TB":
            return f"{nbytes:.2f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def _initial_rf(shape):
    rank = len(shape) - 2
    if rank < 1:
        return "-"
    return ReceptiveField((1,) * rank, (1,) * rank, (0.5,) * rank)


def _combine(rfs):
    real = [r for r in rfs if isinstance(r, ReceptiveField)]
    if len(real) != len(rfs):
        for marker in ("?", "global", "-"):
            if marker in rfs:
                return marker
    if len(real) == 1:
        return real[0]
    n = len(real[0].size)
    return ReceptiveField(tuple(max(r.size[i] for r in real) for i in range(n)),
                          tuple(max(r.jump[i] for r in real) for i in range(n)), real[0].start)


def _step(layer, rf, input_shape):
    if not isinstance(rf, ReceptiveField):
        return rf
    spec = layer.receptive_field_spec(input_shape)
    if spec is None:
        return rf
    if isinstance(spec, str):
        return spec
    n = len(rf.size)
    if len(spec["kernel"]) != n:
        return "?"
    return receptive_field_step(rf, spec["kernel"], spec["stride"], spec["pad_before"],
                                spec.get("dilation"))


def _format_rf(rf) -> str:
    if not isinstance(rf, ReceptiveField):
        return rf
    jumps = set(rf.jump)
    jump = str(rf.jump[0]) if len(jumps) == 1 else "x".join(str(j) for j in rf.jump)
    return f"{'x'.join(str(s) for s in rf.size)}, jump {jump}"


def _macs(layer, in_shape, out_shape) -> str:
    try:
        return f"{layer.compute_macs(in_shape, out_shape):,}"
    except TypeError:  # a free (None) spatial size
        return "?"


def _node_macs(node) -> int | None:
    """Multiply-accumulates per example of one call (a nested model's: its calls' sum)."""
    layer = node.layer
    if isinstance(layer, InputLayer):
        return 0
    if graph.is_model(layer):
        try:
            parts = [_node_macs(n) for n in graph.walk(layer)]
        except ValueError:
            return None
        return None if None in parts else sum(parts)
    out = [t.shape for t in node.outputs]
    try:
        return layer.compute_macs(_in_shape(node), out if len(out) > 1 else out[0])
    except TypeError:  # a free (None) spatial size
        return None


def _node_rf(node, rfs: dict):
    """Receptive field of ``node``'s outputs from those of its inputs (``rfs`` by tensor id)."""
    if isinstance(node.layer, InputLayer):
        return rfs.get(id(node.outputs[0])) or _initial_rf(node.outputs[0].shape)
    prior = _combine([rfs.get(id(t), "?") for t in node.inputs])
    if graph.is_model(node.layer):  # a nested model: through its own graph
        try:
            inner = graph.walk(node.layer)
        except ValueError:
            return "?"
        inner_rfs = {id(t): prior for t in graph.model_inputs(node.layer)}
        for n in inner:
            rf = _node_rf(n, inner_rfs)
            inner_rfs.update((id(t), rf) for t in n.outputs)
        return _combine([inner_rfs.get(id(t), "?") for t in graph.model_outputs(node.layer)])
    return _step(node.layer, prior, _in_shape(node))


def _in_shape(node):
    shapes = [t.shape for t in node.inputs]
    return shapes if node.multi_input else shapes[0]


def _shape_text(shapes) -> str:
    return ", ".join(format_shape(s) for s in shapes)


def receptive_fields(model) -> list[tuple]:
    """``(node, rf)`` for each node of ``graph.walk(model)``: what one output unit sees.

    ``rf`` is a ``shapes.ReceptiveField`` (size, jump, start per spatial axis) over the
    model's input, or a marker string: ``"-"`` (no spatial axes), ``"global"`` (the whole
    input), ``"?"`` (unknown). Branches merge by the largest size and jump.

    Raises:
        ValueError: as ``graph.walk``.

    Example:
        >>> import dojang as dj
        >>> m = dj.Sequential([dj.layers.Conv2D(1, 3, input_shape=(9, 9, 1)),
        ...                    dj.layers.MaxPooling2D(2), dj.layers.Conv2D(1, 3)])
        >>> [rf.size for _, rf in receptive_fields(m)]
        [(1, 1), (3, 3), (4, 4), (8, 8)]
    """
    rfs, out = {}, []
    for node in graph.walk(model):
        rf = _node_rf(node, rfs)
        rfs.update((id(t), rf) for t in node.outputs)
        out.append((node, rf))
    return out


def _rows(model):
    """One row per layer call: name, output shape, params, MACs, RF, inbound names."""
    try:
        nodes = receptive_fields(model)
    except ValueError:  # not built yet, or a subclassed call that cannot be traced
        return _unconnected_rows(model)
    functional = graph.kind(model) == "functional"
    rows, total_macs = [], 0
    for node, rf in nodes:
        layer = node.layer
        out_shapes = [t.shape for t in node.outputs]
        if isinstance(layer, InputLayer) and not functional:
            continue
        count = _node_macs(node)
        total_macs += count or 0
        macs = "?" if count is None else f"{count:,}"
        connected = ", ".join(t.node.layer.name for t in node.inputs) if functional else ""
        rows.append([f"{layer.name} ({type(layer).__name__})", _shape_text(out_shapes),
                     f"{layer.count_params():,}", macs, _format_rf(rf), connected])
    return rows, total_macs


def _unconnected_rows(model):
    """Rows for a model whose graph is unknown: its layers, with what they recorded."""
    rows, total_macs = [], 0
    for layer in model.layers:
        shapes = layer._io_shapes
        macs = "?" if shapes is None else _macs(layer, shapes[0], shapes[1])
        if macs != "?":
            total_macs += int(macs.replace(",", ""))
        out = "?" if shapes is None else (
            _shape_text(shapes[1]) if isinstance(shapes[1], list) else format_shape(shapes[1]))
        params = f"{layer.count_params():,}" if layer.built or shapes else "0 (unbuilt)"
        rows.append([f"{layer.name} ({type(layer).__name__})", out, params, macs, "?", ""])
    return rows, total_macs


def summary_text(model, line_length: int | None = None) -> str:
    """The summary table of ``model`` as a string.

    Args:
        model: a ``Sequential``, functional or subclassed model.
        line_length: minimum total width.

    Example:
        >>> import dojang as dj
        >>> m = dj.Sequential([dj.layers.Dense(4, input_shape=(3,), name="dense")])
        >>> print(summary_text(m).splitlines()[4])
         dense (Dense)                (None, 4)                 16        12          -
    """
    rows, total_macs = _rows(model)
    headers = ["Layer (type)", "Output Shape", "Param #", "MACs", "Receptive field",
               "Connected to"]
    if not any(r[5] for r in rows):  # only functional models have connections
        headers, rows = headers[:5], [r[:5] for r in rows]
    widths = [max([_MIN_WIDTHS[i], len(h) + 2] + [len(r[i]) + 2 for r in rows])
              for i, h in enumerate(headers)]
    if line_length is not None and line_length > sum(widths) + 1:
        widths[-1] += line_length - sum(widths) - 1
    total = sum(widths) + 1

    def line(cells) -> str:
        return (" " + "".join(c.ljust(w) for c, w in zip(cells, widths))).rstrip()

    trainable = sum(w.size for w in model.trainable_weights)
    train_bytes = sum(w.size * w.dtype.itemsize for w in model.trainable_weights)
    frozen = model.non_trainable_weights
    frozen_n = sum(w.size for w in frozen)
    frozen_bytes = sum(w.size * w.dtype.itemsize for w in frozen)
    out = [f'Model: "{model.name}"', "_" * total, line(headers), "=" * total]
    out += [line(r) for r in rows]
    out += ["=" * total,
            f"Total params: {trainable + frozen_n:,} "
            f"({readable_memory_size(train_bytes + frozen_bytes)})",
            f"Trainable params: {trainable:,} ({readable_memory_size(train_bytes)})",
            f"Non-trainable params: {frozen_n:,} ({readable_memory_size(frozen_bytes)})",
            f"MACs per example: {total_macs:,}",
            "_" * total]
    return "\n".join(out)


def summary(model, line_length: int | None = None, print_fn=None,
            return_string: bool = False):
    """Print (or return) the summary table of ``model`` (``model.summary()`` calls this).

    Args:
        model: a ``Sequential``, functional or subclassed model.
        line_length: minimum total width of the table.
        print_fn: function called with the text (default ``print``).
        return_string: return the text instead of printing it.

    Returns:
        The text when ``return_string``, else None.
    """
    text = summary_text(model, line_length=line_length)
    if return_string:
        return text
    (print_fn or print)(text)
    return None
