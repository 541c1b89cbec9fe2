"""The detections' spectra drawn (:func:`plot_spectra`): each region's mean spectrum over the
background's mean and spread, the picture an analyst looks at to tell what was found."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from hsad.errors import DegenerateDataWarning, ParameterError
from hsad.outputs.figures import colours, finish, new_figure, wrapped

#: regions drawn at most: those of the highest peak scores (a legend of more is unread)
MOST_REGIONS = 8
#: the regions' line styles, in turn (the background's mean is dashed)
REGION_STYLES = ("-", ":", "-.")


def plot_spectra(ds: xr.Dataset, path=None, title: str | None = None,
                 most: int = MOST_REGIONS) -> Figure:
    """The mean spectra of the ``most`` regions of :func:`hsad.outputs.spectra.region_spectra`
    with the highest peak scores, over the background's mean ± one standard deviation.

    The x axis is the wavelength (nm) where every band has one, else the band number; the
    bands in the file's order, the lines broken where the wavelength goes back down (a
    second spectrometer), across gaps, at bad bands (``good_band`` 0) and at values missing
    in a band; a value alone between missing ones is a dot. Each region
    is labelled with its id (the polygons' and the table's), its pixels and peak score,
    and its library match and angle when the spectra were matched (``--library``).
    ``title``: a first line above the one saying which regions are drawn."""
    if "mean_spectrum" not in ds or "region" not in ds.dims:
        raise ParameterError("plot_spectra takes the spectra of region_spectra "
                             "(mean_spectrum on dims region, band)")
    if int(most) < 1:
        raise ParameterError(f"most must be at least 1, got {most!r}")
    x, xlabel = _band_axis(ds)
    keep = _good_bands(ds)
    order_x, breaks = _drawing_order(x)
    fig = new_figure(figsize=(9.0, 6.5))
    ax = fig.add_subplot()

    def drawn(values) -> np.ndarray:
        """A spectrum along the drawn axis: bad bands and gaps between bands NaN."""
        v = np.where(keep, np.asarray(values, np.float64), np.nan)[order_x]
        return np.insert(v, breaks, np.nan)

    mean, spread = drawn(ds["background_mean"].values), drawn(ds["background_std"].values)
    x = np.insert(x[order_x], breaks, np.nan)
    n_bg = int(ds.attrs.get("background_pixels", 0))
    shown = np.isfinite(mean).any()
    if shown:
        ax.fill_between(x, mean - spread, mean + spread, color="0.8", lw=0,
                        label="background ± 1 standard deviation")
        _line(ax, x, mean, color="0.25", lw=1.6, ls="--",
              label=f"background mean ({n_bg:,} pixels)")
    n = ds.sizes["region"]
    order = np.argsort(-np.nan_to_num(ds["peak_score"].values.astype(np.float64),
                                      nan=-np.inf), kind="stable")[:int(most)]
    palette = colours(order.size)
    for j, r in enumerate(order):
        spectrum = drawn(ds["mean_spectrum"].values[r])
        shown |= bool(np.isfinite(spectrum).any())
        _line(ax, x, spectrum, color=palette[j], lw=1.3,
              ls=REGION_STYLES[j % len(REGION_STYLES)], label=_region_label(ds, r))
    if not shown:
        warnings.warn("the spectra picture shows no value: every band is bad or without "
                      "data", DegenerateDataWarning, stacklevel=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_value_label(ds))
    ax.grid(alpha=0.3)
    if n or np.isfinite(mean).any():  # below the axes: over them it hides the spectra
        fig.legend(fontsize="small", loc="outside lower center", ncols=2)
    which = (f"the {order.size} of {n} regions with the highest peak scores" if n > order.size
             else f"{n} region{'s' if n != 1 else ''}")
    heading = f"mean spectra of the detections ({which})"
    ax.set_title("\n".join(wrapped(line, 7.0) for line in (title, heading) if line))
    return finish(fig, path)


def _band_axis(ds: xr.Dataset) -> tuple[np.ndarray, str]:
    """The x values of the bands, and their label: wavelengths (nm, as hsad's readers give
    them) where every band has a distinct finite one, else band numbers from 1."""
    if "wavelength" in ds.coords:
        w = np.asarray(ds["wavelength"].values, np.float64)
        if np.isfinite(w).all() and np.unique(w).size == w.size:
            return w, "wavelength (nm)"
    return np.arange(1, ds.sizes["band"] + 1, dtype=np.float64), "band number"


#: a step between neighbouring bands over this many times the median step is a gap (bands
#: left out, a water-absorption window): the lines break there
GAP_STEPS = 3.0


def _drawing_order(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bands in the file's order (reversed when the file lists them from the longest
    wavelength down), and where NaN goes (:func:`numpy.insert` positions) to break the
    lines: where the wavelength goes back down (a second spectrometer's range starting
    inside the first's: each is drawn as its own line, not a zig-zag between the two) and
    over gaps of more than :data:`GAP_STEPS` median steps."""
    order = np.arange(x.size)
    steps = np.diff(x)
    if np.count_nonzero(steps < 0) > np.count_nonzero(steps > 0):
        order, steps = order[::-1], -steps[::-1]
    rising = steps[steps > 0]
    if not rising.size:
        return order, np.flatnonzero(steps <= 0) + 1
    return order, np.flatnonzero((steps <= 0) | (steps > GAP_STEPS * np.median(rising))) + 1


def _good_bands(ds: xr.Dataset) -> np.ndarray:
    """The bands drawn: every band, less those the file marks bad (``good_band`` 0)."""
    if "good_band" in ds.coords:
        good = np.asarray(ds["good_band"].values)
        return good.astype(bool) if good.dtype == bool else np.nan_to_num(good) != 0
    return np.ones(ds.sizes["band"], dtype=bool)


def _line(ax, x: np.ndarray, y: np.ndarray, **style) -> None:
    """``y`` over ``x`` as a line, its values between two missing ones as dots: a line
    draws nothing of a point alone (one band, a good band between bad ones)."""
    ax.plot(x, y, **style)
    finite = np.isfinite(y)
    alone = finite & ~np.r_[False, finite[:-1]] & ~np.r_[finite[1:], False]
    if alone.any():
        ax.plot(x[alone], y[alone], ls="none", marker="o", ms=3.5, color=style["color"])


#: characters a legend line holds (two columns of the figure's width)
LABEL_WIDTH = 52
#: longest library name shown (the rest of it in the table)
MATCH_CHARS = 60


def _region_label(ds: xr.Dataset, r: int) -> str:
    """``region 3: 12 px, peak 154`` and, when matched, `` ≈ grass (4.1°)``, wrapped to
    :data:`LABEL_WIDTH` (a long library name is cut, the angle always kept)."""
    import textwrap

    label = (f"region {int(ds['id'].values[r])}: {int(ds['pixels'].values[r]):,} px, "
             f"peak {float(ds['peak_score'].values[r]):.4g}")
    if "match" in ds:
        name = str(ds["match"].values[r])
        name = name if len(name) <= MATCH_CHARS else name[:MATCH_CHARS - 1] + "…"
        label += f" ≈ {name} ({float(ds['match_angle'].values[r]):.1f}°)"
    return "\n".join(textwrap.wrap(label, LABEL_WIDTH, subsequent_indent="    "))


def _value_label(ds: xr.Dataset) -> str:
    """The y axis: the scene's values, in its unit where the file names one."""
    unit = str(ds.attrs.get("units") or "").strip()
    return f"value ({unit})" if unit else "value (the file's units, scale factors applied)"


__all__ = ["MOST_REGIONS", "plot_spectra"]
