"""AUC(D,F) against target size: targets implanted into real backgrounds.

Two background sets (``--backgrounds scenes|corpus|all``):

- ``scenes``: the real benchmark scenes. Targets go away from the scene's labelled
  anomalies, which are left out of the metric (NaN), so each row measures one target size.
  Spectra: the labelled objects of the *other* scenes and the synthetic materials of
  ``hsad.synthetic.target_materials``, both by relative band position (the scenes carry no
  wavelengths).
- ``corpus``: the image-like real files of the ENVI/GeoTIFF corpus (``CORPUS``: two EnMAP
  tiles, two AVIRIS-NG radiance chunks, an EnMAP-Box ENVI cube), read with
  ``hsad.io.open_cube``.
  No labelled anomalies: the truth is the implanted mask. Spectra: the materials, by
  wavelength, and the labelled objects of the VNIR–SWIR scenes (AVIRIS, HYDICE), by
  relative band position; ROSIS's 430–860 nm objects are left out (``VNIR_ONLY``).

One protocol for every background, fixed before any result was seen:

1. Bands: G = min(good bands, valid pixels // 10), 10 being hsad's floor of valid pixels
   per band (``MIN_PIXELS_PER_BAND``). Where G is smaller than the good bands,
   ``hsad.cube.band_binning.bin_bands`` averages adjacent good bands into G groups (bad
   bands dropped, nodata pixels NaN), and the target spectra are averaged over the same groups. A
   background with fewer than ``MIN_GROUPS`` groups is skipped.
2. Sizes: a size class runs where one target covers at most ``MAX_TARGET_FRACTION`` of the
   valid pixels; counts are ``COUNTS`` per 100×100 pixels scaled by the valid pixels (at
   least one) and by ``--density``. ``--sizes`` also takes any square ``NxN`` (e.g. 11x11):
   as many target pixels as the 7×7 class (:func:`size_count`), a seed of its own.
3. Draws: a background smaller than 100×100 is implanted ceil(10 000 / valid pixels) times
   (at most ``MAX_DRAWS``) with other seeds; AUCs are averaged over the draws, then over the
   backgrounds.

Every detector runs at its defaults, fitted on the implanted background as a user would
run it: the classic ones (``CLASSIC``) and, for each neural model, every stage it returns
(its plain score, D_spectral, D_spatial, D_SS). ``NAME@WHERE`` runs a model on part of the
backgrounds only (``fanogan@corpus,abu-urban-2``; ``scenes`` and ``corpus`` name a whole
set). The summary checks the quality issue's rule: D_SS ≥ max(D_spectral, RX) − 0.01 at
every size, over the backgrounds where the model ran.

    .venv/bin/python benchmarks/implanted_suite.py --backgrounds all \
        --models hadgan fanogan --out docs/implanted_suite.md \
        --csv docs/implanted_suite.csv --resume       # ~50 min on 2 cores
    .venv/bin/python benchmarks/implanted_suite.py --scenes abu-urban-2 --classic rx  # a try
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from hsad import datasets, detectors
from hsad.config import parse_params
from hsad.cube import good_band_mask, valid_mask
from hsad.cube.band_binning import band_groups, bin_bands
from hsad.detectors.residual_statistics import MIN_PIXELS_PER_BAND
from hsad.errors import DegenerateDataWarning, HsadError, ParameterError
from hsad.io import open_cube
from hsad.io.atomic import atomic_path
from hsad.outputs.metrics import auc_df
from hsad.synthetic import (
    SIZES,
    implant,
    object_spectra,
    resample_spectra,
    target_edge,
    target_materials,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import require_file, require_scenes  # noqa: E402

#: targets per size class at density 1 in 100×100 valid pixels (≈ 0.2–2 % of the scene)
COUNTS = {"subpixel": 20, "1x1": 20, "3x3": 8, "7x7": 3, "15x15": 1}
REFERENCE_PIXELS = 100 * 100
#: a size class runs where one target covers at most this share of the valid pixels
MAX_TARGET_FRACTION = 0.05
#: a size class runs where its targets, each with the margin implant() keeps around it,
#: cover at most this share of the valid pixels (random placements jam from about half)
MAX_COVER_FRACTION = 0.25
#: implant()'s margin between targets (its default)
MARGIN = 2
#: draws per (background, size) at most, for backgrounds smaller than REFERENCE_PIXELS
MAX_DRAWS = 5
#: a background binned into fewer band groups than this is skipped
MIN_GROUPS = 5
CLASSIC = ("rx", "lrx", "crd", "aed", "local-mean-rx", "cluster-rx", "utd", "rxd-utd")
#: corpus background name -> file in the corpus folder (its image-like real files)
CORPUS = {
    "enmap_potsdam_tile_128_0": "enmapbox/enmap_potsdam_tile_128_0.tif",
    "enmap_potsdam_tile_96_96": "enmapbox/enmap_potsdam_tile_96_96.tif",
    "ang20160910t185702_2rdn_img": "isofit/ang20160910t185702_2rdn_img",
    "cubus_gamsberg_subset": "enmapbox/cubus_gamsberg_subset",
    "ang20170323t202244_rdn_7000-7010": "isofit/ang20170323t202244_rdn_7000-7010",
}
#: sensors whose scenes cover the visible and near infrared only (left out of corpus pools)
VNIR_ONLY = ("ROSIS",)
#: what texture does to dark bands (measured on abu-urban-1, 3x3 to 15x15 targets)
UNCLIPPED = ("That variation is added unclipped, so textured targets can hold negative values "
             "where a band's target level lies below the scene's variation (1–2 % of the "
             "target values of 3x3 to 15x15 targets in abu-urban-1, down to −1141 DN, against "
             "the scene's own minimum of −50): noise as a dark band holds it, not a physical "
             "spectrum.")
#: the first caveat, with --texture
TEXTURED = ("- Targets carry texture (`--texture`): each target pixel adds the difference of a "
            "random pair of horizontally adjacent background pixels, divided by √2, so a large "
            "target varies as the scene does instead of being one spectrum. " + UNCLIPPED)
#: what the figures do not show, printed with them
CAVEATS = [
    "- Full-pixel targets (1x1 to 15x15, abundance 1) are noiseless: every pixel of one "
    "target holds the same spectrum. Statistics fitted on the implanted scene see a large "
    "target as a tight cluster: a target covering a share p of the pixels has an RX score "
    "(Mahalanobis distance²) of at most (1 − p)/p however distinct its spectrum, below the "
    "mean B (bands) of the background pixels once p exceeds about 1/B. The collapse of the "
    "RX-type maps at 7x7 and 15x15 is partly this implant model (no texture inside a "
    "target), not target size alone: `--texture` gives the targets the scene's own "
    "pixel-to-pixel variation (docs/implanted_suite_texture.md). " + UNCLIPPED,
    "- The benchmark scenes carry no wavelengths: their objects' spectra are put on another "
    "scene's or a corpus image's bands by relative band position, an approximation, and so "
    "are the synthetic materials on the scenes (on the corpus images the materials go by "
    "wavelength). On a scene's bands a spectrum is stretched over the scene's range: on "
    "pavia-center-100 (ROSIS, 430–860 nm) the VNIR–SWIR objects and materials are squeezed "
    "into the visible, their 1400 and 1900 nm water dips included.",
    "- Corpus backgrounds hold 1–2 targets per draw: each of their figures is a mean over "
    "the draws (≤ 5) of AUCs from few target pixels, so single figures move by more than "
    "on the scenes.",
]
FIELDS = ["set", "background", "size", "draw", "count", "detector", "map", "auc_df",
          "seconds", "warning"]


@dataclass
class Background:
    """A real background ready for implanting, or the reason it is skipped."""

    set: str
    name: str
    shape: tuple
    n_valid: int
    n_bands: int
    cube: xr.DataArray | None = None
    groups: int = 0
    #: (y, x) pixels targets must keep away from (labelled anomalies, nodata)
    exclude: np.ndarray | None = None
    #: (y, x) labelled anomalies, left out of the metric (scenes only)
    labelled: np.ndarray | None = None
    plan: dict = field(default_factory=dict)  # size -> (count, draws)
    skipped: dict = field(default_factory=dict)  # size (or "all") -> reason
    pool: np.ndarray | None = None


# ---- backgrounds and their plan --------------------------------------------------------
def band_count(n_valid: int, n_good: int) -> int:
    """G = min(good bands, valid pixels // MIN_PIXELS_PER_BAND)."""
    return min(n_good, n_valid // MIN_PIXELS_PER_BAND)


def size_count(size: str) -> float:
    """Targets of ``size`` at density 1 in 100×100 valid pixels: ``COUNTS`` for the standard
    classes; for another square NxN, as many pixels as the 7×7 class implants (at least one
    target)."""
    if size in COUNTS:
        return COUNTS[size]
    return max(1, round(COUNTS["7x7"] * 7**2 / target_edge(size) ** 2))


def size_seed(size: str) -> int:
    """The seed offset of a size class: its place in ``SIZES`` (0–4), or 50 + N for NxN,
    which keeps an NxN draw (each draw adds 10) off the standard classes' seeds (0–44).
    Edges 10·k apart can share a draw's seed (9x9's second draw, 19x19's first); kept, as
    the published mid-size tables were drawn so."""
    return list(SIZES).index(size) if size in SIZES else 50 + target_edge(size)


def size_plan(n_valid: int, sizes, density: float) -> tuple[dict, dict]:
    """``({size: (count, draws)}, {size: reason skipped})`` for ``n_valid`` valid pixels."""
    plan, skipped = {}, {}
    draws = min(MAX_DRAWS, max(1, math.ceil(REFERENCE_PIXELS / n_valid)))
    for size in sizes:
        area = target_edge(size) ** 2
        if area > MAX_TARGET_FRACTION * n_valid:
            skipped[size] = (f"one target ({area} px) is {area / n_valid:.0%} of the "
                             f"{n_valid} valid pixels (> {MAX_TARGET_FRACTION:.0%})")
            continue
        count = max(1, round(size_count(size) * density * n_valid / REFERENCE_PIXELS))
        cover = count * (target_edge(size) + MARGIN) ** 2
        if cover > MAX_COVER_FRACTION * n_valid:
            skipped[size] = (f"{count} targets with their {MARGIN}-pixel margins would cover "
                             f"{cover / n_valid:.0%} of the {n_valid} valid pixels "
                             f"(> {MAX_COVER_FRACTION:.0%}): a lower --density")
            continue
        plan[size] = (count, draws)
    return plan, skipped


def prepare(bg: Background, cube: xr.DataArray, sizes, density: float) -> Background:
    """Bin ``cube``'s bands by the protocol and plan the sizes (or record why not)."""
    valid = np.asarray(valid_mask(cube).values)
    n_good = int(good_band_mask(cube).sum())
    bg.n_valid, bg.n_bands = int(valid.sum()), n_good
    bg.groups = band_count(bg.n_valid, n_good)
    if bg.groups < MIN_GROUPS:
        bg.skipped["all"] = (f"{bg.n_valid} valid pixels allow {bg.groups} band groups of "
                             f"{MIN_PIXELS_PER_BAND} pixels per band (< {MIN_GROUPS})")
        return bg
    bg.cube = cube if bg.groups == n_good else bin_bands(cube, bg.groups)
    bg.exclude = ~valid if bg.labelled is None else (~valid | bg.labelled)
    bg.plan, bg.skipped = size_plan(bg.n_valid, sizes, density)
    return bg


def scene_backgrounds(names, sizes, density: float) -> list[Background]:
    """The benchmark scenes ``names`` as backgrounds, with their target pools."""
    out = []
    for name in names:
        cube, gt = datasets.load(name)
        bg = Background("scenes", name, cube.shape, 0, 0, labelled=np.asarray(gt.values, bool))
        bg = prepare(bg, cube, sizes, density)
        bg.pool = scene_pool(name, cube.sizes["band"])
        out.append(bg)
    return out


def corpus_backgrounds(folder, names, sizes, density: float,
                       with_pool: bool = True) -> list[Background]:
    """The corpus files ``names`` (keys of ``CORPUS``) as backgrounds, binned by the
    protocol; their target pools unless ``with_pool`` is False."""
    out = []
    for name in names:
        cube = open_cube(Path(folder) / CORPUS[name])
        bg = prepare(Background("corpus", name, cube.shape, 0, 0), cube, sizes, density)
        if bg.cube is not None and with_pool:
            bg.pool = corpus_pool(cube, bg.groups)
        out.append(bg)
    return out


# ---- target spectra --------------------------------------------------------------------
@functools.cache
def _objects(name: str) -> tuple[np.ndarray, str]:
    """Scene ``name``'s labelled objects (≥ 2 pixels) and its sensor."""
    cube, gt = datasets.load(name)
    return object_spectra(cube, gt.values, min_pixels=2), datasets.manifest(name)["sensor"]


def _usable(pool: np.ndarray) -> np.ndarray:
    return pool[np.isfinite(pool).all(axis=1) & (pool.mean(axis=1) > 0)]


def _materials(wavelength) -> np.ndarray:
    wl = np.linspace(400.0, 2500.0, 211)
    return resample_spectra(np.stack(list(target_materials(wl).values())), wl, wavelength)


def _by_position(spectra: np.ndarray, n_bands: int) -> np.ndarray:
    unknown = [np.nan] * spectra.shape[1]
    return resample_spectra(spectra, unknown, [np.nan] * n_bands)


def scene_pool(name: str, n_bands: int) -> np.ndarray:
    """Target spectra for scene ``name``: the other scenes' labelled objects and the
    materials, on its ``n_bands`` bands by relative position (no scene has wavelengths)."""
    pool = [_by_position(_objects(o)[0], n_bands) for o in datasets.names() if o != name]
    pool.append(_materials([np.nan] * n_bands))
    return _usable(np.concatenate(pool))


def corpus_pool(cube: xr.DataArray, groups: int) -> np.ndarray:
    """Target spectra for a corpus ``cube``: the materials by wavelength and the VNIR–SWIR
    scenes' objects by relative band position, on its good bands, averaged over the same
    ``groups`` band groups as the background."""
    wavelength = np.asarray(cube["wavelength"].values)[good_band_mask(cube)]
    pool = [_by_position(spectra, wavelength.size) for spectra, sensor in
            map(_objects, datasets.names()) if not sensor.upper().startswith(VNIR_ONLY)]
    pool.append(_materials(wavelength))
    return _usable(np.concatenate(pool) @ band_groups(wavelength.size, groups))


# ---- detectors -------------------------------------------------------------------------
def parse_models(specs) -> dict[str, set[str] | None]:
    """``["hadgan", "fanogan@corpus,abu-urban-2"]`` → ``{model: where (None = all)}``."""
    out = {}
    for spec in specs:
        name, _, where = spec.partition("@")
        out[name] = set(where.split(",")) if where else None
    return out


def runs_on(where: set[str] | None, bg: Background) -> bool:
    return where is None or bg.set in where or bg.name in where


def score_maps(name: str, cube: xr.DataArray, seed: int,
               params: dict | None = None) -> dict[str, np.ndarray]:
    """The detector's map (classic) or every 2-D stage map (neural, ``name:stage``; the
    ``score`` copy of the default output left out). ``params``: the neural models'
    hyperparameters other than their defaults (``--params``)."""
    if name in CLASSIC:
        return {name: np.asarray(detectors.get(name).fit_score(cube).values)}
    det = detectors.get(name, seed=seed, progress=False, device="cpu", **(params or {}))
    stages = det.fit(cube).score_stages(cube)
    return {f"{name}:{k}": np.asarray(v.values) for k, v in stages.items()
            if k != "score" and v.ndim == 2}


def timed_maps(name: str, cube, seed: int, params: dict | None = None
               ) -> tuple[dict, float, str]:
    """``(maps, seconds, warning)``: the first DegenerateDataWarning, or an error text
    (then no maps). Other warnings are shown as usual."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            maps, note = score_maps(name, cube, seed, params), ""
        except HsadError as exc:
            maps, note = {}, f"error: {exc}"
    degenerate = [w for w in caught if issubclass(w.category, DegenerateDataWarning)]
    for w in caught:
        if w not in degenerate:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if degenerate and not note:
        note = str(degenerate[0].message).splitlines()[0][:160]
    return maps, time.perf_counter() - t0, note


# ---- one background, one size, one draw --------------------------------------------------
def run_unit(bg: Background, size: str, draw: int, names, seed: int,
             texture: bool = False, params: dict | None = None) -> list[dict]:
    """Implant one draw of ``size`` targets into ``bg`` and score it with ``names``."""
    count, _ = bg.plan[size]
    im = implant(bg.cube, bg.pool, size=size, count=count, exclude=bg.exclude,
                 seed=seed * 100 + size_seed(size) + 10 * draw, texture=texture)
    rows = []
    for name in names:
        maps, seconds, note = timed_maps(name, im.cube, seed, params)
        if not maps:
            maps = {name: None}
        for key, m in maps.items():
            if m is not None and bg.labelled is not None:
                m = np.where(bg.labelled, np.nan, m)  # the scene's own anomalies: left out
            rows.append({"set": bg.set, "background": bg.name, "size": size, "draw": draw,
                         "count": count, "detector": name, "map": key,
                         "auc_df": np.nan if m is None else auc_df(m, im.implanted),
                         "seconds": round(seconds, 3), "warning": note})
    return rows


#: the first line of every CSV: the settings its numbers were made with, as JSON
SETTINGS_LINE = "# settings: "


def run_settings(args) -> dict:
    """What changes the numbers beyond the row's own keys: seed, density, texture, params."""
    return {"seed": int(args.seed), "density": float(args.density),
            "texture": bool(args.texture), "params": dict(args.params)}


def read_settings(path) -> dict | None:
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    return json.loads(first[len(SETTINGS_LINE):]) if first.startswith(SETTINGS_LINE) else None


#: the second line: the hsad code the rows were made by (``hsad.outputs.provenance.code_digest``;
#: several, comma-separated, where ``--resume-other-code`` mixed them)
CODE_LINE = "# code: "
#: in the code line, rows mixed in from a CSV that recorded no code (before 2026-12-05)
UNRECORDED = "unrecorded"


def read_codes(path) -> set[str]:
    """The code digests a CSV's rows were made by (empty: before they were recorded)."""
    with open(path, encoding="utf-8") as fh:
        for line in (fh.readline(), fh.readline()):
            if line.startswith(CODE_LINE):
                return {c.strip() for c in line[len(CODE_LINE):].split(",") if c.strip()}
    return set()


def read_rows(path) -> list[dict]:
    """The rows of a CSV; a last row cut short (an interrupted append) is dropped."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    if rows and None in rows[-1].values():
        print(f"{path}: the last row is incomplete (an interrupted run); dropped",
              file=sys.stderr)
        rows.pop()
    for r in rows:
        r["draw"], r["count"] = int(r["draw"]), int(r["count"])
        r["auc_df"], r["seconds"] = float(r["auc_df"]), float(r["seconds"])
    return rows


class RowLog:
    """The CSV, appended to unit by unit, so that ``--resume`` skips finished work.

    Its first line records ``settings``, its second the code that made its rows
    (``code``); ``--resume`` on a CSV made with other settings (or none recorded) is
    refused, lest rows of one setting be reported as another's, and so is one made by other
    code unless ``other_code`` (``--resume-other-code``) mixes them knowingly (the line then
    lists every code). Without ``--resume`` an existing CSV is refused too (``--overwrite``
    replaces it)."""

    def __init__(self, path, resume: bool, settings: dict, overwrite: bool = False,
                 code: str | None = None, other_code: bool = False):
        from hsad.outputs.provenance import code_digest

        self.path = Path(path) if path else None
        self.settings = settings
        self.codes = {code or code_digest()}
        self.rows = []
        if self.path and self.path.is_file():
            if resume:
                found = read_settings(self.path)
                if found != settings:
                    made = (f"{found}" if found else "unrecorded settings (an hsad before "
                            "2026-12-02 recorded none)")
                    raise ParameterError(f"--resume: its rows were made with {made}, not "
                                         f"{settings}; use another --csv", self.path)
                codes = read_codes(self.path)
                if codes != self.codes and not other_code:
                    made = (f"by hsad code {', '.join(sorted(codes))}" if codes else
                            "by an hsad that recorded no code digest (before 2026-12-05)")
                    raise ParameterError(
                        f"--resume: its rows were made {made}, and this is {code_digest()}: "
                        "their numbers may differ; use another --csv, or add "
                        "--resume-other-code to mix them knowingly", self.path)
                self.codes |= codes or {UNRECORDED}  # rows of unknown code: said so
                self.rows = read_rows(self.path)
            elif not overwrite:
                raise ParameterError("exists: --resume adds to it, --overwrite replaces it",
                                     self.path)
        self.done = {(r["background"], r["size"], r["draw"], r["detector"]) for r in self.rows}
        if self.path:
            with atomic_path(self.path) as tmp, open(tmp, "w", newline="",
                                                     encoding="utf-8") as fh:
                # "\r\n" as the csv module ends its rows
                fh.write(SETTINGS_LINE + json.dumps(settings, sort_keys=True) + "\r\n")
                fh.write(CODE_LINE + ", ".join(sorted(self.codes)) + "\r\n")
                writer = csv.DictWriter(fh, fieldnames=FIELDS)
                writer.writeheader()
                writer.writerows(self.rows)

    def add(self, rows: list[dict]) -> None:
        self.rows.extend(rows)
        if self.path:
            with open(self.path, "a", newline="", encoding="utf-8") as fh:
                csv.DictWriter(fh, fieldnames=FIELDS).writerows(rows)


def run(backgrounds, classic, models, seed: int, log: RowLog, texture: bool = False,
        params: dict | None = None) -> int:
    """Run every unit ``log`` lacks; the number of detector runs made."""
    ran = 0
    for bg in backgrounds:
        names = list(classic) + [m for m, where in models.items() if runs_on(where, bg)]
        for size, (_, draws) in bg.plan.items():
            for draw in range(draws):
                todo = [n for n in names if (bg.name, size, draw, n) not in log.done]
                if not todo:
                    continue
                rows = run_unit(bg, size, draw, todo, seed, texture, params)
                log.add(rows)
                ran += len(todo)
                print(f"{bg.name} {size} #{draw}: " + ", ".join(
                    f"{r['map']} {r['auc_df']:.4f}" for r in rows), flush=True)
    return ran


# ---- the summary -----------------------------------------------------------------------
def csv_link(path) -> str:
    """Markdown link to the CSV beside the summary (or a note that none was written)."""
    return f"[{Path(path).name}]({Path(path).name})" if path else "no CSV written (--csv)"



def per_background(rows) -> dict:
    """Mean AUC over the draws: ``{(set, background, size, map): auc}``."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["set"], r["background"], r["size"], r["map"]), []).append(
            r["auc_df"])
    return {k: float(np.nanmean(v)) if np.isfinite(v).any() else np.nan
            for k, v in groups.items()}


def means(table: dict, set_: str, size: str, key: str, only=None) -> tuple[float, int]:
    """Mean over the backgrounds of ``set_`` (those in ``only``, if given) and their count."""
    values = [v for (s, b, z, m), v in table.items() if s == set_ and z == size and m == key
              and (only is None or b in only) and np.isfinite(v)]
    return (float(np.mean(values)), len(values)) if values else (np.nan, 0)


def backgrounds_with(table: dict, set_: str, size: str, key: str) -> set[str]:
    return {b for (s, b, z, m) in table if s == set_ and z == size and m == key}


def _cell(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.4f}"


def size_table(table: dict, set_: str, keys, sizes) -> list[str]:
    """Mark-down rows: one per map, mean AUC(D,F) per size and the number of backgrounds
    averaged per size."""
    lines = ["| map | " + " | ".join(sizes) + " | backgrounds per size |",
             "|---" + "|---:" * len(sizes) + "|---|"]
    for key in keys:
        cells = [means(table, set_, s, key) for s in sizes]
        if not any(n for _, n in cells):
            continue
        lines.append(f"| {key} | " + " | ".join(_cell(v) for v, _ in cells) + " | "
                     + "/".join(str(n) if n else "–" for _, n in cells) + " |")
    return lines


def breaks_at(table: dict, set_: str, key: str, sizes, level: float) -> str:
    """The first full-pixel size whose mean AUC falls below ``level`` (or none)."""
    ran = [s for s in sizes if s != "subpixel" and means(table, set_, s, key)[1]]
    for s in ran:
        if means(table, set_, s, key)[0] < level:
            return s
    return f"none (to {ran[-1]})" if ran else "–"


def rule_checks(table: dict, set_: str, models, sizes) -> list[str]:
    """D_SS ≥ max(D_spectral, RX) − 0.01 per size, over the backgrounds the model ran on."""
    out = []
    for model in models:
        for s in sizes:
            only = backgrounds_with(table, set_, s, f"{model}:d_ss")
            if not only:
                continue
            dss = means(table, set_, s, f"{model}:d_ss", only)[0]
            spec = means(table, set_, s, f"{model}:d_spectral", only)[0]
            rx = means(table, set_, s, "rx", only)[0]
            best = max(spec, rx)
            gap = dss - best
            out.append(f"| {set_} | {model} | {s} | {len(only)} | {dss:.4f} | {spec:.4f} | "
                       f"{rx:.4f} | {gap:+.4f} | {'holds' if gap >= -0.01 else '**fails**'} |")
    return out


def background_lines(bgs: list[Background]) -> list[str]:
    lines = ["| set | background | rows × cols × bands | valid px | bands analysed | "
             "sizes run: targets × draws | skipped |", "|---|---|---|---:|---|---|---|"]
    for bg in bgs:
        bands = (f"{bg.groups} (all good)" if bg.groups == bg.n_bands else
                 f"{bg.n_bands} good → {bg.groups} groups")
        ran = ", ".join(f"{s}: {c} × {d}" for s, (c, d) in bg.plan.items()) or "–"
        skipped = "; ".join(f"{s}: {why}" for s, why in bg.skipped.items()) or "–"
        shape = " × ".join(map(str, bg.shape))
        lines.append(f"| {bg.set} | {bg.name} | {shape} | {bg.n_valid} | {bands} | {ran} | "
                     f"{skipped} |")
    return lines


def warning_lines(rows) -> list[str]:
    """Detector warnings and errors, counted per set, detector and first message."""
    seen: dict = {}
    for r in rows:
        if r["warning"]:
            key = (r["set"], r["detector"], r["warning"])
            seen.setdefault(key, set()).add((r["background"], r["size"], r["draw"]))
    if not seen:
        return ["None: no detector warned (DegenerateDataWarning) or failed."]
    return [f"- {s}, {d}: {len(units)} run(s): {w}" for (s, d, w), units in sorted(seen.items())]


def summary(rows, bgs, models, sizes, args, wall_s: float, ran: int) -> list[str]:
    table = per_background(rows)
    keys = list(dict.fromkeys(r["map"] for r in rows))
    sets = [s for s in ("scenes", "corpus") if any(r["set"] == s for r in rows)]
    defaults = ", ".join(f"{m}: `{detectors.get(m).output_}`" for m in models)
    units = {(r["background"], r["size"], r["draw"], r["detector"]): r["seconds"]
             for r in rows}
    compute_s = sum(units.values())
    given = ", ".join(f"{k}={v}" for k, v in getattr(args, "params", {}).items())
    settings = f" (the neural models with {given})" if given else ""
    text = ["# Implanted-target suite: AUC(D,F) against target size", "",
            "Written by `benchmarks/implanted_suite.py` (do not edit by hand); per-draw rows in "
            f"{csv_link(args.csv)}. Command: `{args.command}`.", "",
            "Targets of one size class are implanted (`hsad.synthetic.implant`, seeded) into "
            "real backgrounds; every detector is fitted on the implanted background at its "
            f"defaults{settings} and scored against the implanted mask (a scene's own "
            "labelled anomalies left out). The protocol, fixed before any result was seen, "
            "is in the script's docstring: band groups of at least "
            f"{MIN_PIXELS_PER_BAND} valid pixels per band, sizes whose one target covers at "
            f"most {MAX_TARGET_FRACTION:.0%} of the valid pixels, counts per 100×100 pixels "
            f"(density {args.density}), up to {MAX_DRAWS} draws on small backgrounds, seed "
            f"{args.seed}. Neural stages are `model:stage`; the map each model returns by "
            f"default: {defaults or '–'}.", "", "## Backgrounds", "", *background_lines(bgs), ""]
    for set_ in sets:
        text += [f"## Mean AUC(D,F) per target size: {set_}", "",
                 *size_table(table, set_, keys, sizes), ""]
    text += ["## Where each map breaks", "",
             "The first full-pixel size (1x1 upward) at which the mean AUC(D,F) falls below "
             "0.90, and below 0.5 (worse than chance).", "",
             "| map | " + " | ".join(f"{s}: < 0.90 | {s}: < 0.5" for s in sets) + " |",
             "|---" + "|---" * 2 * len(sets) + "|"]
    for key in keys:
        text.append(f"| {key} | " + " | ".join(
            f"{breaks_at(table, s, key, sizes, 0.9)} | {breaks_at(table, s, key, sizes, 0.5)}"
            for s in sets) + " |")
    text += ["", "## The D_SS rule: D_SS ≥ max(D_spectral, RX) − 0.01 at every size", "",
             "| set | model | size | backgrounds | D_SS | D_spectral | RX | D_SS − max | rule |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    text += [line for s in sets for line in rule_checks(table, s, models, sizes)]
    this = (f"this invocation ran {ran} of them in {wall_s / 60:.1f} min wall" if ran else
            "this invocation ran none: every row came from the CSV")
    text += ["", "## Warnings and errors", "", *warning_lines(rows), "", "## Caveats", "",
             *([TEXTURED, *CAVEATS[1:]] if args.texture else CAVEATS), "",
             f"Run time: {compute_s / 60:.1f} min of detector fits and scores, summed over the "
             f"{len(units)} (background, size, draw, detector) runs ({this}); 2-core machine "
             "shared with other jobs, one torch thread.", ""]
    return text


# ---- command line ----------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backgrounds", choices=("scenes", "corpus", "all"), default="scenes")
    ap.add_argument("--scenes", nargs="*", help="default: every benchmark scene")
    ap.add_argument("--corpus-files", nargs="*", choices=list(CORPUS),
                    help="default: every corpus background")
    ap.add_argument("--corpus", help="the ENVI/GeoTIFF corpus folder (default: beside the "
                    "benchmark scenes' folder)")
    ap.add_argument("--classic", nargs="*", default=list(CLASSIC), choices=list(CLASSIC))
    ap.add_argument("--models", nargs="*", default=["hadgan"],
                    help="neural models, NAME or NAME@WHERE (scenes, corpus, background names)")
    ap.add_argument("--sizes", nargs="*", default=list(SIZES), type=_size,
                    help=f"size classes ({', '.join(SIZES)}) or any square NxN, e.g. 11x11")
    ap.add_argument("--density", type=_density, default=1.0,
                    help="multiplies the target counts (> 0; a size whose targets would "
                         f"cover over {MAX_COVER_FRACTION:.0%}% of a background is skipped "
                         "there, with the reason)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--texture", action="store_true",
                    help="targets carry the scene's pixel-to-pixel variation (implant texture=)")
    ap.add_argument("--params", nargs="*", default=[], metavar="KEY=VALUE",
                    help="hyperparameters of the neural models other than their defaults "
                         "(e.g. area=225); the classic detectors keep theirs")
    ap.add_argument("--out", help="markdown file")
    ap.add_argument("--csv", help="CSV file, one row per background, size, draw and map")
    ap.add_argument("--resume", action="store_true",
                    help="keep the rows already in --csv and run only what is missing (the "
                         "CSV must have been made with the same seed, density, texture and "
                         "params)")
    ap.add_argument("--resume-other-code", action="store_true",
                    help="with --resume: keep rows made by other hsad code too (the CSV's "
                         "code line then lists each)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --csv")
    args = ap.parse_args(argv)
    try:
        args.params = parse_params(args.params)
    except ParameterError as exc:
        ap.error(str(exc))
    if problem := model_problem(parse_models(args.models)):
        ap.error(problem)
    args.sizes = list(dict.fromkeys(args.sizes))
    args.command = "python benchmarks/implanted_suite.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    return args


def load_backgrounds(args) -> list[Background]:
    bgs = []
    if args.backgrounds in ("scenes", "all"):
        bgs += scene_backgrounds(args.scenes or datasets.names(), args.sizes, args.density)
    if args.backgrounds in ("corpus", "all"):
        bgs += corpus_backgrounds(corpus_folder(args), args.corpus_files or list(CORPUS),
                                  args.sizes, args.density)
    return bgs


def corpus_folder(args) -> Path:
    return Path(args.corpus or datasets.data_dir().parent / "envi_corpus")


def check_inputs(args) -> None:
    """Exit 2 with one line unless every file the run reads is there: the scenes (every
    background's target pool holds the scenes' labelled objects) and the corpus files."""
    require_scenes()
    if args.backgrounds in ("scenes", "all") and args.scenes:
        require_scenes(args.scenes)
    if args.backgrounds in ("corpus", "all"):
        for name in args.corpus_files or list(CORPUS):
            require_file(corpus_folder(args) / CORPUS[name], f"corpus file {name}",
                         "give --corpus (the ENVI/GeoTIFF corpus folder; default "
                         "envi_corpus beside the scenes' folder)")


def _density(text: str) -> float:
    """``--density``: a finite number above 0 (0 and below had run one target a size)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}")
    return value


def _size(text: str) -> str:
    """``--sizes``: a standard size class or any square NxN, written as ``NxN`` (``07x07``
    had made a column and seed apart from ``7x7``'s)."""
    try:
        edge = target_edge(text)
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text if text in SIZES else f"{edge}x{edge}"


def model_problem(models: dict[str, set[str] | None]) -> str | None:
    """What is wrong with ``--models`` (None: nothing): a name that is no neural model, or
    a ``@WHERE`` place that is neither a set nor a background (both had run the whole suite
    for nothing)."""
    from hsad.detectors.neural import NeuralDetector

    known = detectors.available()
    places = {"scenes", "corpus", *CORPUS, *datasets.names()}
    for name, where in models.items():
        if not (name in known and issubclass(known[name], NeuralDetector)):
            neural = sorted(k for k, v in known.items() if issubclass(v, NeuralDetector))
            return f"--models: {name!r} is not a neural model (one of {', '.join(neural)})"
        if unknown := sorted((where or set()) - places):
            return (f"--models: {name}@{','.join(sorted(where))}: {unknown[0]!r} is neither "
                    "'scenes', 'corpus' nor a background's name")
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    models = parse_models(args.models)
    check_inputs(args)
    try:
        log = RowLog(args.csv, args.resume, run_settings(args), args.overwrite,
                     other_code=args.resume_other_code)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bgs = load_backgrounds(args)
    ran = run(bgs, args.classic, models, args.seed, log, args.texture, args.params)
    by_name = {bg.name: bg for bg in bgs}
    rows = [r for r in log.rows if r["background"] in by_name and r["size"] in args.sizes
            and (r["detector"] in args.classic or (r["detector"] in models and runs_on(
                models[r["detector"]], by_name[r["background"]])))]
    text = summary(rows, bgs, models, args.sizes, args, time.perf_counter() - t0, ran)
    print("\n".join(text))
    if args.out:
        with atomic_path(args.out) as tmp:
            Path(tmp).write_text("\n".join(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
