"""``dojang show ...`` and ``dojang explain conv``: the seeds' pictures from the command line.

Examples::

    dojang show features runs/seed conv.png --layer conv2d_1
    dojang show filters model.dojang
    dojang show rf runs/seed --layer conv2d_1 --image shirt.png
    dojang show gradcam runs/seed shirt.png
    dojang show kernel sobel photo.jpg
    dojang explain conv --input 5x5 --kernel 3 --padding same --stride 2

MODEL is a run directory (``dojang train``'s) or a model file (``.dojang``; more formats
as ``dojang.models.load_model`` learns them). Each ``show`` writes one PNG, to ``--out``
or into the working directory, and prints its path. Bad input (a missing image, an
unknown layer, a layer without a spatial output, an image that cannot be converted, an
impossible convolution) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os


def register(sub) -> None:
    """Add the ``show`` and ``explain`` subcommands to ``dojang``'s subparsers."""
    show = sub.add_parser("show", help="draw what a model computes (PNG files)",
                          description="Draw filters, feature maps, receptive fields, "
                                      "Grad-CAM or an image kernel into a PNG file.")
    kinds = show.add_subparsers(dest="what", required=True, parser_class=type(show))

    def model_cmd(name, help_, image: bool, layer_help: str, func):
        p = kinds.add_parser(name, help=help_, description=help_)
        p.add_argument("model", metavar="MODEL", help="run directory or model file (.dojang)")
        if image:
            p.add_argument("image", help="image file (PNG or JPEG, colour or grey)")
        p.add_argument("--layer", help=layer_help)
        p.add_argument("--out", help="PNG file to write (default: in the working directory)")
        p.set_defaults(func=func)
        return p

    model_cmd("features", "feature maps of one conv layer on an image", True,
              "layer name or index (default: the first conv layer)", show_features)
    model_cmd("filters", "the filters (weights) of one conv layer", False,
              "layer name or index (default: the first conv layer)", show_filters)
    rf = model_cmd("rf", "theoretical and effective receptive field of a layer", False,
                   "layer name or index (default: the last layer with a spatial output)",
                   show_rf)
    rf.add_argument("--image", help="image file to draw the field on (default: grey)")
    rf.add_argument("--unit", type=_unit, help="ROW,COL of the output unit whose box is drawn "
                                                "(default: the centre unit)")
    for name, what in (("gradcam", "Grad-CAM"), ("saliency", "gradient saliency")):
        p = model_cmd(name, f"{what} heatmap of a classifier on an image", True,
                      "conv layer name or index (default: the last Conv2D)", show_heatmap)
        p.add_argument("--class", dest="class_index", type=int,
                       help="class index to explain (default: the predicted class)")
    k = kinds.add_parser("kernel", help="apply a classic image kernel to an image",
                         description="Apply an image kernel (dojang.image.FILTERS) through "
                                     "conv2d and draw the input, kernel and result.")
    from dojang.image import FILTERS

    k.add_argument("name", choices=sorted(FILTERS))
    k.add_argument("image", help="image file (PNG or JPEG)")
    k.add_argument("--out", help="PNG file to write (default: in the working directory)")
    k.set_defaults(func=show_kernel)

    explain = sub.add_parser("explain", help="explain shape arithmetic with the numbers in",
                             description="Explain the arithmetic of a layer.")
    topics = explain.add_subparsers(dest="topic", required=True, parser_class=type(explain))
    c = topics.add_parser("conv", help="output size, padding, parameters and MACs",
                          description="Print the output-size formula with the numbers filled "
                                      "in, the padding (TensorFlow's SAME split), parameters "
                                      "and MACs, and write an animation of the kernel sliding "
                                      "over the padded input.")
    c.add_argument("model", nargs="?", metavar="MODEL",
                   help="run directory or model file: explain its layer --layer instead")
    c.add_argument("--layer", help="with MODEL: a conv or pooling layer's name or index")
    c.add_argument("--input", type=_size, help="input size: 5x5, 15x9 (HxW) or 7")
    c.add_argument("--kernel", default="3", type=_size, help="kernel size: 3 or 3x5 (default 3)")
    c.add_argument("--stride", default="1", type=_size, help="stride (default 1)")
    c.add_argument("--dilation", default="1", type=_size, help="dilation (default 1)")
    c.add_argument("--padding", default="valid", type=_padding,
                   help="valid (default), same, or an int for both sides")
    c.add_argument("--transpose", action="store_true", help="a transposed convolution")
    c.add_argument("--in-channels", type=int, help="input channels (with --filters: params)")
    c.add_argument("--filters", type=int, help="output channels (with --in-channels)")
    c.add_argument("--out", help="GIF file for the animation (default: in the working "
                                 "directory)")
    c.set_defaults(func=explain_conv)


def _size(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 5x5 or 3, got {text!r}") from None
    if not 1 <= len(values) <= 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected 1 to 3 positive sizes like 5x5, got {text!r}")
    return values


def _unit(text: str) -> tuple[int, int]:
    try:
        row, col = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROW,COL like 3,4, got {text!r}") from None
    return row, col


def _padding(text: str):
    if text.lower() in ("valid", "same"):
        return text.lower()
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected valid, same or an int, got {text!r}"
                                         ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected padding >= 0, got {text!r}")
    return value


def _out(args, default: str) -> str:
    return args.out or os.path.join(os.getcwd(), default)


def _model(source: str):
    from dojang.recipes import final_model

    return final_model(source, files=True)[1]


def _layer_arg(text):
    """A layer given on the command line: an index if it is an integer, else a name."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _model_image(model, path):
    """The image file at the model's input size and channels (its own size where the
    model takes any)."""
    from dojang.image import load
    from dojang.models import graph

    inputs = graph.model_inputs(model)
    shape = inputs[0].shape if len(inputs) == 1 else None
    if shape is None or len(shape) != 4:
        raise ValueError(f"model '{model.name}' does not take one image batch (N, H, W, C); "
                         f"its inputs are {[t.shape for t in inputs]}")
    _, h, w, c = shape
    return load(path, None if h is None or w is None else (h, w), c)


def _first_conv(model, layer):
    from dojang.viz.probe import find_layer

    if layer is not None:
        return find_layer(model, _layer_arg(layer))
    convs = [lay for lay in model.layers if getattr(lay, "kernel", None) is not None
             and lay.kernel.ndim == 4]
    if not convs:
        raise ValueError(f"model '{model.name}' has no 2-d conv layer")
    return convs[0]


def show_features(args) -> int:
    from dojang.viz.figures import plot_feature_maps
    from dojang.viz.probe import layer_output

    model = _model(args.model)
    layer = _first_conv(model, args.layer)
    image = _model_image(model, args.image)
    maps = layer_output(model, layer, image[None]).numpy()[0]
    print(plot_feature_maps([(layer.name, maps)], image, _out(args, f"features_{layer.name}"
                                                                     f".png")))
    return 0


def show_filters(args) -> int:
    from dojang.viz.figures import plot_filters

    model = _model(args.model)
    layer = _first_conv(model, args.layer)
    if getattr(layer, "kernel", None) is None or layer.kernel.ndim != 4:
        raise ValueError(f"layer {layer.name!r} has no 2-d conv filters")
    print(plot_filters(layer.kernel.numpy(), _out(args, f"filters_{layer.name}.png"),
                       title=f"{layer.name}: {layer.kernel.shape[-1]} filters"))
    return 0


def show_rf(args) -> int:
    import numpy as np

    from dojang.viz.plots import plot_receptive_field
    from dojang.viz.probe import find_layer, input_shape
    from dojang.viz.receptive import effective_receptive_field, receptive_field_box, rms_radius

    model = _model(args.model)
    layer = find_layer(model, _layer_arg(args.layer))
    image = _model_image(model, args.image) if args.image else \
        np.full(input_shape(model), 0.5, dtype=np.float32)
    erf = effective_receptive_field(model, layer.name)
    out = layer._io_shapes[1][1:3]
    if args.unit is not None and not all(0 <= u < o for u, o in zip(args.unit, out)):
        raise ValueError(f"--unit {args.unit} is outside layer {layer.name!r}'s output "
                         f"({out[0]}x{out[1]})")
    box = receptive_field_box(model, layer.name, args.unit)
    print(plot_receptive_field(image, box, erf,
                               rms_radius(erf), _out(args, f"rf_{layer.name}.png"), layer.name))
    return 0


def show_heatmap(args) -> int:
    from dojang.viz.gradcam import grad_cam, saliency
    from dojang.viz.plots import plot_heatmap

    model = _model(args.model)
    image = _model_image(model, args.image)
    if args.what == "gradcam":
        heat = grad_cam(model, image, _layer_arg(args.layer), args.class_index)
    else:
        if args.layer is not None:
            raise ValueError("saliency is taken with respect to the input; drop --layer")
        heat = saliency(model, image, args.class_index)
    print(plot_heatmap(image, heat, _out(args, f"{args.what}.png"), args.what))
    return 0


def show_kernel(args) -> int:
    from dojang.image import FILTERS, filter, load
    from dojang.viz.plots import plot_kernel

    image = load(args.image)
    print(plot_kernel(image, filter(image, args.name), FILTERS[args.name], args.name,
                      _out(args, f"kernel_{args.name}.png")))
    return 0


def explain_conv(args) -> int:
    from dojang.shapes import explain

    if args.model is not None:
        e = _explain_layer(args)
    elif args.input is None:
        raise ValueError("give --input (with --kernel, --stride, ...) or a MODEL and --layer")
    else:
        n = len(args.input)
        e = explain(args.input, _per_dim(args.kernel, n, "--kernel"), _per_dim(
            args.stride, n, "--stride"), args.padding, _per_dim(args.dilation, n, "--dilation"),
            args.transpose, args.in_channels, args.filters)
    n = len(e.input)
    print(e.text())
    if n <= 2:
        from dojang.viz.conv_anim import conv_frames, save_gif

        try:
            frames = conv_frames(e)
            path = save_gif(frames, _out(args, "conv.gif"))
        except ImportError:
            print("animation: skipped (needs Pillow: pip install 'dojang[images]')")
        else:
            print(f"animation: {path}")
    return 0


def _explain_layer(args):
    """The explanation of a model's conv or pooling layer, from its configuration."""
    from dojang.shapes import explain
    from dojang.viz.probe import find_layer

    model = _model(args.model)
    layer = find_layer(model, _layer_arg(args.layer), spatial=False) if args.layer is not None \
        else _first_conv(model, None)
    window = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
    shapes = layer._io_shapes
    if window is None or not shapes or not isinstance(shapes[0], tuple):
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) is not a convolution "
                         f"or pooling layer")
    spatial, channels = shapes[0][1:-1], shapes[0][-1]
    filters = getattr(layer, "filters", None)
    return explain(spatial, window, layer.strides, layer.padding,
                   getattr(layer, "dilation_rate", 1), "Transpose" in type(layer).__name__,
                   channels if filters else None, filters)


def _per_dim(values: tuple[int, ...], n: int, flag: str) -> tuple[int, ...]:
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"{flag} has {len(values)} sizes but --input has {n}")
    return values
