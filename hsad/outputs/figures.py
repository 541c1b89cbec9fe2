"""The figures' common ground: an Agg figure, its atomic PNG write, text drawn as
written (no mathematics but the metric labels), missing glyphs warned of once, and the
colours, line styles and markers of several methods."""

from __future__ import annotations

import os
import warnings

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hsad.errors import ParameterError
from hsad.io.atomic import atomic_path


def new_figure(figsize=(6.0, 5.0)) -> Figure:
    """A figure attached to an Agg canvas."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> None:
    """Write ``fig`` as PNG through a temporary file renamed into place: a path not
    ending in ``.png`` is refused (ParameterError), a path that cannot be written is an
    OutputError naming it."""
    from pathlib import Path

    from hsad.errors import OutputError

    if Path(path).suffix.lower() != ".png":
        raise ParameterError(f"{path}: figures are written as PNG; give a .png file name")
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tight = {"bbox_inches": "tight", "pad_inches": 0.05} if _overflows(fig, dpi) else {}
            engine = fig.get_layout_engine()
            fig.set_layout_engine("none")  # saved as checked: laid out again, it moves
            try:
                fig.savefig(tmp, format="png", dpi=dpi, **tight)
            finally:
                fig.set_layout_engine(engine)
        _say_again(caught)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path) from None


def _overflows(fig: Figure, dpi: int) -> bool:
    """Whether a label or title of the laid-out figure reaches past its edges by more than
    a pixel (a very narrow scene's panels leave its y label no room): such a figure is
    written to the bounding box of what it draws, so that nothing is cut."""
    fig.draw_without_rendering()  # the layout, without the pixels
    box = fig.get_tightbbox()  # inches
    width, height = fig.get_size_inches()
    edge = 1.0 / dpi
    return bool(box.x0 < -edge or box.y0 < -edge or box.x1 > width + edge
                or box.y1 > height + edge)


#: the labels drawn as mathematics (P_F, P_D); any other text is drawn as written
MATH_TEXTS = frozenset({"false alarm rate $P_F$", "detection probability $P_D$", "$P_F$",
                        "$P_D$"})


#: whether the missing-glyph warning was given (once a process: a command's pictures)
_FONT_WARNED: list[bool] = []


def _say_again(caught: list) -> None:
    """The warnings of a drawing said again, each once (a layout engine warns once per
    pass), under the usual filters; those of glyphs missing from the fonts (a scene named
    in Chinese or Japanese: one per character) as one, once a command."""
    missing = {str(w.message) for w in caught if "missing from font" in str(w.message)}
    if missing and not _FONT_WARNED:
        _FONT_WARNED.append(True)
        warnings.warn("some characters of the figures' text are not in the installed fonts "
                      "and are drawn as boxes (install a font that has them, e.g. Noto Sans "
                      "CJK, for matplotlib)", UserWarning, stacklevel=4)
    said = set(missing)
    for w in caught:
        if str(w.message) not in said:
            said.add(str(w.message))
            warnings.warn(str(w.message), w.category, stacklevel=4)


def finish(fig: Figure, path, dpi: int = 100) -> Figure:
    """:func:`literal_texts`, then the PNG written when ``path`` is given."""
    literal_texts(fig)
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def literal_texts(fig: Figure) -> None:
    """Every text of ``fig`` but :data:`MATH_TEXTS` taken literally (a file named
    ``p$_^$.img`` is a title, not a broken formula) and drawable (a Latin-1 name's odd
    bytes as ``\xfc``): before any drawing, which would parse it."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        if "$" in text.get_text() and text.get_text() not in MATH_TEXTS:
            text.set_parse_math(False)
        try:  # a name that is not UTF-8 (bytes of another encoding): its odd bytes \xfc
            text.get_text().encode("utf-8")
        except UnicodeEncodeError:
            from hsad.io import printable

            text.set_text(printable(text.get_text()))


def wrapped(text: str, inches: float) -> str:
    """``text`` broken into lines that fit ``inches`` at a small font (about 13
    characters an inch), so that titles and labels of narrow panels are not cut off."""
    import textwrap

    return "\n".join(textwrap.wrap(text, max(12, int(inches * 13)))) or text


#: line styles and markers cycled through a panel's losses (with the colours)
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "v", "D", "x", "+")


def colours(n: int) -> list:
    """``n`` colours for lines or markers told apart: tab10's, or tab20's beyond ten."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
