"""See inside a CNN: filters, feature maps, receptive fields, Grad-CAM, and their pictures.

Every figure is backed by a function that returns the arrays behind it (NumPy only, what
the tests check); the ``plot_*`` functions draw those arrays with matplotlib (an
optional extra) into PNG files.

- ``filter_grid``, ``feature_map_grid``, ``feature_maps``: what conv layers learned and
  what they compute on an image (``figures.py``);
- ``receptive_field``, ``receptive_field_box``: the theoretical window of an output
  unit; ``effective_receptive_field``, ``rms_radius``: the measured one (``receptive.py``);
- ``grad_cam``, ``saliency``: where a classifier looks (``gradcam.py``);
- ``find_layer``, ``layer_output``: reaching any layer of any model (``probe.py``);
- ``use_korean_font``: Hangul titles and labels in matplotlib (``fonts.py``).
"""

from dojang.viz.figures import (
    feature_map_grid,
    feature_maps,
    filter_grid,
    plot_confusion_matrix,
    plot_feature_maps,
    plot_filters,
    plot_history,
)
from dojang.viz.fonts import korean_font_path, use_korean_font
from dojang.viz.gradcam import grad_cam, resize_bilinear, saliency
from dojang.viz.probe import find_layer, layer_output
from dojang.viz.receptive import (
    effective_receptive_field,
    receptive_field,
    receptive_field_box,
    rms_radius,
    uniform_stack,
)

__all__ = [
    "effective_receptive_field", "feature_map_grid", "feature_maps", "filter_grid",
    "find_layer", "grad_cam", "korean_font_path", "layer_output", "plot_confusion_matrix",
    "plot_feature_maps", "plot_filters", "plot_history", "receptive_field",
    "receptive_field_box", "resize_bilinear", "rms_radius", "saliency", "uniform_stack",
    "use_korean_font",
]
