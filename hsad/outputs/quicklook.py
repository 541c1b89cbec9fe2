"""The scene quicklook: an RGB composite beside the anomaly map, the mask outlined on
both, on map coordinates, with its colour bar."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from skimage.measure import block_reduce

from hsad.cube import as_cube, nodata_hits, transform_of
from hsad.cube.grid import rows_first
from hsad.errors import ParameterError
from hsad.outputs.figures import finish, new_figure, wrapped

#: Target wavelengths (nm) of the quicklook's red, green and blue channels.
RGB_WAVELENGTHS = (640.0, 550.0, 460.0)
#: Fallback band positions (share of the band range) when wavelengths are unknown.
RGB_FALLBACK = (0.75, 0.5, 0.25)
#: Largest distance (nm) between a target wavelength and the band chosen for it.
RGB_TOLERANCE = 50.0


def _composite_candidates(cube: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """The bands' wavelengths (nm, float64), and which bands a composite may take by
    wavelength: a known wavelength, and good (any band, when none is marked good)."""
    wl = np.asarray(cube["wavelength"].values, dtype=np.float64)
    good = np.asarray(cube["good_band"].values, dtype=bool)
    return wl, np.isfinite(wl) & (good if good.any() else True)


def rgb_bands(cube: xr.DataArray, rgb=None, positions=None) -> tuple[list[int], bool]:
    """Band indices for red, green and blue, and whether wavelengths chose them.

    ``positions``: three 0-based band positions, taken as they are. Otherwise the good band
    nearest each wavelength of ``rgb`` (nm; default :data:`RGB_WAVELENGTHS`). A ``rgb``
    given by the user must be matched within :data:`RGB_TOLERANCE` nm (ParameterError
    otherwise, and when the cube has no wavelengths); the default falls back to the good bands
    at :data:`RGB_FALLBACK` of their range.
    """
    n = cube.sizes["band"]
    if positions is not None:
        picks = [int(i) for i in positions]
        if len(picks) != 3 or not all(0 <= i < n for i in picks):
            raise ParameterError(f"--rgb-bands needs three band positions in 0..{n - 1}, "
                                 f"got {positions}")
        return picks, False
    targets = RGB_WAVELENGTHS if rgb is None else tuple(float(w) for w in rgb)
    if len(targets) != 3:
        raise ParameterError(f"--rgb needs three wavelengths (nm), got {rgb}")
    wl, usable = _composite_candidates(cube)
    if usable.any():
        cand = np.flatnonzero(usable)
        picks = [int(cand[np.argmin(np.abs(wl[cand] - t))]) for t in targets]
        far = [t for i, t in zip(picks, targets, strict=True) if abs(wl[i] - t) > RGB_TOLERANCE]
        if not far:
            return picks, True
        if rgb is not None:
            raise ParameterError(f"--rgb: no good band within {RGB_TOLERANCE:g} nm of "
                                 f"{', '.join(f'{t:g}' for t in far)} nm (the scene covers "
                                 f"{wl[cand].min():.0f}-{wl[cand].max():.0f} nm)")
    elif rgb is not None:
        raise ParameterError("--rgb: the scene has no wavelengths; choose bands by position "
                             "with --rgb-bands R,G,B")
    if n == 3 and not usable.any():  # three bands without wavelengths: an RGB file
        return [0, 1, 2], False
    # the good bands at RGB_FALLBACK of their range: a band marked bad (bbl) is often all
    # nodata (an EnMAP tile's water-vapour bands), and would draw an empty composite
    good = np.asarray(cube["good_band"].values, dtype=bool)
    pool = np.flatnonzero(good) if good.any() else np.arange(n)
    m = pool.size
    picks = [int(pool[int(np.floor(q * (m - 1) + 0.5))]) for q in RGB_FALLBACK]
    if m >= 3 and len(set(picks)) < 3:  # 3 or 4 bands: three of them, the longest red
        order = (pool[np.argsort(-np.where(np.isfinite(wl[pool]), wl[pool], -np.inf),
                                 kind="stable")] if usable.any() else pool[::-1])
        picks = [int(order[0]), int(order[(m - 1) // 2]), int(order[-1])]
    return picks, False


def _warn_bad_bands(cube: xr.DataArray, picks: list[int]) -> None:
    """Warn when bands chosen by position for the composite are marked bad (bbl): taken as
    asked, but often all nodata, which draws an empty panel."""
    good = np.asarray(cube["good_band"].values, dtype=bool)
    bad = sorted({i for i in picks if not good[i]})
    if bad and good.any():
        numbers = np.asarray(cube["band"].values)
        named = ", ".join(f"{int(numbers[i]) - 1}" for i in bad)
        warnings.warn(f"--rgb-bands: band{'s' * (len(bad) > 1)} {named} (0-based, as --bands "
                      f"counts) {'are' if len(bad) > 1 else 'is'} marked bad in the file "
                      "(bbl); the composite may show no data there", UserWarning,
                      stacklevel=3)


def file_positions(cube: xr.DataArray, positions) -> list[int]:
    """The command line's ``--rgb-bands``: 0-based band positions of the file, as
    ``--bands`` counts them, turned into positions in ``cube`` (the bands analysed, whose
    ``band`` coordinate numbers the file's bands from 1). A band not analysed, or not
    three of them, is a ParameterError; a band marked bad (bbl) is taken with a warning."""
    numbers = np.asarray(cube["band"].values)
    picks = [int(i) for i in positions]
    if len(picks) != 3:
        raise ParameterError(f"--rgb-bands needs three band positions, got {positions}")
    out = []
    for i in picks:
        hit = np.flatnonzero(numbers == i + 1)
        if not hit.size:
            raise ParameterError(f"--rgb-bands: band {i} of the file (0-based, as --bands "
                                 f"counts) is not among the {numbers.size} "
                                 f"band{'s' if numbers.size != 1 else ''} analysed "
                                 f"(positions {_ranges(numbers - 1)})")
        out.append(int(hit[0]))
    _warn_bad_bands(cube, out)
    return out


def _ranges(positions) -> str:
    """Sorted positions as ``--bands`` writes them: ``0:10,150:204`` (ends excluded)."""
    p = np.unique(np.asarray(positions, dtype=np.int64))
    if not p.size:
        return "none"
    breaks = np.flatnonzero(np.diff(p) != 1)
    starts, ends = np.r_[p[0], p[breaks + 1]], np.r_[p[breaks], p[-1]]
    return ",".join(f"{a}" if a == b else f"{a}:{b + 1}" for a, b in zip(starts, ends,
                                                                          strict=True))


def check_default_composite(cube: xr.DataArray, rgb=None, positions=None) -> None:
    """Warn when the default composite cannot show visible light: the scene has
    wavelengths, but no good band within :data:`RGB_TOLERANCE` nm of
    :data:`RGB_WAVELENGTHS` (a SWIR product, or visible bands left out), so the bands at
    :data:`RGB_FALLBACK` of the range stand in."""
    if rgb is not None or positions is not None:
        return
    picks, by_wavelength = rgb_bands(cube)
    wl, candidates = _composite_candidates(cube)
    usable = wl[candidates]
    if by_wavelength or not np.isfinite(usable).any():
        return
    usable = usable[np.isfinite(usable)]
    missing = [w for w in RGB_WAVELENGTHS if not (np.abs(usable - w) <= RGB_TOLERANCE).any()]
    shown = ", ".join(f"{wl[i]:.0f}" if np.isfinite(wl[i]) else f"band {i + 1}"
                      for i in picks)
    wanted = ", ".join(f"{w:g}" for w in RGB_WAVELENGTHS)
    warnings.warn(f"no good band lies within {RGB_TOLERANCE:g} nm of "
                  f"{', '.join(f'{w:g}' for w in missing)} nm (the bands analysed lie "
                  f"between {usable.min():.0f} and {usable.max():.0f} nm): the quicklook's "
                  f"composite shows {shown} nm instead of {wanted} nm; choose with --rgb",
                  UserWarning, stacklevel=2)


def _stretch(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """2–98 % percentile stretch per channel over valid pixels → RGBA (invalid: transparent)."""
    out = np.zeros((*rgb.shape[:2], 4))
    for i in range(3):
        v = rgb[..., i][valid]
        lo, hi = np.percentile(v, [2, 98]) if v.size else (0.0, 1.0)
        out[..., i] = np.clip((rgb[..., i] - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    out[..., 3] = valid
    return out


def _values(a) -> np.ndarray:
    """A map's values, rows first: a DataArray with ``x`` before ``y`` is read by name."""
    a = rows_first(a)
    return np.asarray(a.values if isinstance(a, xr.DataArray) else a)


def _extent(cube: xr.DataArray, rows: int, cols: int):
    """``imshow`` extent in map coordinates and the axis labels, for a grid with a CRS and
    no rotation or shear (south-up too: its northing then runs down the image, as its
    rows); ``None`` and pixel labels otherwise."""
    crs = cube.rio.crs
    t = transform_of(cube)
    if crs is None or t.b != 0 or t.d != 0:
        return None, ("column (pixels)", "row (pixels)")
    x0, y0 = t.c, t.f
    x1, y1 = x0 + t.a * cols, y0 + t.e * rows
    if crs.is_geographic:
        labels = ("longitude (°)", "latitude (°)")
    else:
        unit = (crs.linear_units or "").replace("metre", "m").replace("meter", "m")
        labels = (f"easting ({unit})" if unit else "easting",
                  f"northing ({unit})" if unit else "northing")
    return (x0, x1, y1, y0), (f"{labels[0]}; {crs_name(crs)}", labels[1])


def crs_name(crs) -> str:
    """A CRS as a reader knows it: ``EPSG:32633 (WGS 84 / UTM zone 33N)``, or its name."""
    import pyproj

    epsg = crs.to_epsg()
    if epsg:  # the registry's name: a file's WKT often says "unnamed"
        return f"EPSG:{epsg} ({pyproj.CRS.from_epsg(epsg).name})"
    own = pyproj.CRS.from_user_input(crs.to_wkt())
    if own.name not in ("unknown", "unnamed", ""):
        return own.name
    method = getattr(own.coordinate_operation, "method_name", None)
    datum = own.datum.name if own.datum is not None else ""
    named = f"{method} ({datum})" if method and datum else method or datum
    return named if named and named not in ("unknown", "unnamed") else crs.to_string()


def quicklook(
    cube: xr.DataArray, scores=None, truth=None, path=None, max_size: int = 1024,
    title: str | None = None, detections=None, rgb=None, rgb_positions=None,
    score_label: str | Mapping[str, str] = "anomaly score", dpi: int = 100,
) -> Figure:
    """RGB composite (2–98 % stretch) beside the anomaly map, with outlines of the
    ``detections`` mask (solid cyan) and of the ground truth (dashed white, on top), both
    with a dark edge; pixels without data in grey; a legend, a colour bar, and map
    coordinates and the CRS on the axes when the grid has a CRS and no rotation or shear
    (pixels otherwise).

    ``scores`` may also be a mapping of panel title → map (a detector's stage maps): one
    panel each, each with its own colour bar (``score_label`` then a mapping of the same
    titles, or one label for all), up to three panels a row.

    ``rgb``/``rgb_positions``: the composite's wavelengths (nm) or band positions
    (:func:`rgb_bands`). Only the three RGB bands are read, every ``step``-th pixel, so that
    the image has no more pixels than its panel draws at ``dpi`` (and a side of at most
    ``max_size``); the maps are max-pooled by the same steps, so a one-pixel anomaly stays a
    drawn pixel. The colour bar (``score_label``) is linear from the lowest score to the
    99.9th percentile.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    for name, value in (("max_size", max_size), ("dpi", dpi)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)) or not 1 <= value < np.inf:
            raise ParameterError(f"quicklook: {name} must be a number ≥ 1, got {value!r}")
    cube = as_cube(cube)
    rows, cols = cube.sizes["y"], cube.sizes["x"]
    extent, (xlabel, ylabel) = _extent(cube, rows, cols)
    if extent is None:
        extent = (-0.5, cols - 0.5, rows - 0.5, -0.5)
    aspect, stretched = strip_aspect(extent)
    size, x_labels = panel_size(extent, aspect)
    # the image's pixels at most those its panel draws (drawn_pixels)
    steps = tuple(max(1, int(np.ceil(n / min(max_size, drawn_pixels(inches, dpi)))))
                  for n, inches in ((rows, size[1]), (cols, size[0])))
    bands, by_wl = rgb_bands(cube, rgb, rgb_positions)
    sub = cube.isel(band=bands, y=slice(None, None, steps[0]), x=slice(None, None, steps[1]))
    raw = np.asarray(sub.values)
    rgb_values = raw.astype(np.float64)
    valid = np.isfinite(rgb_values).all(axis=-1)
    nodata = cube.attrs.get("nodata")
    if nodata is not None and np.isfinite(nodata):
        valid &= ~nodata_hits(raw, nodata).any(axis=-1)
    image = _stretch(np.where(valid[..., None], rgb_values, 0.0), valid)

    def pool(a):
        a = _values(a).astype(np.float64)
        if a.shape != (rows, cols):
            raise ParameterError(f"map shape {a.shape} does not match the cube's {(rows, cols)}")
        if steps == (1, 1):
            return a
        pooled = block_reduce(np.where(np.isnan(a), -np.inf, a), steps, np.max, cval=-np.inf)
        return np.where(np.isneginf(pooled), np.nan, pooled)

    def shown_extent(a):
        """The extent of a pooled array: whole step blocks, possibly past the edge."""
        x0, x1, y0, y1 = extent
        return (x0, x0 + (x1 - x0) * a.shape[1] * steps[1] / cols,
                y1 + (y0 - y1) * a.shape[0] * steps[0] / rows, y1)

    maps = {} if scores is None else (
        dict(scores) if isinstance(scores, Mapping) else {"anomaly map": scores})
    panels = 1 + len(maps)
    grid_rows = -(-panels // 3)
    grid_cols = -(-panels // grid_rows)
    fig = new_figure(figsize=(grid_cols * (size[0] + 1.4) + 0.6,
                              grid_rows * (size[1] + 1.0) + 0.4))
    ax_rgb = fig.add_subplot(grid_rows, grid_cols, 1)
    ax_rgb.imshow(image, interpolation="nearest", extent=shown_extent(image), aspect=aspect)
    wl = np.asarray(cube["wavelength"].values, dtype=np.float64)
    numbers = np.asarray(cube["band"].values)  # the file's, from 1 (as GDAL and QGIS)

    def named(i: int) -> str:  # a band by its wavelength, else by its number in the file
        return f"{wl[i]:.0f} nm" if np.isfinite(wl[i]) else f"band {numbers[i]}"

    if len(set(bands)) == 1:
        ax_rgb.set_title(wrapped(f"grey: {named(bands[0])}", size[0]), fontsize="small")
    else:
        label = ", ".join(f"{c} {named(i)}" for c, i in zip(("R", "G", "B"), bands, strict=True))
        ax_rgb.set_title(wrapped(f"RGB composite ({label})", size[0]), fontsize="small")
    axes = [ax_rgb]
    missing = not valid.all()
    for panel, (name, a_map) in enumerate(maps.items(), start=2):
        ax_map = fig.add_subplot(grid_rows, grid_cols, panel, sharex=ax_rgb, sharey=ax_rgb)
        label = score_label.get(name, name) if isinstance(score_label, Mapping) else \
            score_label
        full = _values(a_map)  # read once (a lazy map: from its file), then pooled
        finite = full[np.isfinite(full)]  # the stretch of the map itself, not of its blocks
        vmin, vmax = (finite.min(), np.percentile(finite, 99.9)) if finite.size else (0, 1)
        del finite
        smap = pool(full)
        missing |= bool(np.isnan(smap).any())  # ±inf are scores: drawn at the scale's ends
        span = abs(vmax - vmin) + abs(vmax) + 1.0  # beyond both ends, without overflow
        drawn = np.where(np.isposinf(smap), vmax + span,
                         np.where(np.isneginf(smap), vmin - span, smap))
        im = ax_map.imshow(drawn, cmap="inferno", vmin=vmin, vmax=max(vmax, vmin + 1e-12),
                           interpolation="nearest", extent=shown_extent(smap), aspect=aspect)
        blocks = (f"; each drawn pixel the highest of {steps[0]} × {steps[1]}"
                  if steps != (1, 1) else "")
        bar = fig.colorbar(im, ax=ax_map, shrink=0.85, extend="max")
        # wrapped to the bar's own length: a label longer ran into the panel above
        bar.set_label(wrapped(f"{label}; linear, lowest score to 99.9th percentile{blocks}",
                              size[1] * 0.85), fontsize="small")
        ax_map.set_title(wrapped(name, size[0]), fontsize="small")
        axes.append(ax_map)
    legend = []
    for outline, style, text in (
        (detections, dict(colors="cyan", linestyles="solid"), "detections" + (
            f" (score ≥ {detections.attrs['threshold']:.4g})"
            if "threshold" in getattr(detections, "attrs", {}) else "")),
        (truth, dict(colors="white", linestyles="dashed"), "ground truth"),
    ):  # the truth last, on top: its dashes show the detections beneath
        if outline is None:
            continue
        t = pool(outline)
        if np.nansum(t) > 0:
            _outline(axes, t, shown_extent(t), style)
        legend.append(Line2D([], [], color=style["colors"], ls=style["linestyles"], lw=1.2,
                             path_effects=[_halo()],
                             label=text if np.nansum(t) > 0 else f"{text}: none"))
    if missing:
        legend.append(Patch(facecolor=NODATA_GREY, edgecolor="0.3", label="no data"))
    for ax in axes:
        ax.set_facecolor(NODATA_GREY)  # what no image covers: pixels without data
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_xlabel(wrapped(xlabel, size[0]), fontsize="small")
        ax.tick_params(labelsize="x-small")
        ax.ticklabel_format(style="plain", useOffset=False)  # whole coordinates, no "1e6"
        if x_labels >= 2:  # as many as the drawn width holds: no overlapping eastings
            ax.xaxis.set_major_locator(MaxNLocator(nbins=x_labels))
        else:  # a narrow panel has room for one label, at its middle
            ax.set_xticks([(extent[0] + extent[1]) / 2])
        if stretched and aspect > 1:  # a wide strip drawn taller: one label on y
            ax.set_yticks([(extent[2] + extent[3]) / 2])
    ax_rgb.set_ylabel(ylabel, fontsize="small")
    if legend:
        fig.legend(handles=legend, loc="outside lower center", ncols=len(legend),
                   fontsize="small", frameon=False)
    if title or stretched:
        width = grid_cols * (size[0] + 1.4)
        fig.suptitle(wrapped(" ".join(filter(None, [title, stretched])), width),
                     fontsize=None if title else "small")
    return finish(fig, path, dpi=dpi)


#: share of a panel's inches that its axes draw at most (the rest: labels, colour bar),
#: and the inches its labels and colour bar take at least
DRAWN_SHARE, DRAWN_MARGIN = 0.85, 0.4


def drawn_pixels(inches: float, dpi: int) -> float:
    """The pixels a quicklook panel of ``inches`` draws at most at ``dpi``."""
    return max(1.0, min(DRAWN_SHARE * inches, inches - DRAWN_MARGIN) * dpi)
#: the colour of pixels without data in a quicklook (a neutral grey, apart from the maps'
#: colours and from both ends of the score map's colour scale)
NODATA_GREY = "0.55"


def _halo():
    """The dark edge drawn under outlines, visible on light and dark pixels alike."""
    import matplotlib.patheffects as effects

    return effects.withStroke(linewidth=2.6, foreground="black")


#: ``(k, most pixels)``: a mask of at most that many pixels is outlined on k × k cells
OUTLINE_SPLITS = ((4, 100_000), (2, 1_000_000))


def _outline(axes, mask: np.ndarray, where, style: dict) -> None:
    """Outlines of ``mask`` (pooled, > 0 inside) on each of ``axes``, in ``style``."""
    # a ring of outside pixels, one pixel beyond the extent: regions on the image's edge
    # get closed outlines (and contour gets two pixels each way); each pixel split into
    # k × k cells, so that the outline follows the pixels' edges (a one-pixel region is a
    # square with its corners cut by 1/(2k) pixel, not a diamond through its edges'
    # middles), k smaller on large masks (contour's time grows with the cells)
    inside = np.pad(np.nan_to_num(mask) > 0, 1)
    k = next((k for k, most in OUTLINE_SPLITS if inside.size <= most), 1)
    inside = np.kron(inside, np.ones((k, k), dtype=bool)) if k > 1 else inside
    x0, x1, y0, y1 = where
    dx, dy = (x1 - x0) / mask.shape[1], (y1 - y0) / mask.shape[0]
    padded = (x0 - dx, x1 + dx, y0 - dy, y1 + dy)
    for ax in axes:
        with warnings.catch_warnings():  # every pooled pixel inside: no line to draw
            warnings.filterwarnings("ignore", "No contour levels were found")
            lines = ax.contour(inside, levels=[0.5], linewidths=1.0, origin="upper",
                               extent=padded, **style)
        lines.set_path_effects([_halo()])


#: the longest drawn side of a quicklook panel, at most this many times its shortest
MAX_DRAWN_RATIO = 20.0


def panel_size(extent, aspect: float, longest: float = 5.0) -> tuple[tuple[float, float], int]:
    """``((width, height) in inches, x labels)`` of a quicklook panel showing ``extent``
    drawn at ``aspect``: the scene's shape, its longer side ``longest`` inches (a long
    flight line fills the figure's height instead of a sliver of a fixed-size figure; at
    least an inch each way, for the labels), and as many x labels as the drawn width holds
    (map coordinates take about an inch each; 1: one, at the middle)."""
    width, height = abs(extent[1] - extent[0]), abs(extent[3] - extent[2])
    shown = aspect * height / width  # drawn height over drawn width
    drawn = (longest / shown, longest) if shown >= 1 else (longest, longest * shown)
    return (max(drawn[0], 1.0), max(drawn[1], 1.0)), max(1, int(drawn[0]))


def strip_aspect(extent) -> tuple[float, str]:
    """``imshow`` aspect for a scene of ``extent`` (x0, x1, y0, y1), and a note when it
    is not 1: a strip longer than :data:`MAX_DRAWN_RATIO` times its width (a one-column
    scene, a spectral library stored as an image) is drawn wider, or it would be a line
    thinner than a screen pixel."""
    width, height = abs(extent[1] - extent[0]), abs(extent[3] - extent[2])
    ratio = height / width
    # stretched only by 2× or more (rounded), so that the note never says "1×"
    if ratio >= 1.5 * MAX_DRAWN_RATIO:
        aspect = MAX_DRAWN_RATIO / ratio
        return aspect, f"(drawn {1 / aspect:.0f}× wider than it is)"
    if ratio <= 1 / (1.5 * MAX_DRAWN_RATIO):
        aspect = 1 / (MAX_DRAWN_RATIO * ratio)
        return aspect, f"(drawn {aspect:.0f}× taller than it is)"
    return 1.0, ""
