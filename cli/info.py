"""``hsad info``: what a cube file holds (format, shape, wavelengths, georeferencing, sizes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import numpy as np

from hsad.cli.options import key_option, put


def _files_of(path: Path, fmt: str) -> list[Path]:
    """The file plus its ENVI header or data file, when there is one; an EnMAP product's
    files (its folder)."""
    if fmt == "enmap":
        from hsad.io.enmap import product_files

        return product_files(path)
    files = [path]
    if fmt == "envi":
        from hsad.io.envi_files import find_data, find_header

        for other in (find_header(path), find_data(path)):
            if other is not None and Path(other) != path:
                files.append(Path(other))
    return files


def _crs_text(crs) -> str | None:
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else (crs.to_string() or crs.to_wkt())


def describe_model(path: Path) -> dict:
    """A JSON-ready summary of the model file at ``path`` (read, not loaded: no weights are
    put into networks)."""
    from hsad.io.model_archive import read_archive

    config, tensors = read_archive(path)
    params = _params_as_read(config, path)
    wl = np.asarray(config.get("wavelength") or [], dtype=float)
    known = wl[np.isfinite(wl)]
    # the flags over every band of the scene it was fitted on: a network model's
    # good_band, a statistics model's state.bands_
    good = config.get("good_band")
    if not isinstance(good, list) and "state.bands_" in tensors:
        good = tensors["state.bands_"].astype(bool).tolist()
    state = config.get("state") or {}
    return {
        "file": str(path), "format": "hsad model",
        "method": config["method"], "class": config.get("class"),
        "kind": config.get("kind"), "hsad_version": config.get("hsad_version"),
        "hsad_code": config.get("hsad_code"),
        "format_version": config.get("format_version"), "created": config.get("created"),
        "bands": len(good) if isinstance(good, list) else int(config.get("n_bands")
                                                              or wl.size),
        "good_bands": int(sum(good)) if isinstance(good, list) else None,
        "wavelength_min_nm": float(known.min()) if known.size else None,
        "wavelength_max_nm": float(known.max()) if known.size else None,
        "trained_on_pixels": config.get("n_train", state.get("n_pixels_")),
        "training_seed": config.get("training_seed"),
        "training": _training(config.get("history")),
        "networks": config.get("networks"),
        "params": params,
        # what the file holds, where an older format's meanings differ from today's
        **({"saved_params": config["params"]} if params != config["params"] else {}),
        "weights": int(sum(t.size for t in tensors.values())),
        "size_on_disk_bytes": path.stat().st_size,
    }


def _training(history) -> dict | None:
    """How a network model's training ended: the epochs each stage ran, and whether early
    stopping ended one (None for a statistics model, which has no history)."""
    if not isinstance(history, dict):
        return None
    stages = history.get("stages")
    return {"epochs_run": history.get("epochs"),
            "stage_epochs": ({name: s[1] for name, s in stages.items()
                              if isinstance(s, list) and len(s) > 1}
                             if isinstance(stages, dict) else {}),
            "stopped_early": bool(history.get("stopped_early", False)),
            "seconds": history.get("seconds")}


def _training_text(info: dict) -> str:
    """``, 12 epochs (stopped early …)``: how the training ended, where known."""
    t = info["training"]
    if not t or t["epochs_run"] is None:
        return ""
    stages = t["stage_epochs"]
    each = (f" ({', '.join(f'{n} {e}' for n, e in stages.items())})"
            if len(stages) > 1 else "")
    return (f", {t['epochs_run']} epochs{each}"
            + (", stopped early (its monitored loss had stopped improving)"
               if t["stopped_early"] else ""))


def _check_model(path: Path) -> None:
    """The checks ``detect --model`` makes (:func:`hsad.io.model_archive.load_model`), for a
    model of a method this hsad has: a file it would refuse is refused here in one line
    too. A model of a method not installed (a plugin's) is described as read."""
    from hsad import detectors
    from hsad.errors import HsadError
    from hsad.io.model_archive import load_model, read_archive

    method = read_archive(path)[0].get("method")
    try:
        detectors.get(method)
    except (HsadError, TypeError):
        return
    load_model(path, device="cpu")


def _params_as_read(config: dict, path: Path) -> dict:
    """A model file's hyperparameters with the meanings this hsad reads them in (an older
    format's upgraded, as ``load_model`` does); as saved where its detector is unknown."""
    import warnings

    from hsad import detectors
    from hsad.errors import HsadError
    from hsad.io.model_archive import effective_format

    params = config["params"]
    try:
        cls = type(detectors.get(config["method"]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # load_model says it
            return cls.upgrade_params(dict(params), effective_format(config, path))
    except (HsadError, KeyError, TypeError, ValueError):
        return params


def _model_text(info: dict) -> str:
    wl = ("unknown" if info["wavelength_min_nm"] is None else
          f"{info['wavelength_min_nm']:.1f}-{info['wavelength_max_nm']:.1f} nm")
    params = ", ".join(f"{k}={v!r}" for k, v in info["params"].items())
    lines = [
        ("file", info["file"]),
        ("format", f"hsad model, format {info['format_version']}, written by hsad "
                   f"{info['hsad_version']}"
                   + (f" (code {info['hsad_code']})" if info["hsad_code"] else "")
                   + f" on {info['created']}"),
        ("method", info["method"] + (f" ({info['kind']}: {info['class']})" if info["kind"]
                                     and info["class"] else f" ({info['class']})"
                                     if info["class"] else "")),
        ("bands", f"{info['bands']}" + (f" ({info['good_bands']} good)"
                                        if info["good_bands"] is not None else "")),
        ("wavelength", wl),
        ("trained on", ("-" if info["trained_on_pixels"] is None
                        else f"{info['trained_on_pixels']} pixels")
         + ("" if info["training_seed"] is None else f", seed {info['training_seed']}")
         + _training_text(info)),
        ("weights", f"{info['weights']} numbers"
         + (f" ({', '.join(info['networks'])})" if info["networks"] else "")),
        ("params", params + (" (as this hsad reads the file's; see --json for its "
                             "saved_params)" if "saved_params" in info else "")),
        ("size", _size(info["size_on_disk_bytes"])),
    ]
    return "\n".join(f"{k + ':':12s}{v}" for k, v in lines)


def describe(path: str | os.PathLike, key: str | None = None) -> dict:
    """A JSON-ready summary of the cube at ``path``."""
    from rasterio.crs import CRS

    from hsad.cube import good_band_mask
    from hsad.io import detect_format, open_cube
    from hsad.io.glt import glt_of
    from hsad.io.sensor_georef import ATTR as SENSOR_ATTR

    p = Path(path)
    fmt = detect_format(p)
    cube = open_cube(p, key=key)
    rows, cols, bands = cube.shape
    wl = np.asarray(cube["wavelength"].values, dtype=float)
    known = wl[np.isfinite(wl)]
    crs = cube.rio.crs
    nodata = cube.attrs.get("nodata")
    info = {
        "file": str(p),
        "format": {"envi": "ENVI", "geotiff": "GeoTIFF", "mat": "MATLAB",
                   "emit": "EMIT netCDF", "prisma": "PRISMA HDF-EOS5",
                   "neon": "NEON AOP HDF5", "enmap": "EnMAP product"}[fmt],
        "rows": rows, "cols": cols, "bands": bands,
        "dtype": str(cube.dtype),
        "interleave": cube.attrs.get("interleave"),
        "wavelength_min_nm": float(known.min()) if known.size else None,
        "wavelength_max_nm": float(known.max()) if known.size else None,
        "bands_with_wavelength": int(known.size),
        "good_bands": int(good_band_mask(cube).sum()),
        "crs": _crs_text(crs),
        "epsg": crs.to_epsg() if crs is not None else None,
        "transform": list(cube.rio.transform())[:6],
        "nodata": nodata if nodata is None or np.isfinite(nodata) else str(nodata),
        "size_on_disk_bytes": sum(f.stat().st_size for f in _files_of(p, fmt)),
        "size_in_memory_bytes": int(rows * cols * bands * cube.dtype.itemsize),
    }
    held = cube.attrs.get(SENSOR_ATTR)
    if held:
        gcp_crs = held.ground_control_points()[1]
        info["gcps"] = len(held.gcps)
        info["gcp_crs"] = _crs_text(gcp_crs) if held.gcps else None
        info["rpcs"] = held.rpcs is not None
    glt = glt_of(cube)
    if glt is not None:
        info["glt_grid"] = {"rows": glt.shape[0], "cols": glt.shape[1],
                            "crs": _crs_text(CRS.from_user_input(glt.crs)),
                            "transform": list(glt.transform)}
    if "emit_key" in cube.attrs:
        info["emit_key"] = cube.attrs["emit_key"]
    for k in ("prisma_level", "prisma_key", "enmap_level", "enmap_key", "enmap_cover",
              "units", "acquisition_start"):
        if k in cube.attrs:
            info[k] = cube.attrs[k]
    if cube.attrs.get("file_mask"):
        info["file_mask"] = cube.attrs["file_mask"]
    if fmt == "neon":
        info.update(_weather(cube))
    for k in ("mat_version", "mat_key", "gt_key"):
        if k in cube.attrs:
            info[k] = cube.attrs[k]
    if fmt == "geotiff":
        from hsad.io.window import frame_from_tags, window_from_tags
        from hsad.outputs.provenance import read_provenance

        tags = read_provenance(p)
        within = window_from_tags(tags, (rows, cols))
        if "hsad_window" in tags and within is None:
            tags["hsad_window"] += (f" (stale: this file is {cols} x {rows} pixels, cut again "
                                    "by another tool; not used)")
        elif within is not None and "hsad_frame" in tags and frame_from_tags(
                tags, within, (rows, cols)) is None:
            tags["hsad_frame"] += (" (malformed, or does not hold this window: the window "
                                   "tags are not used)")
        if tags:
            info["provenance"] = tags
    return info


def _weather(cube) -> dict:
    """``neon_weather``: the shares of a NEON scene's pixels flown under each cloud cover,
    or ``neon_weather_problem``: why they are not known; nothing without the layer."""
    from hsad.errors import HsadError
    from hsad.io.neon_weather import NO_CLASS, scene_classes, shares

    try:
        classes = scene_classes(cube)
    except HsadError as exc:
        return {"neon_weather_problem": f"not read: {exc.problem}"}
    if classes is None:
        return {}
    found = shares(classes)
    return {"neon_weather_problem": NO_CLASS} if found is None else {"neon_weather": found}


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _sensor_lines(info: dict) -> list[tuple[str, str]]:
    """The ``placed by`` line of a scene georeferenced by GCPs or RPCs."""
    parts = []
    if info.get("gcps"):
        parts.append(f"{info['gcps']} ground control points ({info['gcp_crs'] or 'no CRS'})")
    if info.get("rpcs"):
        parts.append("RPCs")
    if parts:
        return [("placed by", " and ".join(parts) + "; kept in every map written")]
    grid = info.get("glt_grid")
    if grid:
        t = grid["transform"]
        return [("placed by", f"the granule's lookup table (GLT), onto a {grid['rows']} x "
                              f"{grid['cols']} grid in {grid['crs']}, pixel {t[0]:.6g} x "
                              f"{-t[4]:.6g}; every map is written on that grid")]
    return []


def _text(info: dict) -> str:
    wl = ("unknown" if info["wavelength_min_nm"] is None else
          f"{info['wavelength_min_nm']:.1f}-{info['wavelength_max_nm']:.1f} nm "
          f"({info['bands_with_wavelength']} bands with a wavelength)")
    fmt = info["format"]
    if "mat_version" in info:
        gt = repr(info["gt_key"]) if info["gt_key"] else "none found"
        fmt += f" v{info['mat_version']} (cube {info['mat_key']!r}, ground truth {gt})"
    if "emit_key" in info:
        fmt += f" (cube {info['emit_key']!r})"
    for sensor, level_prefix in (("prisma", "L"), ("enmap", "")):  # a product's level
        if f"{sensor}_level" in info:
            fmt += (f" {level_prefix}{info[f'{sensor}_level']} ({info[f'{sensor}_key']} cube, "
                    f"{info['units']}" + (f", acquired {info['acquisition_start']}"
                                          if "acquisition_start" in info else "") + ")")
    lines = [
        ("file", info["file"]),
        ("format", fmt),
        ("shape", f"{info['rows']} x {info['cols']} x {info['bands']} (rows x cols x bands)"),
        ("dtype", info["dtype"]),
        ("interleave", info["interleave"] or "-"),
        ("wavelength", wl),
        ("good bands", f"{info['good_bands']} of {info['bands']}"),
        ("crs", info["crs"] or "none"),
        ("transform", ", ".join(f"{v:.10g}" for v in info["transform"])),
        *_sensor_lines(info),
        ("nodata", ("none" if info["nodata"] is None else f"{info['nodata']}")
         + (f" and the file's {info['file_mask']}" if "file_mask" in info else "")),
        ("size", f"{_size(info['size_on_disk_bytes'])} on disk, "
                 f"{_size(info['size_in_memory_bytes'])} in memory"),
    ]
    if info.get("enmap_cover"):
        lines.append(("flagged", ", ".join(f"{flag} {value:g} %" for flag, value
                                           in info["enmap_cover"].items())
                      + " of the swath (metadata); --exclude-quality leaves them out"))
    weather = info.get("neon_weather")
    if isinstance(weather, dict):
        lines.append(("weather", "flown under less than 10 % cloud cover: "
                      f"{weather['clear']:.3g} %, 10-50 %: {weather['partlycloudy']:.3g} %, "
                      f"more than 50 %: {weather['mostlycloudy']:.3g} % (NEON's weather "
                      "quality indicator; --exclude-quality partlycloudy,mostlycloudy "
                      "keeps the first)"))
    elif info.get("neon_weather_problem"):
        lines.append(("weather", info["neon_weather_problem"]))
    lines += [(key.removeprefix("hsad_").removeprefix("threshold_"), value)
              for key, value in info.get("provenance", {}).items()]
    return "\n".join(f"{k + ':':12s}{v}" for k, v in lines)


@click.command("info")
@click.argument("file", type=click.Path(), required=False)
@key_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--environment", is_flag=True,
              help="Instead of a file, describe the software and hardware hsad computes "
                   "with (versions, BLAS and its kernels, torch's CPU capability, threads, "
                   "GPU), for a methods section or a bug report.")
def command(file: str | None, key: str | None, as_json: bool, environment: bool) -> None:
    """Describe the cube FILE (ENVI, GeoTIFF, MAT, EMIT netCDF, PRISMA .he5, NEON AOP .h5
    or an EnMAP product): shape, wavelengths, CRS, sizes, the share of an EnMAP or NEON
    scene flagged as cloudy, and for a map hsad wrote its provenance
    (version, method, parameters, input, date); or an hsad model file: its method, bands,
    training and parameters. With --environment, the software and hardware instead."""
    from hsad.io.model_archive import is_model_file

    if environment or file is None:
        if file is not None or not environment:
            raise click.UsageError("give a FILE or --environment" if file is None else
                                   "give a FILE or --environment, not both")
        from hsad.outputs.environment import environment as described
        from hsad.outputs.environment import environment_text

        env = described()
        put(json.dumps(env, indent=2) if as_json else environment_text(env))
        return
    if Path(file).is_file() and is_model_file(file):
        _check_model(Path(file))
        try:
            info = describe_model(Path(file))
            text = json.dumps(info, indent=2) if as_json else _model_text(info)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # not load_model's
            from hsad.errors import ModelError

            raise ModelError(f"config.json holds values hsad cannot read ({exc})",
                             file) from None
        put(text)
        return
    info = describe(file, key=key)
    put(json.dumps(info, indent=2) if as_json else _text(info))
