"""Fuzz hsad's readers for N minutes with hypothesis (issue 10); not part of CI.

Targets reuse the property tests of ``tests/test_fuzz_envi_header.py`` and
``tests/test_fuzz_readers.py`` with a large budget:

* ``header-model``: generated ENVI headers must parse to their model or raise HsadError;
* ``header-mutated`` / ``header-bytes``: edited or arbitrary bytes give a consistent header
  (with a readable georeference) or HsadError;
* ``reader-<seed>``: a small valid ENVI / GeoTIFF / MAT file, truncated or bit-flipped, is
  read correctly through ``hsad.open_cube`` (values computed) or raises HsadError.

Each case runs under a time limit (a hang is a failure) and the process under an address-
space limit (so a huge allocation is a MemoryError, reported, not a machine in trouble).
Each distinct failure (exception type and place) is shrunk by hypothesis and saved under
``--out``: the failing input, a JSON description and the traceback.

    python benchmarks/fuzz_readers.py --minutes 10 --out fuzz-out
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import test_fuzz_envi_header as th  # noqa: E402
import test_fuzz_readers as tr  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


class Hang(Exception):
    """A case ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def fire(signum, frame):
        raise Hang(f"case ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def signature(exc: BaseException) -> str:
    """Exception type plus the innermost frame in hsad (else the innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    inner = [f for f in frames if "/hsad/" in f.filename] or frames
    where = f"{Path(inner[-1].filename).name}:{inner[-1].lineno}" if inner else "?"
    return f"{type(exc).__name__} at {where}"


class Target:
    """One fuzz target: a strategy, a check, and how to save a failing input."""

    def __init__(self, name, strategy, check, save):
        self.name, self.strategy, self.check, self.save = name, strategy, check, save
        self.cases = 0
        self.last_failure = None
        self.journal: Path | None = None

    def run(self, examples: int, rng: random.Random, case_seconds: float) -> None:
        def body(value):
            self.cases += 1
            if self.journal is not None:  # what ran last, should the process crash
                self.journal.write_text(json.dumps({"target": self.name, "case": repr(value)}))
            try:
                with time_limit(case_seconds), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.check(value)
            except BaseException as exc:
                self.last_failure = (value, exc)
                raise

        test = settings(max_examples=examples, deadline=None, database=None,
                        derandomize=False, report_multiple_bugs=False,
                        phases=[Phase.explicit, Phase.generate, Phase.shrink],
                        suppress_health_check=list(HealthCheck))(given(self.strategy)(body))
        seed(rng.getrandbits(64))(test)()


def header_targets(work: Path) -> list[Target]:
    def save_bytes(raw, folder):
        (folder / "header.hdr").write_bytes(raw)
        return {"file": "header.hdr"}

    return [
        Target("header-model", th.HEADERS, lambda c: th.check_model(c[0], c[1], work),
               lambda c, f: {**save_bytes(c[1], f), "model": repr(c[0])}),
        Target("header-mutated", th.MUTATED, lambda c: th.check_header_bytes(
            th.mutate(*c), work), lambda c, f: save_bytes(th.mutate(*c), f)),
        Target("header-bytes", th.ARBITRARY, lambda raw: th.check_header_bytes(raw, work),
               save_bytes),
    ]


def reader_targets(work: Path) -> list[Target]:
    targets = []
    for name in tr.SEED_MAKERS:
        seed_ = tr.make_seed(name, work / "seeds" / name)
        cases = work / "cases" / name

        def check(damage, seed_=seed_, cases=cases):
            cases.mkdir(parents=True, exist_ok=True)
            try:
                tr.check_damaged(seed_, damage, cases)
            finally:
                shutil.rmtree(cases, ignore_errors=True)

        def save(damage, folder, seed_=seed_):
            path, _, _ = tr.damaged_copy(seed_, damage, folder)
            return {"seed": seed_.name, "damage": repr(damage), "open": str(path)}

        targets.append(Target(f"reader-{name}", tr.DAMAGE, check, save))

    generated = st.tuples(th.HEADERS, st.integers(0, 2**32 - 1), st.booleans())

    def check_generated(case):
        (work / "gen").mkdir(exist_ok=True)
        try:
            tr.check_generated_envi(case[0][1], case[1], case[2], work / "gen")
        finally:
            shutil.rmtree(work / "gen", ignore_errors=True)

    def save_generated(case, folder):
        (folder / "g.hdr").write_bytes(case[0][1])
        return {"data_seed": case[1], "short": case[2],
                "note": "data: numpy default_rng(data_seed).bytes(header offset + nbytes)"}

    targets.append(Target("reader-envi-generated", generated, check_generated, save_generated))
    return targets


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="total fuzzing time")
    ap.add_argument("--out", type=Path, default=Path("fuzz-out"),
                    help="folder for reproducers and summary.json")
    ap.add_argument("--targets", default="header,reader",
                    help="comma list of target name prefixes (default: all)")
    ap.add_argument("--round", type=int, default=200, help="examples per hypothesis run")
    ap.add_argument("--case-seconds", type=float, default=10.0, help="per-case time limit")
    ap.add_argument("--max-memory-gib", type=float, default=8.0,
                    help="address-space limit of the fuzzing process (0: none)")
    ap.add_argument("--seed", type=int, default=None, help="random seed of the run")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--stop-at", type=float, default=None, help=argparse.SUPPRESS)
    return ap


def _load(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _record(out: Path, sig: str, entry: dict, save) -> bool:
    """Save a failure under ``out`` unless its signature is known; True when new."""
    known = _load(out / "failures.json", {})
    if sig in known:
        return False
    folder = out / f"failure-{len(known) + 1:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"signature": sig, "folder": str(folder), **entry, **(save(folder) or {})}
    (folder / "case.json").write_text(json.dumps(entry, indent=1))
    known[sig] = entry
    (out / "failures.json").write_text(json.dumps(known, indent=1))
    print(f"FAILURE {sig}\n  saved in {folder}", flush=True)
    return True


def worker(args) -> int:
    """Fuzz until ``--stop-at`` (epoch seconds); state in ``out/worker-<n>.json``."""
    import faulthandler

    if args.max_memory_gib:
        limit = int(args.max_memory_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    crash_log = open(args.out / f"worker-{args.worker}.crash.txt", "w")  # noqa: SIM115
    faulthandler.enable(crash_log)
    work = Path(tempfile.mkdtemp(prefix="hsad-fuzz-"))
    rng = random.Random(None if args.seed is None else args.seed + args.worker)
    prefixes = [p.strip() for p in args.targets.split(",") if p.strip()]
    targets = [t for t in header_targets(work) + reader_targets(work)
               if any(t.name.startswith(p) for p in prefixes)]
    state_path = args.out / f"worker-{args.worker}.json"
    failing, shown = 0, time.time()
    rng.shuffle(targets)
    try:
        while time.time() < args.stop_at:
            for target in targets:
                if time.time() >= args.stop_at:
                    break
                target.last_failure = None
                target.journal = args.out / "last_case.json"
                try:
                    target.run(args.round, rng, args.case_seconds)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as exc:  # noqa: BLE001  pytest's Failed is a BaseException
                    failing += 1
                    value, inner = target.last_failure or (None, exc)
                    tb = "".join(traceback.format_exception(inner))

                    def save(folder, value=value, target=target, tb=tb):
                        (folder / "traceback.txt").write_text(tb)
                        return target.save(value, folder) if value is not None else {}

                    _record(args.out, f"{target.name}: {signature(inner)}",
                            {"target": target.name, "exception": type(inner).__name__,
                             "message": str(inner)[:300]}, save)
                state = {"cases": {t.name: t.cases for t in targets}, "failing_runs": failing}
                state_path.write_text(json.dumps(state))
                if time.time() - shown > 60:
                    shown = time.time()
                    print(f"  worker {args.worker}: {sum(t.cases for t in targets)} cases, "
                          f"{failing} failing runs", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _rebuild(last: dict, folder: Path) -> dict:
    """Remake the damaged files of a reader case that crashed the process."""
    name = str(last.get("target", "")).removeprefix("reader-")
    if name not in tr.SEED_MAKERS:
        return {}
    try:
        damage = ast.literal_eval(last["case"])
        seed_ = tr.make_seed(name, folder / "seed")
        path, _, _ = tr.damaged_copy(seed_, damage, folder)
    except Exception as exc:  # noqa: BLE001  best effort: the case text is saved anyway
        return {"rebuild_error": repr(exc)}
    return {"open": str(path)}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker is not None:
        return worker(args)
    for old in [*args.out.glob("worker-*"), args.out / "failures.json"]:
        old.unlink(missing_ok=True)
    start = time.time()
    stop = start + 60 * args.minutes
    crashes, n = 0, 0
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
    try:
        while time.time() < stop - 5:
            # each worker is a child process: a crash (segfault, abort, memory) is a failure
            cmd = [sys.executable, __file__, *passthrough, "--worker", str(n),
                   "--stop-at", str(stop)]
            rc = subprocess.run(cmd).returncode
            if rc != 0:
                crashes += 1
                last = _load(args.out / "last_case.json", {})
                log = args.out / f"worker-{n}.crash.txt"

                def save(folder, log=log, last=last):
                    if log.exists():
                        shutil.copy(log, folder / "crash.txt")
                    return {"last_case": last, **_rebuild(last, folder)}

                _record(args.out, f"{last.get('target', '?')}: process died (status {rc})",
                        {"target": last.get("target"), "exception": f"exit status {rc}",
                         "message": "the fuzzing process died; see crash.txt"}, save)
            n += 1
            elapsed = (time.time() - start) / 60
            total = sum(sum(_load(p, {}).get("cases", {}).values())
                        for p in args.out.glob("worker-*.json"))
            print(f"[{elapsed:5.1f} min] cases {total}, distinct failures "
                  f"{len(_load(args.out / 'failures.json', {}))}", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    cases: dict[str, int] = {}
    failing = 0
    for p in args.out.glob("worker-*.json"):
        state = _load(p, {})
        failing += state.get("failing_runs", 0)
        for k, v in state.get("cases", {}).items():
            cases[k] = cases.get(k, 0) + v
    failures = _load(args.out / "failures.json", {})
    summary = {"minutes": round((time.time() - start) / 60, 2), "cases_total": sum(cases.values()),
               "cases": dict(sorted(cases.items())), "failing_runs": failing,
               "process_crashes": crashes, "distinct_failures": list(failures.values())}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("minutes", "cases_total", "cases")}, indent=1))
    print(f"distinct failures: {len(failures)}")
    for sig in failures:
        print(f"  {sig}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
