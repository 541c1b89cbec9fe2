"""A scene placed by ground control points or RPCs (not orthorectified) keeps them in every
map hsad writes, moved with a window or slice as GDAL moves them, and its polygons are
placed as gdalwarp places the raster (hsad.io.sensor_georef; docs/formats.md)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from cli_helpers import run_cli
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.rpc import RPC
from rasterio.transform import GCPTransformer, RPCTransformer

from hsad.io import open_cube
from hsad.io.envi_writer import write_envi
from hsad.io.geotiff_writer import write_geotiff

ROWS, COLS, BANDS = 60, 50, 12
#: the RPCs of GDAL's autotest envirpc.hdr (also in the shared corpus)
RPC_FIELDS = {
    "LINE_OFF": 842.94998, "SAMP_OFF": 843.05058, "LAT_OFF": 40.0193171,
    "LONG_OFF": -62.3660099, "HEIGHT_OFF": 3355.0, "LINE_SCALE": 842.95002,
    "SAMP_SCALE": 843.05058, "LAT_SCALE": 0.0332739565, "LONG_SCALE": 0.0440030997,
    "HEIGHT_SCALE": 3455.0,
    "LINE_NUM_COEFF": [0.0127561752, 7.86107907, -1.08337968, 0.309949865] + [0.0] * 16,
    "LINE_DEN_COEFF": [1.0, 0.240935431, -0.0697484777, -5.58459427] + [0.0] * 16,
    "SAMP_NUM_COEFF": [-0.00185332456, 1.1054297, 7.73882024, -0.0481747188] + [0.0] * 16,
    "SAMP_DEN_COEFF": [1.0, 0.240935431, -0.0697484777, -5.58459427] + [0.0] * 16,
}
RPCS = RPC(**{k.lower(): v for k, v in RPC_FIELDS.items()})
#: GCPs on an exact affine grid of UTM 33N (GDAL's polynomial then reproduces it exactly)
GRID = Affine(10.0, 2.0, 500_000.0, 1.5, -10.0, 4_000_000.0)


def _gcps(grid=GRID):
    corners = [(0, 0), (0, COLS), (ROWS, 0), (ROWS, COLS), (30, 20)]
    return [GroundControlPoint(row=r, col=c, x=(grid @ (c, r))[0], y=(grid @ (c, r))[1], z=0.0,
                               id=str(i)) for i, (r, c) in enumerate(corners)]


def _scene(path, gcps=True, rpcs=True, gcp_crs="EPSG:32633", **profile):
    rng = np.random.default_rng(0)
    data = rng.normal(100, 5, (BANDS, ROWS, COLS)).astype(np.float32)
    data[:, 30:33, 20:23] += 200  # one 3 x 3 anomaly
    data[:, 10, 40] += 300  # and one pixel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rasterio: "no geotransform" before the GCPs are set
        with rasterio.open(path, "w", driver="GTiff", width=COLS, height=ROWS, count=BANDS,
                           dtype="float32", **profile) as dst:
            dst.write(data)
            if gcps:
                dst.gcps = (_gcps(), CRS.from_user_input(gcp_crs))
            if rpcs:
                dst.rpcs = RPCS
    return path


def _held(path):
    with rasterio.open(path) as src:
        return src.gcps, src.rpcs, src.crs, src.transform


def _ground(transformer_args, rows, cols):
    kind, arg = transformer_args
    with (GCPTransformer(arg) if kind == "gcp" else
          RPCTransformer(arg, RPC_PIXEL_ERROR_THRESHOLD=1e-9)) as t:
        return np.array(t.xy(rows, cols, offset="ul"))


def _same_model(a: RPC, b: RPC):
    for key in RPC_FIELDS:
        np.testing.assert_allclose(getattr(a, key.lower()), getattr(b, key.lower()),
                                   rtol=1e-12, atol=0)


@pytest.mark.parametrize("cog", [False, True], ids=["gtiff", "cog"])
def test_every_map_of_detect_keeps_the_gcps_and_rpcs(tmp_path, capsys, cog):
    src = _scene(tmp_path / "scene.tif")
    out, mask = tmp_path / "rx.tif", tmp_path / "mask.tif"
    code, _, err = run_cli(["detect", src, "-m", "rx", "-o", out, "--mask", mask,
                            *(["--cog"] if cog else [])], capsys)
    assert code == 0, err
    (gcps, gcp_crs), rpcs, _, _ = _held(src)
    for written in (out, mask):
        (got, got_crs), got_rpcs, crs, transform = _held(written)
        assert crs is None and transform.is_identity  # GCPs place it: no geotransform
        assert got_crs == gcp_crs
        assert [(p.row, p.col, p.x, p.y) for p in got] == [(p.row, p.col, p.x, p.y)
                                                           for p in gcps]
        _same_model(got_rpcs, rpcs)


def test_a_window_moves_them_with_its_pixels(tmp_path, capsys):
    """GDAL's own transformers put the window's pixel (r, c) where they put the scene's
    (r + 7, c + 5): for the GCPs and for the RPCs, on the CLI and in Python."""
    src = _scene(tmp_path / "scene.tif")
    out = tmp_path / "win.tif"
    code, _, err = run_cli(["detect", src, "-m", "rx", "-o", out, "--srcwin", "5", "7", "30",
                            "40"], capsys)
    assert code == 0, err
    cube = open_cube(src)
    from hsad import detectors

    py = write_geotiff(detectors.get("rx").fit_score(cube[7:47, 5:35]), tmp_path / "py.tif")
    (gcps, _), rpcs, _, _ = _held(src)
    rows, cols = np.meshgrid(np.arange(0, 41, 5.0), np.arange(0, 31, 5.0), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    for written in (out, py):
        (w_gcps, _), w_rpcs, _, _ = _held(written)
        with rasterio.open(written) as m:
            assert m.shape == (40, 30)
        np.testing.assert_allclose(_ground(("gcp", w_gcps), rows, cols),
                                   _ground(("gcp", gcps), rows + 7, cols + 5), atol=1e-6)
        np.testing.assert_allclose(_ground(("rpc", w_rpcs), rows, cols),
                                   _ground(("rpc", rpcs), rows + 7, cols + 5), atol=1e-9)


@pytest.mark.parametrize("placed_by", ["gcps", "rpcs"])
def test_polygons_of_a_window_are_not_said_to_lie_in_its_pixel_frame(tmp_path, capsys,
                                                                      placed_by):
    """A window of a GCP- or RPC-placed scene warned that its polygons "lie in this window's
    own pixel frame … give the mask back instead", though they lie on the ground (EPSG:4326
    or the GCPs' CRS) and read back as truth where they were found."""
    src = _scene(tmp_path / "scene.tif", gcps=placed_by == "gcps", rpcs=placed_by == "rpcs")
    gpkg = tmp_path / "win.gpkg"
    code, _, err = run_cli(["detect", src, "-m", "rx", "-o", tmp_path / "win.tif", "--srcwin",
                            "5", "7", "30", "40", "--polygons", gpkg, "--threshold", "100"],
                           capsys)
    assert code == 0, err
    assert "pixel frame" not in err and gpkg.is_file()


def test_a_strided_slice_scales_them_as_its_transform_does(tmp_path):
    """A step of k pixels makes pixels k times as large, centred on the pixels kept
    (hsad.cube.transform_of): rows 1, 3, 5… and columns 2, 5, 8… put the slice's corner
    (r, c) where the scene's (0.5 + 2r, 1 + 3c) lies."""
    cube = open_cube(_scene(tmp_path / "scene.tif"))
    part = cube[1::2, 2::3]
    out = write_geotiff(part[:, :, 0], tmp_path / "strided.tif")
    (gcps, _), rpcs, _, _ = _held(tmp_path / "scene.tif")
    (s_gcps, _), s_rpcs, _, _ = _held(out)
    rows, cols = np.array([0.0, 3, 10, 29.5]), np.array([0.0, 7, 2.5, 16])
    np.testing.assert_allclose(_ground(("gcp", s_gcps), rows, cols),
                               _ground(("gcp", gcps), 0.5 + 2 * rows, 1 + 3 * cols), atol=1e-6)
    np.testing.assert_allclose(_ground(("rpc", s_rpcs), rows, cols),
                               _ground(("rpc", rpcs), 0.5 + 2 * rows, 1 + 3 * cols), atol=1e-9)


def test_a_reversed_slice_carries_none(tmp_path):
    cube = open_cube(_scene(tmp_path / "scene.tif"))
    out = write_geotiff(cube[::-1, :, 0], tmp_path / "flipped.tif")
    (gcps, _), rpcs, _, _ = _held(out)
    assert gcps == [] and rpcs is None  # no window of the grid: nothing would be right


def test_envi_rpc_info_and_geo_points_are_read_as_gdal_reads_them(tmp_path, corpus_dir):
    """The corpus's envirpc.hdr (GDAL's autotest file) and an ENVI header with geo points
    (1-based pixel, line, latitude, longitude)."""
    cube = open_cube(corpus_dir / "gdal" / "envirpc.hdr")
    _same_model(cube.attrs["sensor_georef"].rpc(), RPCS)
    hdr = tmp_path / "gp.hdr"
    hdr.write_text("ENVI\nsamples = 10\nlines = 10\nbands = 1\nheader offset = 0\n"
                   "file type = ENVI Standard\ndata type = 1\ninterleave = bsq\n"
                   "byte order = 0\ngeo points = {\n 1.0, 1.0, 45.0, 10.0,\n"
                   " 10.5, 1.0, 45.0, 10.1,\n 1.0, 10.5, 44.9, 10.0}\n")
    (tmp_path / "gp").write_bytes(bytes(100))
    with rasterio.open(tmp_path / "gp") as gdal:
        wanted = [(p.row, p.col, p.x, p.y) for p in gdal.gcps[0]]
    held = open_cube(hdr).attrs["sensor_georef"]
    assert [g[:4] for g in held.gcps] == wanted == [(0, 0, 10, 45), (0, 9.5, 10.1, 45),
                                                    (9.5, 0, 10, 44.9)]
    assert CRS.from_wkt(held.gcp_crs) == CRS.from_epsg(4326)  # ENVI's are lat/lon


def test_convert_to_envi_and_back_keeps_them(tmp_path, capsys):
    """GDAL reads the written header's geo points (UTM GCPs converted to lat/lon) and rpc
    info, and hsad's GeoTIFF of that ENVI file holds the same."""
    src = _scene(tmp_path / "scene.tif")
    envi, back = tmp_path / "scene.img", tmp_path / "back.tif"
    for args in (["convert", src, envi], ["convert", envi, back]):
        code, _, err = run_cli(args, capsys)
        assert code == 0, err
    (gcps, gcp_crs), rpcs, _, _ = _held(src)
    lon, lat = rasterio.warp.transform(gcp_crs, "EPSG:4326", [p.x for p in gcps],
                                       [p.y for p in gcps])
    for path in (envi, back):
        (got, _), got_rpcs, _, _ = _held(path)
        np.testing.assert_allclose([(p.row, p.col) for p in got],
                                   [(p.row, p.col) for p in gcps])
        np.testing.assert_allclose([(p.x, p.y) for p in got], np.column_stack([lon, lat]),
                                   atol=1e-9)
        _same_model(got_rpcs, rpcs)


def test_gcps_in_a_local_crs_are_kept_in_a_geotiff_and_left_out_of_envi(tmp_path):
    cube = open_cube(_scene(tmp_path / "scene.tif", rpcs=False, gcp_crs='LOCAL_CS["x"]'))
    (gcps, crs), _, _, _ = _held(write_geotiff(cube[:, :, 0], tmp_path / "m.tif"))
    assert len(gcps) == 5 and not crs.is_geographic and not crs.is_projected
    with pytest.warns(UserWarning, match="in a local CRS; ENVI's 'geo points' hold latitude"):
        write_envi(cube, tmp_path / "out.img")
    assert "geo points" not in (tmp_path / "out.hdr").read_text()


def test_a_georeferenced_grid_keeps_its_transform_and_its_rpcs(tmp_path, capsys):
    src = _scene(tmp_path / "scene.tif", gcps=False, crs="EPSG:32633",
                 transform=Affine(30, 0, 500_000, 0, -30, 4_100_000))
    out = tmp_path / "rx.tif"
    code, _, err = run_cli(["detect", src, "-m", "rx", "-o", out], capsys)
    assert code == 0, err
    (gcps, _), rpcs, crs, transform = _held(out)
    assert crs == CRS.from_epsg(32633) and transform == Affine(30, 0, 500_000, 0, -30, 4_100_000)
    assert gcps == []
    _same_model(rpcs, RPCS)


def _vertices(path) -> np.ndarray:
    if path.suffix == ".gpkg":  # full precision (GeoJSON keeps 7 decimals of a degree)
        from pyogrio.raw import read

        return shapely.get_coordinates(shapely.from_wkb(read(path)[2]))
    feats = json.loads(path.read_text())["features"]
    return np.array([xy for f in feats for ring in f["geometry"]["coordinates"] for xy in ring])


def test_polygons_of_a_gcp_scene_lie_where_its_affine_twin_puts_them(tmp_path, capsys):
    """GCPs taken from an exact affine grid: the polygons equal those of the same scene
    georeferenced by that grid (GDAL's polynomial reproduces it)."""
    code, _, err = run_cli(["detect", _scene(tmp_path / "gcp.tif", rpcs=False), "-m", "rx",
                            "-o", tmp_path / "gcp_rx.tif", "--polygons",
                            tmp_path / "gcp.geojson"], capsys)
    assert code == 0, err
    twin = _scene(tmp_path / "affine.tif", gcps=False, rpcs=False, crs="EPSG:32633",
                  transform=GRID)
    code, _, err = run_cli(["detect", twin, "-m", "rx", "-o", tmp_path / "affine_rx.tif",
                            "--polygons", tmp_path / "affine.geojson"], capsys)
    assert code == 0, err
    got, wanted = _vertices(tmp_path / "gcp.geojson"), _vertices(tmp_path / "affine.geojson")
    assert len(got) >= 10
    np.testing.assert_allclose(got, wanted, atol=1e-7)  # degrees: under a centimetre


def _rpc_pixel(lon, lat, h=0.0):
    """The RPC model evaluated directly (GDAL's corner frame: + 0.5), (col, row)."""
    def poly(c, p, l_, z):
        terms = [np.ones_like(p), l_, p, z, l_ * p, l_ * z, p * z, l_ * l_, p * p, z * z,
                 p * l_ * z, l_ ** 3, l_ * p * p, l_ * z * z, l_ * l_ * p, p ** 3, p * z * z,
                 l_ * l_ * z, p * p * z, z ** 3]
        return sum(a * t for a, t in zip(c, terms, strict=True))
    f = RPC_FIELDS
    p = (lat - f["LAT_OFF"]) / f["LAT_SCALE"]
    lo = (lon - f["LONG_OFF"]) / f["LONG_SCALE"]
    z = np.full_like(p, (h - f["HEIGHT_OFF"]) / f["HEIGHT_SCALE"])
    row = poly(f["LINE_NUM_COEFF"], p, lo, z) / poly(f["LINE_DEN_COEFF"], p, lo, z)
    col = poly(f["SAMP_NUM_COEFF"], p, lo, z) / poly(f["SAMP_DEN_COEFF"], p, lo, z)
    return (np.column_stack([col * f["SAMP_SCALE"] + f["SAMP_OFF"],
                             row * f["LINE_SCALE"] + f["LINE_OFF"]]) + 0.5)


def test_polygons_of_an_rpc_scene_are_its_pixel_corners_on_the_ground(tmp_path, capsys):
    """Every vertex, taken back to the image by the RPC equations themselves, is a pixel
    corner of the anomalies (gdalwarp's height 0), and the scene's info says what places
    it."""
    src = _scene(tmp_path / "rpc.tif", gcps=False)
    out = tmp_path / "rpc.gpkg"
    code, _, err = run_cli(["detect", src, "-m", "rx", "-o", tmp_path / "rx.tif",
                            "--polygons", out], capsys)
    assert code == 0, err
    from pyogrio import read_info

    assert CRS.from_user_input(read_info(out)["crs"]) == CRS.from_epsg(4326)
    pixels = _rpc_pixel(*_vertices(out).T)
    np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-5)
    corners = {tuple(v) for v in np.round(pixels).astype(int)}
    assert {(20, 30), (23, 33), (40, 10), (41, 11)} <= corners  # the 3 x 3 and the pixel
    code, text, _ = run_cli(["info", src], capsys)
    assert code == 0 and "placed by:  RPCs; kept in every map written" in text


def test_gcps_gdal_cannot_solve_leave_the_polygons_in_pixels_with_a_warning(tmp_path, capsys):
    """Two GCPs fix no polynomial: GDAL refuses the transformer; the run still writes its
    outputs, says why, and GeoJSON (WGS 84 by definition) is refused as for a plain grid."""
    src = tmp_path / "two.tif"
    _scene(src, gcps=False, rpcs=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rasterio: "no geotransform" before the GCPs are set
        with rasterio.open(src, "r+") as dst:
            dst.gcps = (_gcps()[:2], CRS.from_epsg(32633))
    code, _, err = run_cli(["detect", src, "-m", "rx", "-o", tmp_path / "rx.tif",
                            "--polygons", tmp_path / "p.gpkg"], capsys)
    assert code == 0, err
    assert "GDAL cannot place the scene by its 2 ground control points" in err
    assert "Traceback" not in err
    assert len(_held(tmp_path / "rx.tif")[0][0]) == 2  # the raster keeps them all the same
    code, _, err = run_cli(["detect", src, "-m", "rx", "-o", tmp_path / "rx2.tif",
                            "--polygons", tmp_path / "p.geojson"], capsys)
    assert code == 2 and "GeoJSON coordinates are WGS 84" in err


def _many_gcps(n_side=20):
    """A tie-point grid of n_side² GCPs (L1 products carry hundreds) on the affine GRID."""
    rows, cols = np.meshgrid(np.linspace(0, ROWS, n_side), np.linspace(0, COLS, n_side),
                             indexing="ij")
    pairs = zip(rows.ravel(), cols.ravel(), strict=True)
    return [GroundControlPoint(row=r, col=c, x=(GRID @ (c, r))[0], y=(GRID @ (c, r))[1], z=0.0,
                               id=str(i)) for i, (r, c) in enumerate(pairs)]


def test_hundreds_of_gcps_survive_an_envi_header_both_ways(tmp_path, capsys):
    """GDAL stops reading a header at a line of 10,000 characters: 400 geo points were
    written on one line (GDAL then read none, nor anything after them) and GDAL's joined
    value was given to its stub on one line (hsad read none)."""
    src = _scene(tmp_path / "many.tif", gcps=False, rpcs=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(src, "r+") as dst:
            dst.gcps = (_many_gcps(), CRS.from_epsg(32633))
    envi = tmp_path / "many.img"
    code, _, err = run_cli(["convert", src, envi], capsys)
    assert code == 0, err
    text = (tmp_path / "many.hdr").read_text()
    assert max(len(line) for line in text.splitlines()) < 1000 and "bbl" in text
    (gdal, _), _, _, _ = _held(envi)
    assert len(gdal) == 400
    held = open_cube(envi).attrs["sensor_georef"]
    assert [g[:4] for g in held.gcps] == [(p.row, p.col, p.x, p.y) for p in gdal]


@pytest.mark.parametrize("key", ["rpc info", "geo points"])
def test_beside_a_map_info_gdal_reads_neither_and_so_does_hsad(tmp_path, corpus_dir, key):
    if key == "rpc info":
        text = (corpus_dir / "gdal" / "envirpc.hdr").read_text()
    else:
        text = ("ENVI\nsamples = 1\nlines = 1\nbands = 1\nheader offset = 0\n"
                "file type = ENVI Standard\ndata type = 1\ninterleave = bsq\nbyte order = 0\n"
                "geo points = {1, 1, 45, 10,\n 2, 1, 45, 10.1,\n 1, 2, 44.9, 10}\n")
    text = text.replace("samples = 1", "samples = 2")
    text += "map info = {UTM, 1, 1, 500000, 4000000, 30, 30, 33, North, WGS-84}\n"
    (tmp_path / "s.hdr").write_text(text)
    (tmp_path / "s.img").write_bytes(bytes(2))
    with rasterio.open(tmp_path / "s.img") as gdal:
        assert gdal.crs == CRS.from_epsg(32633) and gdal.rpcs is None and gdal.gcps[0] == []
    cube = open_cube(tmp_path / "s.hdr")
    assert cube.rio.crs == CRS.from_epsg(32633) and "sensor_georef" not in cube.attrs


@pytest.mark.parametrize("kind", ["gcps", "rpcs"])
def test_a_slice_written_to_envi_or_geotiff_is_placed_by_them_alone(tmp_path, kind):
    """A slice's pixel offset was written as an 'Arbitrary' map info beside (ENVI: instead
    of) the GCPs, and as a geotransform beside RPCs (GeoTIFF): GDAL then took the offset
    grid for the scene's place. Now neither file has one, and GDAL's transformers put the
    slice's pixel (r, c) where they put the scene's (r + 7, c + 5)."""
    src = _scene(tmp_path / "scene.tif", gcps=kind == "gcps", rpcs=kind == "rpcs")
    part = open_cube(src)[7:47, 5:35]
    written = [write_envi(part, tmp_path / "part.img"),
               write_geotiff(part[:, :, 0], tmp_path / "part.tif")]
    assert "map info" not in (tmp_path / "part.hdr").read_text()
    (gcps, _), rpcs, _, _ = _held(src)
    rows, cols = np.array([0.0, 10, 39]), np.array([0.0, 29, 12])
    for path in written:
        (w_gcps, _), w_rpcs, crs, transform = _held(path)
        assert crs is None and transform.is_identity
        if kind == "gcps":  # ENVI keeps lat/lon: the fit differs a little from UTM's
            wanted = np.array(rasterio.warp.transform(
                "EPSG:32633", "EPSG:4326", *_ground(("gcp", gcps), rows + 7, cols + 5)))
            got = _ground(("gcp", w_gcps), rows, cols)
            if path.suffix == ".tif":
                got = np.array(rasterio.warp.transform("EPSG:32633", "EPSG:4326", *got))
            np.testing.assert_allclose(got, wanted, atol=1e-7)
        else:
            np.testing.assert_allclose(_ground(("rpc", w_rpcs), rows, cols),
                                       _ground(("rpc", rpcs), rows + 7, cols + 5), atol=1e-9)


def test_gcps_without_any_crs_stay_without_one_and_their_polygons_in_pixels(tmp_path, capsys):
    """Written so that GDAL reads no CRS either (an empty one): a second run treats them as
    the first did (pixel-frame polygons, GeoJSON refused up front)."""
    src = _scene(tmp_path / "none.tif", gcps=False, rpcs=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(src, "r+") as dst:
            dst.gcps = (_gcps(), CRS())
    assert open_cube(src).attrs["sensor_georef"].gcp_crs is None
    for n, scene in enumerate((src, tmp_path / "rx0.tif")):
        code, _, err = run_cli(["detect", scene, "-m", "rx", "-o", tmp_path / f"rx{n}.tif",
                                "--polygons", tmp_path / f"p{n}.gpkg"], capsys)
        assert code == 0, err
        assert "polygons are in pixel coordinates" in err
        assert open_cube(tmp_path / f"rx{n}.tif").attrs["sensor_georef"].gcp_crs is None
        (gcps, crs), _, _, _ = _held(tmp_path / f"rx{n}.tif")
        assert len(gcps) == 5 and crs is None  # GDAL's reading too
        vertices = _vertices(tmp_path / f"p{n}.gpkg")
        assert vertices[:, 1].max() <= 0  # y = −row, as QGIS draws an unplaced raster
        code, _, err = run_cli(["detect", scene, "-m", "rx", "-o", tmp_path / "x.tif",
                                "--polygons", tmp_path / "p.geojson"], capsys)
        assert code == 2 and "GeoJSON coordinates are WGS 84" in err


@pytest.mark.parametrize("placed_by", ["gcps", "transform"])
def test_geojson_of_a_scene_in_a_local_crs_is_refused_before_any_work(tmp_path, capsys,
                                                                      placed_by):
    """It failed after the detection with "cannot write polygons: NULL pointer error"."""
    if placed_by == "gcps":
        src = _scene(tmp_path / "local.tif", rpcs=False, gcp_crs='LOCAL_CS["site grid"]')
    else:
        src = _scene(tmp_path / "local.tif", gcps=False, rpcs=False,
                     crs=CRS.from_wkt('LOCAL_CS["site grid",UNIT["metre",1]]'), transform=GRID)
    code, _, err = run_cli(["detect", src, "-m", "rx", "-o", tmp_path / "rx.tif",
                            "--polygons", tmp_path / "p.geojson"], capsys)
    assert code == 2 and not (tmp_path / "rx.tif").exists()
    assert "is a local one, which no transformation takes to the WGS 84" in err, err


def test_gcps_in_a_local_crs_place_polygons_there_as_gdalwarp_does(tmp_path, capsys):
    """GDAL warps such a scene into its site grid; the polygons lie where the same scene on
    that affine grid puts them."""
    site = 'LOCAL_CS["site grid",UNIT["metre",1]]'
    src = _scene(tmp_path / "local.tif", rpcs=False, gcp_crs=site)
    code, _, err = run_cli(["detect", src, "-m", "rx", "-o", tmp_path / "rx.tif",
                            "--polygons", tmp_path / "p.gpkg"], capsys)
    assert code == 0, err
    assert "pixel coordinates" not in err
    got = _vertices(tmp_path / "p.gpkg")
    pixels = (~GRID) @ (got[:, 0], got[:, 1])  # back to the scene's pixel corners
    np.testing.assert_allclose(np.column_stack(pixels), np.round(np.column_stack(pixels)),
                               atol=1e-6)
    assert {(20, 30), (23, 33), (40, 10), (41, 11)} <= {
        tuple(v) for v in np.round(np.column_stack(pixels)).astype(int)}


def test_gcps_gdal_keeps_in_an_envi_sidecar_are_read(tmp_path):
    """GDAL writes an ENVI file's first four GCPs in its header and all of them, with their
    CRS, in its .aux.xml: hsad reads what GDAL reads (625, not four on one line)."""
    path = tmp_path / "gdal.img"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="ENVI", width=COLS, height=ROWS, count=2,
                           dtype="float32") as dst:
            dst.write(np.ones((2, ROWS, COLS), np.float32))
            dst.gcps = (_many_gcps(25), CRS.from_epsg(32633))
    assert (tmp_path / "gdal.img.aux.xml").is_file()
    (gdal, gdal_crs), _, _, _ = _held(path)
    held = open_cube(path).attrs["sensor_georef"]
    assert len(gdal) == 625
    assert [g[:4] for g in held.gcps] == [(p.row, p.col, p.x, p.y) for p in gdal]
    assert CRS.from_wkt(held.gcp_crs) == gdal_crs == CRS.from_epsg(32633)


def test_only_a_braced_value_too_long_for_gdal_is_broken_over_lines():
    from hsad.io.envi_georef import _short_lines

    long_list = "{" + ", ".join(f"{i * 1.5}" for i in range(3000)) + "}"
    broken = _short_lines(long_list)
    assert broken.replace("\n", "") == long_list and max(map(len, broken.splitlines())) < 1000
    unbraced = "PROJCS[" + ",".join(["x" * 9] * 995) + "]"  # one line to GDAL, however long
    assert len(unbraced) > 9900
    assert _short_lines(unbraced) == unbraced
    assert _short_lines("{1, 2, 3}") == "{1, 2, 3}"


def test_sidecar_gcps_without_a_crs_stay_without_one(tmp_path, capsys):
    """GDAL reads no CRS for them (the WGS 84 of ENVI's geo points is the header's): the
    same maps and refusals as a GeoTIFF with the same GCPs."""
    path = tmp_path / "nocrs.img"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="ENVI", width=COLS, height=ROWS, count=2,
                           dtype="float32") as dst:
            dst.write(np.random.default_rng(0).normal(size=(2, ROWS, COLS)).astype("f4"))
            dst.gcps = (_gcps(), CRS())
    assert _held(path)[0][1] is None and len(_held(path)[0][0]) == 5
    assert open_cube(path).attrs["sensor_georef"].gcp_crs is None
    code, _, err = run_cli(["detect", path, "-m", "rx", "-o", tmp_path / "rx.tif",
                            "--polygons", tmp_path / "p.geojson"], capsys)
    assert code == 2 and "the scene has no CRS" in err


def test_a_truth_in_map_coordinates_is_placed_on_a_gcp_scene_as_gdalwarp_places_it(
        tmp_path, capsys):
    """hsad wrote map-coordinate polygons for a scene placed by GCPs (a PRISMA L2C), but
    refused a truth or area in map coordinates: "the scene has no CRS to place them in"."""
    from hsad.cube.background import background_mask

    gcp = _scene(tmp_path / "gcp.tif", rpcs=False)
    twin = _scene(tmp_path / "affine.tif", gcps=False, rpcs=False, crs="EPSG:32633",
                  transform=GRID)
    box = shapely.Polygon([GRID @ (c, r) for c, r in ((20.2, 30.2), (22.8, 30.3), (22.7, 32.8),
                                                      (20.3, 32.7))])
    mask = background_mask(open_cube(gcp), box, crs="EPSG:32633")
    # the same pixels as on its affine twin (GDAL's polynomial reproduces the grid)
    np.testing.assert_array_equal(mask, background_mask(open_cube(twin), box,
                                                        crs="EPSG:32633"))
    assert mask.sum() == 9 and mask[30:33, 20:23].all()
    from rasterio.warp import transform as warp
    from shapely.ops import transform as reshaped

    lonlat = reshaped(lambda x, y: warp("EPSG:32633", "EPSG:4326", x, y), box)
    truth = tmp_path / "truth.geojson"
    truth.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(lonlat)},
        {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(
            shapely.Point(*warp("EPSG:32633", "EPSG:4326",
                                *[[v] for v in GRID @ (40.5, 10.5)])))}]}))
    code, out, err = run_cli(["detect", gcp, "-m", "rx", "-o", tmp_path / "rx.tif",
                              "--truth", truth], capsys)
    assert code == 0, err
    assert "AUC(D,F) = 1.0000" in out  # the 3 x 3 anomaly and the one pixel, found
    window = open_cube(gcp).isel(y=slice(25, 60), x=slice(15, 50))  # its GCPs moved with it
    assert background_mask(window, box, crs="EPSG:32633")[5:8, 5:8].all()


def test_a_feature_far_from_a_gcp_scene_marks_nothing(tmp_path):
    """GDAL's inverse polynomial folds points far outside the scene back into its frame:
    a 120 m target some 45 km away marked 12 pixels of a gently bent swath."""
    from rasterio.warp import transform as warp

    from hsad.cube.background import background_mask
    from hsad.io.sensor_georef import SensorGeoref, pixel_mapping

    rows = cols = 100
    points = [(float(r), float(c), 500000 + 30 * c + 0.02 * (c - 50) ** 2,
               4000000 - 30 * r + 0.015 * (c - 50) ** 2)
              for r in np.linspace(0, rows, 5) for c in np.linspace(0, cols, 5)]
    to_pixels, _ = pixel_mapping(SensorGeoref(gcps=tuple((*p, 0.0) for p in points),
                                              gcp_crs=CRS.from_epsg(32633).to_wkt()))
    rng = np.random.default_rng(0)
    far = np.column_stack([rng.uniform(440000, 563000, 20000),
                           rng.uniform(3937000, 4060000, 20000)])
    far = far[~((np.abs(far[:, 0] - 501750) < 2750) & (np.abs(far[:, 1] - 3998500) < 2500))]
    folded = far[((to_pixels(far) >= 0) & (to_pixels(far) < 100)).all(axis=1)]
    assert len(folded)  # the inverse polynomial's fold, which the footprint leaves out
    path = tmp_path / "bent.tif"
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=3,
                       dtype="float32") as dst:
        dst.write(np.random.default_rng(1).normal(100, 5, (3, rows, cols)).astype(np.float32))
        dst.gcps = ([GroundControlPoint(row=r, col=c, x=x, y=y, z=0.0) for r, c, x, y in points],
                    CRS.from_epsg(32633))
    cube = open_cube(path)
    target = shapely.Point(*folded[0]).buffer(60)
    with pytest.raises(Exception, match="lies outside the scene"):
        background_mask(cube, target, crs="EPSG:32633")
    near = shapely.Point(500000 + 30 * 40.5, 4000000 - 30 * 60.5).buffer(20)
    with pytest.warns(UserWarning, match="1 of 2 features of the background area mark no "
                      "pixel"):
        mask = background_mask(cube, [near, target], crs="EPSG:32633")
    assert 1 <= mask.sum() <= 4 and mask[59:62, 39:42].any()
    x, y = 500000 + 30 * 40, 4000000 - 30 * 60  # a self-intersecting bow-tie: GEOS raised
    bow = shapely.Polygon([(x, y), (x + 90, y - 90), (x + 90, y), (x, y - 90)])
    assert background_mask(cube, bow, crs="EPSG:32633").any()
    lon, lat = warp("EPSG:32633", "EPSG:4326", [near.centroid.x], [near.centroid.y])
    assert background_mask(cube, shapely.Point(lon[0], lat[0]).buffer(1e-4),
                           crs="EPSG:4326")[59:62, 39:42].any()  # from another CRS too
