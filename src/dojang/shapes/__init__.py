"""Shape arithmetic of convolution and pooling, in plain integers.

``geometry``: output lengths, padding, parameter counts, receptive fields and the layers'
sliding-window geometry (every module that needs a size calls these); ``explain``: the
same arithmetic explained with the numbers in (``dojang explain conv``).
"""

from dojang.shapes.explain import *  # noqa: F403
from dojang.shapes.geometry import *  # noqa: F403
