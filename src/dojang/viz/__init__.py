"""Pictures of what a CNN learned: filter grids, feature maps, training curves.

The array builders (``filter_grid``, ``feature_map_grid``, ``feature_maps``) need only
NumPy and are what the tests check; the ``plot_*`` functions draw those arrays with
matplotlib (an optional extra) into PNG files.
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

__all__ = [
    "feature_map_grid", "feature_maps", "filter_grid", "plot_confusion_matrix",
    "korean_font_path", "plot_feature_maps", "plot_filters", "plot_history", "use_korean_font",
]
