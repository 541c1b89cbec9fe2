"""Atomic writes: ENVI pairs placed data first, live writers' temporaries never taken for
stale, and a rollback that only ever removes the file this process wrote."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys

import pytest

from hsad.errors import OutputError
from hsad.io import atomic, temp_names


def _dead_pid() -> str:
    return subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()


def test_pairs_are_placed_data_first(tmp_path, monkeypatch):
    order = []
    place = atomic._place
    monkeypatch.setattr(atomic, "_place", lambda tmp, target: (order.append(target.name),
                                                                place(tmp, target)))
    with atomic.atomic_paths(tmp_path / "e.img", tmp_path / "e.hdr") as (img, hdr):
        img.write_bytes(b"data")
        hdr.write_text("ENVI")
    assert order == ["e.img", "e.hdr"]
    assert sorted(os.listdir(tmp_path)) == ["e.hdr", "e.img"]


def test_a_pair_is_placed_under_its_folders_lock(tmp_path, monkeypatch):
    """Two `convert --overwrite` runs to one ENVI pair at once left one's 10-band data under
    the other's 150-band header (8 of 25 tries): a run's two renames now exclude another's."""
    held = []
    place = atomic._place

    def probe(tmp, target):
        other = os.open(tmp_path, os.O_RDONLY)  # as another run would ask
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(False)
        except BlockingIOError:
            held.append(True)
        finally:
            os.close(other)
        place(tmp, target)

    monkeypatch.setattr(atomic, "_place", probe)
    with atomic.atomic_paths(tmp_path / "e.img", tmp_path / "e.hdr") as (img, hdr):
        img.write_bytes(b"data")
        hdr.write_text("ENVI")
    assert held == [True, True]
    other = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released after
    os.close(other)


def test_a_pair_whose_header_cannot_be_placed_leaves_no_new_data_file(tmp_path):
    with atomic.keep_existing(), pytest.raises(OutputError, match="appeared while"):
        with atomic.atomic_paths(tmp_path / "e.img", tmp_path / "e.hdr") as (img, hdr):
            img.write_bytes(b"data")
            hdr.write_text("ENVI")
            (tmp_path / "e.hdr").write_text("another process")  # appears meanwhile
    assert sorted(os.listdir(tmp_path)) == ["e.hdr"]  # theirs; our data file is gone again
    assert (tmp_path / "e.hdr").read_text() == "another process"


def test_a_locked_temporary_is_live_even_if_its_pid_looks_dead(tmp_path):
    """Another PID namespace (a container sharing the folder): the PID means nothing here,
    the writer's flock does."""
    target = tmp_path / "rx.tif"
    locked = tmp_path / f".rx.tif.{atomic.HOST}-{_dead_pid()}.abc123.tif.part"
    unlocked = tmp_path / f".rx.tif.{atomic.HOST}-{_dead_pid()}.def456.tif.part"
    for p in (locked, unlocked):
        p.write_bytes(b"x")
    fd = os.open(locked, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert atomic.remove_stale(target) == [unlocked]
        assert locked.exists()
    finally:
        os.close(fd)
    assert atomic.remove_stale(target) == [locked]


def test_a_writer_holds_the_lock_of_its_temporary_until_done(tmp_path):
    target = tmp_path / "out.txt"
    with atomic.atomic_path(target) as tmp:
        fd = os.open(tmp, os.O_RDONLY)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
        tmp.write_text("ours")
    assert target.read_text() == "ours" and os.listdir(tmp_path) == ["out.txt"]


def test_placed_files_are_recorded_with_our_inode_not_the_targets(tmp_path, monkeypatch):
    """Another process may replace the target right after our rename: the rollback record
    holds the inode we wrote, so a rollback can never remove their file."""
    target = tmp_path / "out.txt"
    replace = os.replace

    def replace_then_theirs(src, dst):
        replace(src, dst)
        if os.fspath(dst) == os.fspath(target):
            (tmp_path / "theirs").write_text("theirs")
            replace(tmp_path / "theirs", target)

    monkeypatch.setattr(atomic.os, "replace", replace_then_theirs)
    with atomic.keep_existing(False) as placed, atomic.atomic_path(target) as tmp:
        tmp.write_text("ours")
    (path, dev, ino), = placed
    st = os.stat(target)
    assert path == target and target.read_text() == "theirs"
    assert (st.st_dev, st.st_ino) != (dev, ino)


def test_a_signal_while_a_temporary_is_created_acts_once_it_is_registered(tmp_path,
                                                                         monkeypatch):
    """SIGINT arriving between the file's creation and its registration (the window CI
    once hit) waits, so the file is always known to the cleanup."""
    import signal
    import tempfile

    mkstemp = tempfile.mkstemp

    def interrupted_mkstemp(*args, **kwargs):
        made = mkstemp(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)  # lands right after the file exists
        return made

    monkeypatch.setattr(tempfile, "mkstemp", interrupted_mkstemp)
    # Python's own Ctrl-C handler, whatever this process inherited (a shell's background
    # job starts with SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            atomic.temp_file(tmp_path / "map.tif")
    finally:
        restored = signal.signal(signal.SIGINT, previous)
    [made] = os.listdir(tmp_path)
    assert str(tmp_path / made) in atomic._LIVE
    assert restored is signal.default_int_handler  # temp_file put the handler back
    atomic.remove_temp(tmp_path / made)
    assert os.listdir(tmp_path) == [] and not atomic._LIVE


def test_temporaries_never_placed_are_removed_when_the_process_exits(tmp_path):
    """An interrupt outside any writer's cleanup (e.g. before its ``try``) still leaves
    nothing behind: the exit removes every registered temporary."""
    script = (
        "import sys; from hsad.io import atomic\n"
        f"atomic.temp_file({str(tmp_path / 'map.tif')!r})\n"
        "raise KeyboardInterrupt\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "KeyboardInterrupt" in done.stderr
    assert os.listdir(tmp_path) == []


def test_an_interrupt_turned_into_a_library_error_stays_an_interrupt(tmp_path):
    """Ctrl-C inside rasterio can surface as a RasterioIOError whose context is the
    KeyboardInterrupt: the write is reported as interrupted, not as a failed write."""
    from rasterio.errors import RasterioIOError

    target = tmp_path / "mid_write.tif"
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(target) as tmp:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise RasterioIOError(f"'{tmp}' not recognized as being in a supported "
                                      "file format.") from None
    assert os.listdir(tmp_path) == []


def test_a_path_that_says_write_is_no_write_failure(tmp_path):
    from rasterio.errors import RasterioIOError

    folder = tmp_path / "test_rewrite"
    exc = RasterioIOError(f"'{folder / '.overwrite.tif.part'}' not recognized as being in "
                          "a supported file format.")
    assert atomic.write_failure(exc, folder / "overwrite.tif") is None
    assert atomic.write_failure(RasterioIOError("Write error"), folder / "x.tif")


def test_every_legal_name_can_be_written_and_its_stale_temporaries_found(tmp_path):
    """A 244-character name is legal; its temporary name (31 characters more) was not."""
    target = tmp_path / ("a" * 240 + ".tif")
    with atomic.atomic_paths(target) as (tmp,):
        assert len(tmp.name) + len(".aux.xml") <= 255
        tmp.write_bytes(b"data")
    assert target.read_bytes() == b"data"
    stale = tmp_path / f".{temp_names.temp_tag(target)}.{atomic.HOST}-{_dead_pid()}.x1y2z3.tif.part"
    stale.write_bytes(b"x")
    assert atomic.remove_stale(target) == [stale]
    other = tmp_path / ("a" * 240 + ".tiff")  # same start, another name: another hash
    assert temp_names.temp_tag(other) != temp_names.temp_tag(target)
    # a dot early in a long ENVI name makes the rest of it the "suffix"
    for name in ("c" * 150 + ".v1_reflectance_subset_of_the_flightline", "ä" * 120 + ".x" * 5,
                 "b" * 100 + "." + "s" * 154):
        with atomic.atomic_paths(tmp_path / name) as (tmp,):
            assert len(os.fsencode(tmp.name + ".aux.xml")) <= 255
            tmp.write_bytes(b"data")
        assert (tmp_path / name).read_bytes() == b"data"


def test_a_temporary_that_cannot_be_made_is_named_as_the_output(tmp_path):
    missing = tmp_path / "no folder" / "s.tif"
    with pytest.raises(OSError) as exc:
        atomic.temp_file(missing)
    assert exc.value.filename == str(missing)


def test_a_write_past_the_file_size_limit_is_one_line_of_ours_alone(tmp_path):
    """libtiff printed "_tiffWriteProc: File too large." (on a full disk, "No space left on
    device.") for every block before hsad's own line."""
    import resource

    import numpy as np

    from hsad.cube import make_cube
    from hsad.io.envi_writer import write_envi

    scene = write_envi(make_cube(np.random.default_rng(0).normal(
        size=(300, 400, 4)).astype(np.float32)), tmp_path / "s.img")

    def limit():  # writes beyond 200 kB fail with EFBIG (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    done = subprocess.run([sys.executable, "-m", "hsad.cli.main", "detect", str(scene), "-m",
                           "rx", "-o", str(tmp_path / "out" / "rx.tif")],
                          preexec_fn=limit, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert not (tmp_path / "out" / "rx.tif").exists()


def test_a_link_to_a_file_is_written_through(tmp_path):
    real = tmp_path / "real" / "rx.tif"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "link.tif"
    link.symlink_to(real)
    with atomic.atomic_path(link) as tmp:
        tmp.write_bytes(b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert sorted(p.name for p in real.parent.iterdir()) == ["rx.tif"]  # no temporary left
    other = tmp_path / "plot.png"  # a link named for another kind of file: refused
    other.symlink_to(real)
    with pytest.raises(OutputError, match=r"is a link to .*rx\.tif, a file of another kind"):
        with atomic.atomic_path(other) as tmp:
            tmp.write_bytes(b"png")
    assert real.read_bytes() == b"new"


def test_a_file_a_library_made_anew_gets_the_umasks_permissions(tmp_path):
    old = os.umask(0o002)
    try:
        with atomic.atomic_path(tmp_path / "p.gpkg") as tmp:
            tmp.unlink()  # as OGR does before creating the file itself, 0644
            fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o644)
            os.close(fd)
    finally:
        os.umask(old)
    assert (tmp_path / "p.gpkg").stat().st_mode & 0o777 == 0o664


def test_a_replaced_file_loses_its_old_gdal_sidecar(tmp_path):
    """GDAL's ``.aux.xml`` beside a target describes the file replaced (its statistics,
    its metadata): it goes with it, and a new one written beside the temporary comes."""
    target = tmp_path / "scores.tif"
    target.write_bytes(b"old")
    (tmp_path / "scores.tif.aux.xml").write_text("<PAMDataset>old</PAMDataset>")
    with atomic.atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert not (tmp_path / "scores.tif.aux.xml").exists()
    with atomic.atomic_path(target) as tmp:
        tmp.write_bytes(b"newer")
        (tmp.parent / f"{tmp.name}.aux.xml").write_text("<PAMDataset>new</PAMDataset>")
    assert (tmp_path / "scores.tif.aux.xml").read_text() == "<PAMDataset>new</PAMDataset>"
