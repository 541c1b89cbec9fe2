"""``hsad datasets``: list the benchmark scenes, check them, download them."""

from __future__ import annotations

import sys

import click

from hsad.cli.options import put


def _status(name: str, verify: bool) -> tuple[str, str]:
    """(status, path) of a scene: missing, present, verified or 'sha256 MISMATCH'."""
    from hsad import datasets
    from hsad.errors import DatasetError

    try:
        path = datasets.path(name)
    except DatasetError:
        return "missing", "-"
    if not verify:
        return "present", str(path)
    try:
        datasets.verify(name, path)
    except DatasetError:
        return "sha256 MISMATCH", str(path)
    return "verified", str(path)


@click.group("datasets")
def command() -> None:
    """Benchmark scenes (HAD benchmarks: ABU, HYDICE, Pavia, San Diego)."""


@command.command("list")
@click.option("--verify", is_flag=True, help="Check each present file's sha256.")
def list_(verify: bool) -> None:
    """Table of the known scenes, development then held-out, and whether their files are
    present (and verified).

    Exits with status 1 when --verify finds a file whose checksum does not match.
    """
    from hsad import datasets

    every = [n for split in datasets.SPLITS for n in datasets.names(split)]
    wide = max([len("sensor"), *(len(datasets.manifest(n)["sensor"]) for n in every)])
    header = f"{'name':18s} {'split':11s} {'size (rows x cols x bands)':27s} {'dtype':8s} " \
             f"{'anomalies':>9s}  {'sensor':{wide}s} {'RX AUC':>6s}  {'status':15s} path"
    put(header)
    bad = 0
    for name in every:
        m = datasets.manifest(name)
        status, path = _status(name, verify)
        bad += status == "sha256 MISMATCH"
        shape = f"{m['rows']} x {m['cols']} x {m['bands']}"
        put(f"{name:18s} {datasets.split_of(name):11s} {shape:27s} {m['dtype']:8s} "
            f"{m['anomaly_pixels']:9d}  {m['sensor']:{wide}s} {m['rx_global_auc']:6.4f}"
            f"  {status:15s} {path}")
    put(f"search path: {', '.join(str(d) for d in datasets.search_path())}")
    if bad:
        click.echo(f"{bad} scene file(s) fail their sha256 check", err=True)
        sys.exit(1)


@command.command("fetch")
@click.argument("names", nargs=-1)
def fetch(names: tuple[str, ...]) -> None:
    """Download scenes NAMES into the user cache, checking sha256: scene names, 'all' (the
    development scenes, also when no name is given) or 'held-out'."""
    from hsad import datasets

    wanted = list(dict.fromkeys(n for given in names or ("all",) for n in datasets.expand(given)))
    for name in wanted:  # every name known before the first download
        datasets.manifest(name)
    for name in wanted:
        put(f"{name}: {datasets.fetch(name)}")
