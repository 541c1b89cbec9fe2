"""Compare hsad's ENVI header parsing and georeferencing with the field's libraries.

Over every ENVI header of the conformance corpus (``../shared/envi_corpus``, whose
``corpus.json`` records what GDAL reads from each file), field by field:

(a) the header: hsad's ``parse_header`` and SPy's ``spectral.io.envi.read_envi_header``
    (+ the ``int()`` conversions of SPy's ``gen_params``) against the corpus record
    (samples/lines/bands = GDAL's cols/rows/bands, data type, interleave, byte order,
    header offset, file type, data ignore value = GDAL's nodata), plus the lists
    (wavelength, fwhm, bbl, band names, map info) hsad and SPy both split; and whether
    ``spectral.open_image`` reads the pixels of the ``truth`` array;
(b) CRS and transform: hsad's ``georef_from_header``, rasterio/GDAL opening the data
    file, and (``--hand-written REV``) hsad's former hand-written reader at git revision
    REV, against the corpus record; the same for the generated ``map info`` /
    ``projection info`` / ``coordinate system string`` variants of
    ``tests/test_conformance_envi.py`` against GDAL opening each one live;
(c) ``projection info``: whether pyproj, given the same parameters as a PROJ string,
    builds a CRS equivalent to GDAL's (and identified with the same EPSG code).

``--fuzz N`` also runs SPy's parser over N headers drawn from the fuzz model of
``tests/test_fuzz_envi_header.py`` (the model says what each header must parse to).

    .venv/bin/python benchmarks/compare_envi_with_libraries.py [--hand-written d4fb69c]
        [--fuzz 300] [--corpus PATH]
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pyproj
import rasterio
from rasterio.crs import CRS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import require_file, require_spy  # noqa: E402

from hsad.errors import HsadError  # noqa: E402
from hsad.io.envi_georef import georef_from_header  # noqa: E402
from hsad.io.envi_header import parse_header, split_list  # noqa: E402

SCALARS = ("samples", "lines", "bands", "data type", "byte order", "header offset")


def _short(exc: BaseException, path=None) -> str:
    text = " ".join(str(exc).split())
    if path is not None:
        text = text.replace(str(path), "<file>")
    return f"{type(exc).__name__}: {text[:70]}"


# --------------------------------------------------------------------------- (a) header


def _truth_header(entry: dict) -> dict:
    """The header fields GDAL read (corpus.json), in hsad's/SPy's terms."""
    g = entry["gdal"]
    out = {k: entry[k.replace(" ", "_")] for k in
           ("data type", "byte order", "header offset", "interleave", "file type")}
    if "error" not in g:
        out.update({"samples": g["cols"], "lines": g["rows"], "bands": g["bands"],
                    "data ignore value": g["nodata"]})
    return out


def _hsad_header(path: Path) -> tuple[dict, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h = parse_header(path)
    typed = {"samples": h.samples, "lines": h.lines, "bands": h.bands,
             "data type": h.data_type, "byte order": h.byte_order,
             "header offset": h.header_offset, "interleave": h.interleave,
             "file type": h.file_type, "data ignore value": h.nodata}
    return typed, h.raw


def _spy_header(path: Path) -> tuple[dict, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import spectral.io.envi as spy_envi

        raw = spy_envi.read_envi_header(str(path))
    typed = {}
    for key in SCALARS:  # SPy's own conversion (gen_params): int(); header offset defaults 0
        typed[key] = int(raw[key]) if key in raw else (0 if key == "header offset" else None)
    typed["interleave"] = raw.get("interleave", "").strip().lower() or None
    typed["file type"] = raw.get("file type")
    div = raw.get("data ignore value")
    typed["data ignore value"] = float(div) if div is not None else None
    return typed, raw


def _lists_agree(hsad_raw: dict, spy_raw: dict) -> list[str]:
    """Keys whose list items differ between hsad's split and SPy's."""
    bad = []
    for key in ("wavelength", "fwhm", "bbl", "band names", "map info", "projection info",
                "spectra names", "class names"):
        if key not in hsad_raw and key not in spy_raw:
            continue
        spy = spy_raw.get(key)
        ours = split_list(hsad_raw.get(key, ""))
        if isinstance(spy, str):
            spy = [spy]
        if spy != ours:
            bad.append(key)
    return bad


def _spy_pixels(entry: dict, corpus: Path) -> str:
    """Does ``spectral.open_image(header)`` read the truth array?"""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import spectral

            img = spectral.open_image(str(corpus / entry["header"]))
            if "spectral library" in entry["file_type"].lower():
                got = np.asarray(img.spectra)
                want = np.fromfile(corpus / entry["file"], dtype=_dtype(entry))
                want = want.reshape(got.shape) if want.size == got.size else None
            else:
                got = np.asarray(img.load(dtype=img.dtype))
                want = _truth_pixels(entry, corpus)
    except Exception as exc:  # noqa: BLE001 - the point is to report what SPy raises
        return "cannot open: " + _short(exc)
    if want is None or got.shape != want.shape:
        return f"wrong shape {got.shape}"
    if not np.array_equal(got, want):
        return "wrong pixels" + (" (reads the gzip bytes as pixels)"
                                 if entry.get("file_compression") else "")
    return "right"


def _dtype(entry):
    from hsad.io.envi_header import DATA_TYPES
    return DATA_TYPES[entry["data_type"]].newbyteorder(">" if entry["byte_order"] else "<")


def _truth_pixels(entry: dict, corpus: Path):
    if "truth" in entry:
        return np.load(corpus / entry["truth"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(corpus / entry["file"]) as ds:
            return ds.read().transpose(1, 2, 0)


# --------------------------------------------------------------------------- (b) georef


def _same_georef(transform, crs, want_transform, want_crs) -> bool:
    if transform is None:
        transform = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    if not np.allclose(tuple(transform)[:6], tuple(want_transform)[:6], rtol=1e-9, atol=0):
        return False
    if want_crs is None or crs is None:
        return want_crs is None and crs is None
    return crs == want_crs and crs.to_epsg() == want_crs.to_epsg()


def _gdal_transform(t) -> tuple:
    """corpus.json stores rasterio's Affine order (a, b, c, d, e, f)."""
    return tuple(t)


def _open_with_rasterio(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return ds.transform, ds.crs


def _openable(header: Path, folder: Path) -> Path:
    """A copy of ``header`` GDAL opens (3 x 2 x 1 bytes, ENVI Standard, uncompressed)
    beside a 6-byte data file; the georeferencing keys are untouched."""
    text = header.read_text(encoding="latin-1")
    for key, value in (("samples", "3"), ("lines", "2"), ("bands", "1"), ("data type", "1"),
                       ("header offset", "0"), ("file type", "ENVI Standard"),
                       ("file compression", "0")):
        text = re.sub(rf"(?im)^\s*{key}\s*=.*$", f"{key} = {value}", text)
    (folder / "x.hdr").write_text(text, encoding="latin-1")
    (folder / "x.img").write_bytes(bytes(6))
    return folder / "x.img"


def _hand_written(rev: str):
    """hsad's hand-written ``envi_georef`` module as it was at git revision ``rev``."""
    try:
        src = subprocess.run(["git", "show", f"{rev}:hsad/io/envi_georef.py"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"(no hand-written reader at {rev}: {exc})")
        return None
    spec = importlib.util.spec_from_loader("hsad_envi_georef_hand_written", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(src, f"{rev}:hsad/io/envi_georef.py", "exec"), module.__dict__)  # noqa: S102
    return module


def _georef_verdict(fn, raw, path, want_t, want_c) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t, c = fn(raw, path)
    except Exception as exc:  # noqa: BLE001
        return "error: " + _short(exc)
    return "right" if _same_georef(t, c, want_t, want_c) else "WRONG"


# --------------------------------------------------------------------------- (c) pyproj

#: ENVI ``projection info`` code -> (PROJ projection, [(PROJ parameter, item index)]).
_PROJ = {
    3: ("tmerc", [("lat_0", 3), ("lon_0", 4), ("x_0", 5), ("y_0", 6), ("k_0", 7)]),
    4: ("lcc", [("lat_0", 3), ("lon_0", 4), ("x_0", 5), ("y_0", 6), ("lat_1", 7),
                ("lat_2", 8)]),
    5: ("omerc", [("lat_0", 3), ("lat_1", 4), ("lon_1", 5), ("lat_2", 6), ("lon_2", 7),
                  ("x_0", 8), ("y_0", 9), ("k_0", 10)]),
    6: ("omerc", [("lat_0", 3), ("lonc", 4), ("alpha", 5), ("x_0", 6), ("y_0", 7),
                  ("k_0", 8)]),
    7: ("stere", [("lat_0", 3), ("lon_0", 4), ("x_0", 5), ("y_0", 6), ("k_0", 7)]),
    9: ("aea", [("lat_0", 3), ("lon_0", 4), ("x_0", 5), ("y_0", 6), ("lat_1", 7),
                ("lat_2", 8)]),
    10: ("poly", [("lat_0", 3), ("lon_0", 4), ("x_0", 5), ("y_0", 6)]),
    11: ("laea", [("lat_0", 3), ("lon_0", 4), ("x_0", 5), ("y_0", 6)]),
    12: ("aeqd", [("lat_0", 3), ("lon_0", 4), ("x_0", 5), ("y_0", 6)]),
    31: ("stere", [("lat_ts", 3), ("lon_0", 4), ("x_0", 5), ("y_0", 6)]),
}


def _pyproj_verdict(raw: dict, want_crs) -> str:
    """pyproj from the ``projection info`` numbers (ellipsoid from its semi-axes)."""
    items = split_list(raw["projection info"])
    try:
        code = int(items[0])
        proj, spec = _PROJ[code]
        params = " ".join(f"+{k}={float(items[i])}" for k, i in spec)
        if code == 31:
            params += f" +lat_0={90 if float(items[3]) > 0 else -90}"
        named = [it for it in items[9:] if it.strip() and not it[0].isdigit()
                 and "=" not in it]
        crs = pyproj.CRS(f"+proj={proj} {params} +a={items[1]} +b={items[2]} +units=m "
                         "+no_defs +type=crs")
    except (KeyError, ValueError, IndexError, pyproj.exceptions.CRSError) as exc:
        return "cannot: " + _short(exc)
    if want_crs is None:
        return "GDAL has no CRS"
    gdal = pyproj.CRS(want_crs.to_wkt())
    same = crs.equals(gdal, ignore_axis_order=True)
    epsg = (crs.to_epsg(), gdal.to_epsg())
    datum = (" (datum named in the header: pyproj only has the ellipsoid)"
             if len(named) > 1 else "")
    if same and epsg[0] == epsg[1]:
        return "equivalent, same EPSG"
    return ("equivalent" if same else "NOT equivalent") + \
        (f", EPSG {epsg[0]} vs GDAL {epsg[1]}" if epsg[0] != epsg[1] else "") + datum


# --------------------------------------------------------------------------- (d) writer

_WRITES = {
    "utm33n-rotated": ("EPSG:32633", "Affine(2.5, 0, 5e5, 0, -2.5, 4.1e6) @ rotation(-24)"),
    "utm11n-south-up": ("EPSG:32611", "Affine(30, 0, 5e5, 0, 30, 4e6)"),
    "laea": ("EPSG:3035", "Affine(100, 0, 4321000, 0, -100, 3210000)"),
    "sheared": ("EPSG:32611", "Affine(1, 0.5, 0, 0, -1, 0)"),
}


def _writer_rows() -> None:
    from affine import Affine

    from hsad.cube import make_cube
    from hsad.io.envi_writer import write_envi

    print("\n(d) map info writers: what GDAL reads back from the header each one writes\n")
    print("| grid | GDAL's ENVI writer (rasterio) | hsad write_envi |")
    print("|---|---|---|")
    for name, (crs, expr) in _WRITES.items():
        transform = eval(expr, {"Affine": Affine, "rotation": Affine.rotation})  # noqa: S307
        verdicts = []
        with tempfile.TemporaryDirectory() as tmp:
            gdal_path, hsad_path = Path(tmp) / "g", Path(tmp) / "h.img"
            try:
                with rasterio.open(gdal_path, "w", driver="ENVI", width=3, height=2, count=1,
                                   dtype="uint8", crs=crs, transform=transform) as ds:
                    ds.write(np.zeros((1, 2, 3), "u1"))
                verdicts.append(_read_back(gdal_path, transform, crs))
            except Exception as exc:  # noqa: BLE001
                verdicts.append("error: " + _short(exc))
            cube = make_cube(np.zeros((2, 3, 1), "u1"), transform=transform, crs=crs)
            try:
                verdicts.append(_read_back(write_envi(cube, hsad_path), transform, crs))
            except Exception as exc:  # noqa: BLE001
                verdicts.append("refuses: " + _short(exc))
        print(f"| {name}: `{expr}` | {verdicts[0]} | {verdicts[1]} |")


def _read_back(path, transform, crs) -> str:
    t, c = _open_with_rasterio(path)
    if not np.allclose(tuple(t)[:6], tuple(transform)[:6], rtol=1e-9, atol=1e-9):
        return f"WRONG: reads back {tuple(round(v, 4) for v in tuple(t)[:6])}"
    return "right" if c == CRS.from_user_input(crs) else "WRONG CRS"


# --------------------------------------------------------------------------- fuzz


def _fuzz(n: int) -> None:
    from hypothesis import HealthCheck, given, settings
    from test_fuzz_envi_header import HEADERS, _expected

    cases = []

    @settings(max_examples=n, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(HEADERS)
    def draw(case):
        cases.append(case)

    draw()
    tally = collections.Counter()
    examples = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.hdr"
        for model, raw in cases:
            path.write_bytes(raw)
            want = _expected(model)
            try:
                hsad_ok = bool(_hsad_header(path))
            except HsadError:
                hsad_ok = False
            try:
                typed, _ = _spy_header(path)
                spy = "parsed"
            except Exception as exc:  # noqa: BLE001
                spy, typed = type(exc).__name__, None
            if want is None:
                verdict = ("invalid header: SPy also refuses (" + spy + ")" if typed is None
                           else "invalid header: SPy accepts it")
            elif typed is None:
                verdict = f"valid header: SPy raises {spy}"
            elif any(typed[k] != want[k] for k in SCALARS):
                verdict = "valid header: SPy differs on " + ", ".join(
                    k for k in SCALARS if typed[k] != want[k])
            else:
                verdict = "valid header: SPy right"
            verdict += "" if hsad_ok == (want is not None) else " [hsad disagrees with model]"
            tally[verdict] += 1
            examples.setdefault(verdict, raw[:90])
    print(f"\n(fuzz) SPy's read_envi_header + int() on {len(cases)} headers of the fuzz model")
    for verdict, count in tally.most_common():
        print(f"  {count:5d}  {verdict}   e.g. {examples[verdict]!r}")


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(os.environ.get("HSAD_DATA_DIR", REPO.parent / "shared" / "datasets"))
    ap.add_argument("--corpus", type=Path, default=default.parent / "envi_corpus")
    ap.add_argument("--hand-written", metavar="REV", default=None,
                    help="also run hsad's former hand-written georef reader (git revision)")
    ap.add_argument("--fuzz", type=int, default=0, metavar="N")
    args = ap.parse_args(argv)
    require_spy()
    corpus = args.corpus
    listing = require_file(corpus / "corpus.json", "the conformance corpus's corpus.json",
                           "give --corpus (default: envi_corpus beside $HSAD_DATA_DIR, or "
                           "../shared/envi_corpus)")
    entries = [e for e in json.loads(listing.read_text())["files"]
               if e["format"] == "ENVI"]
    old = _hand_written(args.hand_written) if args.hand_written else None
    tally = collections.Counter()

    print(f"(a) header fields vs the corpus record, {len(entries)} ENVI files\n")
    print("| case | hsad header | SPy header | lists hsad/SPy split differently | "
          "SPy open_image pixels |")
    print("|---|---|---|---|---|")
    for e in entries:
        hdr = corpus / e["header"]
        truth = _truth_header(e)
        h_typed, h_raw = _hsad_header(hdr)
        wrong = [k for k, v in truth.items() if h_typed[k] != v]
        hv = "right" if not wrong else "WRONG " + ", ".join(wrong)
        try:
            s_typed, s_raw = _spy_header(hdr)
            wrong = [k for k, v in truth.items() if s_typed[k] != v]
            sv = "right" if not wrong else "WRONG " + ", ".join(wrong)
            lists = ", ".join(_lists_agree(h_raw, s_raw)) or "-"
        except Exception as exc:  # noqa: BLE001
            sv, lists = "cannot: " + _short(exc), "-"
        px = _spy_pixels(e, corpus)
        for lib, v in (("hsad header", hv), ("SPy header", sv), ("SPy pixels", px)):
            tally[lib, v.split(":")[0].split(" ")[0]] += 1
        print(f"| {e['file']} | {hv} | {sv} | {lists} | {px} |")

    print(f"\n(b) CRS + transform vs the corpus record (GDAL), {len(entries)} ENVI files; where "
          "GDAL does not open the file, vs GDAL on a copy of its header made openable\n")
    cols = "| case | GDAL opens the file | hsad | rasterio on the file |"
    print(cols + (f" hand-written @{args.hand_written} |" if old else ""))
    print("|---|---|---|---|" + ("---|" if old else ""))
    for e in entries:
        g, hdr = e["gdal"], corpus / e["header"]
        _, raw = _hsad_header(hdr)
        if "error" in g:
            opens = "no: " + g["error"]
            try:
                _open_with_rasterio(corpus / e["file"])
                rv = "opens (corpus says it does not)"
            except Exception as exc:  # noqa: BLE001
                rv = "cannot open: " + _short(exc, corpus / e["file"])
            # the reference: GDAL on a copy of the header made openable (see _openable)
            with tempfile.TemporaryDirectory() as tmp:
                want_t, want_c = _open_with_rasterio(_openable(hdr, Path(tmp)))
        else:
            opens = "yes"
            want_t = _gdal_transform(g["transform"])
            want_c = CRS.from_wkt(g["crs_wkt"]) if g["crs_wkt"] else None
            try:
                t, c = _open_with_rasterio(corpus / e["file"])
                rv = "right" if _same_georef(t, c, want_t, want_c) else "WRONG"
            except Exception as exc:  # noqa: BLE001
                rv = "cannot open: " + _short(exc)
        hv = _georef_verdict(georef_from_header, raw, hdr, want_t, want_c)
        ov = _georef_verdict(old.georef_from_header, raw, hdr, want_t, want_c) if old else ""
        for lib, v in (("hsad georef", hv), ("rasterio georef", rv), ("hand-written", ov)):
            if v:
                tally[lib, v.split(":")[0].split(" ")[0]] += 1
        print(f"| {e['file']} | {opens} | {hv} | {rv} |" + (f" {ov} |" if old else ""))

    from test_conformance_envi import _BASE, _VARIANTS
    print(f"\n(b') generated georeferencing variants ({len(_VARIANTS)}), GDAL opening each "
          "one live is the reference\n")
    print("| variant | hsad |" + (" hand-written |" if old else "") + " pyproj (projection info) |")
    print("|---|---|" + ("---|" if old else "") + "---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(_VARIANTS):
            (Path(tmp) / "v.hdr").write_text(_BASE + _VARIANTS[name] + "\n")
            (Path(tmp) / "v.img").write_bytes(bytes(6))
            want_t, want_c = _open_with_rasterio(Path(tmp) / "v.img")
            _, raw = _hsad_header(Path(tmp) / "v.hdr")
            hv = _georef_verdict(georef_from_header, raw, None, want_t, want_c)
            ov = _georef_verdict(old.georef_from_header, raw, None, want_t, want_c) \
                if old else ""
            pv = _pyproj_verdict(raw, want_c) if "projection info" in raw else "-"
            for lib, v in (("hsad georef (variants)", hv), ("hand-written (variants)", ov),
                           ("pyproj (variants)", pv)):
                if v and v != "-":
                    tally[lib, v.split(",")[0].split(":")[0].split(" (")[0]] += 1
            print(f"| {name} | {hv} |" + (f" {ov} |" if old else "") + f" {pv} |")

    print("\n(c) pyproj from the projection info numbers, corpus files\n")
    for e in entries:
        _, raw = _hsad_header(corpus / e["header"])
        if "projection info" in raw and "error" not in e["gdal"]:
            want_c = CRS.from_wkt(e["gdal"]["crs_wkt"]) if e["gdal"]["crs_wkt"] else None
            pv = _pyproj_verdict(raw, want_c)
            tally["pyproj (corpus)", pv.split(",")[0].split(":")[0]] += 1
            print(f"  {e['file']}: {pv}")

    _writer_rows()

    print("\nSummary (cases per verdict)")
    for (lib, verdict), count in sorted(tally.items()):
        print(f"  {lib:26s} {verdict:16s} {count}")
    if args.fuzz:
        _fuzz(args.fuzz)
    hsad_wrong = sum(c for (lib, v), c in tally.items()
                     if lib.startswith("hsad") and v in ("WRONG", "error"))
    return 1 if hsad_wrong else 0


if __name__ == "__main__":
    sys.exit(main())
