"""What users on other systems meet: a Python without ``fcntl`` or ``SIGPIPE`` (Windows),
text files saved with a byte-order mark, file systems that ignore letter case."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np

from hsad.config import load_config
from hsad.cube.bands import read_wavelength_file
from hsad.io import atomic, temp_names
from hsad.io.envi_writer import remove_headers

WINDOWS_LIKE = textwrap.dedent("""
    import signal, sys
    sys.modules["fcntl"] = None  # import fcntl fails, as on Windows
    del signal.SIGPIPE
    from pathlib import Path

    import numpy as np
    from hsad.cube import make_cube
    from hsad.io.envi_writer import write_envi
    from hsad.cli.main import main

    folder = Path(sys.argv[1])
    rng = np.random.default_rng(0)
    data = rng.normal(size=(24, 20, 6)).astype("float32")
    data[5, 7] += 9.0
    scene = write_envi(make_cube(data), folder / "scene.img")
    try:
        main(["detect", str(scene), "-m", "rx", "-o", str(folder / "rx.tif"), "--mask",
              str(folder / "mask.tif"), "--png", str(folder / "q.png")])
    except SystemExit as exc:
        print("exit", exc.code)
""")


def test_the_command_runs_without_fcntl_or_sigpipe(tmp_path):
    """Windows has neither: ``hsad`` once failed at import there, before any command."""
    run = subprocess.run([sys.executable, "-c", WINDOWS_LIKE, str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "exit 0" in run.stdout, run.stdout + run.stderr[-2000:]
    assert {"rx.tif", "mask.tif", "q.png"} <= {p.name for p in tmp_path.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_without_locks_no_other_writers_file_is_taken_for_stale(tmp_path, monkeypatch):
    """Without flock a live writer cannot be told from a dead one: nothing is removed."""
    target = tmp_path / "map.tif"
    other = tmp_path / f".map.tif.{atomic.HOST}-999999999.abc.part"
    other.write_bytes(b"another process's write")
    monkeypatch.setattr(atomic, "fcntl", None)  # the writer takes no lock
    monkeypatch.setattr(temp_names, "fcntl", None)  # nor asks for one
    assert atomic.remove_stale(target) == []
    assert other.exists()
    with atomic.atomic_path(target) as tmp:
        tmp.write_bytes(b"ours")
    assert target.read_bytes() == b"ours"


def test_the_umask_read_at_import_is_the_process_umask():
    before = os.umask(0o027)
    try:
        assert atomic._umask_now() == 0o027
        assert os.umask(0o027) == 0o027  # left as it was
    finally:
        os.umask(before)


def test_config_and_wavelength_files_saved_with_a_byte_order_mark(tmp_path):
    """Notepad's "UTF-8 with BOM" and Excel's "CSV UTF-8" start the file with U+FEFF."""
    (tmp_path / "c.toml").write_text('method = "lrx"\n[params]\ninner = 3\n',
                                     encoding="utf-8-sig")
    assert load_config(tmp_path / "c.toml") == {"method": "lrx", "params": {"inner": 3}}
    (tmp_path / "one.txt").write_text("450.5\n460.1\n470.2\n", encoding="utf-8-sig")
    wavelength, _ = read_wavelength_file(tmp_path / "one.txt")
    np.testing.assert_allclose(wavelength, [450.5, 460.1, 470.2])
    (tmp_path / "two.csv").write_text("wavelength,fwhm\n450.5,10\n460.1,10\n",
                                      encoding="utf-8-sig")
    wavelength, fwhm = read_wavelength_file(tmp_path / "two.csv")
    np.testing.assert_allclose(wavelength, [450.5, 460.1])
    np.testing.assert_allclose(fwhm, [10, 10])


def test_a_stale_header_that_is_the_one_written_is_kept(tmp_path):
    """On a case-insensitive file system ``out.HDR`` is the ``out.hdr`` just written (a
    hard link stands in for it here): removing the stale name removed the new header."""
    written = tmp_path / "out.hdr"
    written.write_text("ENVI\n")
    same = tmp_path / "out.HDR"
    os.link(written, same)
    other = tmp_path / "out.img.hdr"
    other.write_text("ENVI\n")
    remove_headers([same, other, tmp_path / "gone.hdr"], written)
    assert written.exists() and same.exists() and not other.exists()


def test_a_home_matplotlib_cannot_write_in_gets_no_messages_and_a_kept_cache(tmp_path):
    """A service account or container with a read-only or missing HOME: every `detect`
    printed matplotlib's two lines about its configuration folder and rebuilt its font
    cache. hsad gives it a private folder in the temporary directory, kept between runs."""
    from hsad import synthetic

    scene = synthetic.write_scene(synthetic.make_scene(rows=48, cols=48, bands=40, seed=1),
                                  tmp_path / "scene")
    (tmp_path / "file").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MPL", "XDG_"))}
    env.update(HOME=str(tmp_path / "file" / "home"), TMPDIR=str(tmp_path))  # not a folder
    for _ in range(2):
        run = subprocess.run([sys.executable, "-m", "hsad", "detect", str(scene["cube"]),
                              "-m", "rx", "-o", str(tmp_path / "rx.tif"), "--png",
                              str(tmp_path / "q.png"), "--overwrite", "--no-progress"],
                             env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0 and run.stderr == "", run.stderr
    uid = os.getuid() if hasattr(os, "getuid") else 0
    kept = tmp_path / f"hsad-matplotlib-{uid}"
    assert kept.is_dir() and any(kept.iterdir())  # the font cache, built once
    assert oct(kept.stat().st_mode & 0o777) == "0o700"


def test_no_temporary_folder_at_all_is_no_failure(monkeypatch):
    """A read-only container with no writable temporary folder: every command, even
    `hsad --version`, died in a traceback looking for a folder for matplotlib."""
    import tempfile

    from hsad.cli import main as cli_main

    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    monkeypatch.setenv("HOME", "/dev/null/home")
    monkeypatch.delitem(sys.modules, "matplotlib", raising=False)

    def none():
        raise FileNotFoundError("No usable temporary directory found")

    monkeypatch.setattr(tempfile, "gettempdir", none)
    cli_main._matplotlib_folder()
    assert "MPLCONFIGDIR" not in os.environ
