"""A Hangul font for matplotlib, from a package rather than from whatever the machine has.

matplotlib's default font (DejaVu Sans) has no Hangul glyphs: Korean titles and labels come
out as empty boxes. ``use_korean_font()`` registers NanumGothic from one of the places a
package puts it and makes it matplotlib's default family.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# Where a package ships NanumGothic.ttf, in order: the PyPI package koreanize-matplotlib
# (the `notebooks` and `test` extras install it), then Debian's fonts-nanum.
_FONT_FILE = "NanumGothic.ttf"
_SYSTEM_DIRS = (Path("/usr/share/fonts/truetype/nanum"),)


def _font_dirs() -> list[Path]:
    # koreanize-matplotlib is located without being imported: importing it changes
    # matplotlib's settings as a side effect.
    spec = importlib.util.find_spec("koreanize_matplotlib")
    dirs = [Path(p) / "fonts" for p in (spec.submodule_search_locations or [])] if spec else []
    return [*dirs, *_SYSTEM_DIRS]


def korean_font_path() -> Path | None:
    """The path of a NanumGothic font file shipped by a package, or None if none is installed.

    Example:
        >>> import dojang as dj
        >>> dj.viz.korean_font_path().name  # doctest: +SKIP
        'NanumGothic.ttf'
    """
    for directory in _font_dirs():
        path = directory / _FONT_FILE
        if path.is_file():
            return path
    return None


def use_korean_font() -> str:
    """Make matplotlib draw Hangul: register NanumGothic and make it the default family.

    Also draws the minus sign as ASCII '-' (NanumGothic has no U+2212 glyph).

    Returns:
        The family name now in ``matplotlib.rcParams["font.family"]``.

    Raises:
        FileNotFoundError: no package has installed the font; the message says which to install.

    Example:
        >>> import dojang as dj
        >>> dj.viz.use_korean_font()  # doctest: +SKIP
        'NanumGothic'
    """
    path = korean_font_path()
    if path is None:
        raise FileNotFoundError(
            "use_korean_font: Expected a NanumGothic font from a package. Received: none "
            "installed; run `pip install koreanize-matplotlib` (or `pip install "
            "\"dojang[notebooks]\"`), or `sudo apt-get install fonts-nanum`")
    import matplotlib
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(path))
    family = font_manager.FontProperties(fname=str(path)).get_name()
    matplotlib.rcParams["font.family"] = family
    matplotlib.rcParams["axes.unicode_minus"] = False
    return family
