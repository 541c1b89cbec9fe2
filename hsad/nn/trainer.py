"""The one training loop of hsad: named stages of alternating updates, seeded shuffling,
progress bars, early stopping on a named loss and one merged history.

A model describes its training as :class:`Stage` s run in sequence (f-AnoGAN: ``gan`` then
``encoder``). A stage holds :class:`Update` s, one per player: a loss function of the
mini-batch, the optimiser that minimises it, how often it runs (``every=k``: once per k
steps, e.g. one generator step per k critic steps) and the modules frozen meanwhile. The
:class:`Trainer` does the rest: batches on the device, ``zero_grad``/``backward``/``step``,
epoch means, divergence and early-stopping checks. Shuffling uses a generator seeded anew
for each stage, so a run is reproducible on the CPU.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from hsad.errors import ParameterError
from hsad.progress import bar_style
from hsad.stopping import raise_if_signalled

Step = Callable[[tuple[torch.Tensor, ...]], dict[str, float]]
#: ``loss(batch, shared) -> {name: tensor}``; ``shared`` is a dict the updates of one step share.
LossFn = Callable[[tuple[torch.Tensor, ...], dict], dict[str, Any]]


#: the device names hsad takes (any letter case): ``auto``, ``cpu``, ``cuda``, ``cuda:N``
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?", re.IGNORECASE)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU raises ParameterError."""
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError("device 'cuda' requested but no CUDA GPU is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise ParameterError(f"unknown device {device!r} (choose auto, cpu or cuda)")
    return torch.device(name)


#: held by :func:`seeded` (re-entrant: a seeded block may call another)
_SEEDED = threading.RLock()


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch's global generators for the block and restore them afterwards.

    Inside the block deterministic algorithms are requested (``warn_only``, so ops
    without a deterministic kernel still run); the previous setting is restored. One
    block runs at a time in a process (:data:`_SEEDED`): the generators are global, and
    two fits in threads drew from one another's (a threaded sweep's models then depended
    on what else ran).
    """
    devices = [device] if device is not None and device.type == "cuda" else []
    with _SEEDED, torch.random.fork_rng(devices=devices):
        was_det = torch.are_deterministic_algorithms_enabled()
        was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
        torch.manual_seed(int(seed))
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_det, warn_only=was_warn)


def networks_to_load(build, skeleton: dict | None = None) -> dict[str, torch.nn.Module]:
    """Networks ``build()`` makes, for weights to be loaded into next: their tensors
    allocated on the CPU but not initialised, so that nothing is drawn from torch's global
    generators. Those are the caller's (a host seeding torch for its own work), and a fit
    in another thread draws from them under :data:`_SEEDED`: a throwaway initialisation
    there had moved both (``load_model``, unpickling). ``skeleton``: ``build()``'s networks
    on the meta device, made already. A network holding buffers its weights do not carry
    is initialised as built instead, under the lock, its draws given back."""
    if skeleton is None:
        with torch.device("meta"):
            skeleton = build()
    if all(set(dict(module.named_buffers())) <= set(module.state_dict())
           for module in skeleton.values()):
        return {k: module.to_empty(device="cpu") for k, module in skeleton.items()}
    with _SEEDED, torch.random.fork_rng(devices=[]):
        return build()


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op CPU threads (None: unchanged), then restore.

    The networks here are small: their per-step matrix products gain nothing from more
    threads, and OpenMP threads spin-waiting on a busy CPU made a 2-thread training run
    20× slower than a 1-thread one on a shared 2-core machine (docs/hadgan.md).
    """
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Inside the block ``modules`` take no gradient; their flags are restored afterwards."""
    saved = [[p.requires_grad for p in m.parameters()] for m in modules]
    for m in modules:
        m.requires_grad_(False)
    try:
        yield
    finally:
        for m, flags in zip(modules, saved, strict=True):
            for p, flag in zip(m.parameters(), flags, strict=True):
                p.requires_grad_(flag)


def show_progress(progress: bool | None) -> bool:
    """Whether to draw a bar (:func:`hsad.progress.wanted`: None when stderr is a terminal,
    True always, False never)."""
    from hsad.progress import wanted

    return wanted(progress)


@dataclass
class History:
    """Mean loss of each epoch by name, the stages that ran and how training ended.

    ``stages`` maps each stage name to ``[first epoch, epochs run, loss names]`` (epochs
    counted over the whole run, from 0), so each stage's curves can be plotted apart.
    """

    losses: dict[str, list[float]] = field(default_factory=dict)
    epochs: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    stages: dict[str, list] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Short at any length of training: each loss by its last value, not its curve."""
        last = ", ".join(f"{n}={v[-1]:.4g}" for n, v in self.losses.items() if v)
        return (f"History(epochs={self.epochs}, last losses: {{{last}}}, stages="
                f"{list(self.stages)}, stopped_early={self.stopped_early}, "
                f"seconds={self.seconds:.1f})")

    def add(self, epoch_losses: dict[str, float]) -> None:
        for name, value in epoch_losses.items():
            self.losses.setdefault(name, []).append(float(value))
        self.epochs += 1

    def stage_losses(self, stage: str) -> dict[str, list[float]]:
        """The loss curves recorded during ``stage``."""
        _, _, names = self.stages[stage]
        return {n: self.losses[n] for n in names if n in self.losses}

    def to_dict(self) -> dict:
        return {"losses": self.losses, "epochs": self.epochs,
                "stopped_early": self.stopped_early, "seconds": round(self.seconds, 3),
                "stages": self.stages}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls({k: list(map(float, v)) for k, v in d.get("losses", {}).items()},
                   int(d.get("epochs", 0)), bool(d.get("stopped_early", False)),
                   float(d.get("seconds", 0.0)), dict(d.get("stages", {})))


@dataclass
class Update:
    """One player's update: ``loss(batch, shared)`` returns losses by name and the trainer
    minimises ``losses[minimise]`` with ``optimiser``.

    ``every = k`` runs it on every k-th step of the stage (counted over epochs), e.g. one
    generator update per k critic updates, and on the stage's last step when the stage has
    fewer than k steps (so that no player ends a stage untrained); ``frozen`` modules take
    no gradient meanwhile.
    A loss reported only on some steps enters the epoch mean with its latest value on
    every step after its first. ``shared`` lets later updates of a step reuse tensors of
    earlier ones (detach them).
    """

    minimise: str
    loss: LossFn
    optimiser: torch.optim.Optimizer
    every: int = 1
    frozen: tuple[nn.Module, ...] = ()


@dataclass
class Stage:
    """A named training phase: ``updates`` run in order on every mini-batch, for ``epochs``.

    ``monitor`` is the loss whose stall stops the stage early (when the trainer has a
    patience; None: this stage never stops early); ``frozen`` modules stay frozen for the
    whole stage.
    """

    name: str
    updates: list[Update]
    epochs: int
    monitor: str | None = None
    frozen: tuple[nn.Module, ...] = ()


def apply_update(update: Update, batch: tuple[torch.Tensor, ...], shared: dict) -> dict:
    """One optimiser step of ``update`` on ``batch`` (its ``frozen`` players held); its losses
    as computed before the step."""
    with frozen(*update.frozen):
        losses = update.loss(batch, shared)
        if update.minimise not in losses:
            raise ParameterError(f"an update minimises {update.minimise!r}, which its loss "
                                 f"function does not return (it returns "
                                 f"{', '.join(map(repr, losses)) or 'nothing'})")
        update.optimiser.zero_grad(set_to_none=True)
        losses[update.minimise].backward()
        update.optimiser.step()
    return losses


def _due(update: Update, count: int, total: int) -> bool:
    """Whether ``update`` runs on step ``count`` of a stage of ``total`` steps: every
    ``every``-th step, or the last step when the stage is shorter than ``every``."""
    return count % update.every == 0 or (count == total and update.every > total)


def _step(updates: list[Update], batch: tuple[torch.Tensor, ...], count: int, total: int,
          latest: dict[str, float]) -> dict[str, float]:
    shared: dict = {}
    for upd in updates:
        if not _due(upd, count, total):
            continue
        losses = apply_update(upd, batch, shared)
        for name, value in losses.items():
            latest[name] = float(value.item() if torch.is_tensor(value) else value)
    return dict(latest)


def _every_update_ran(stage: Stage, total: int) -> int:
    """The step count by which each of ``stage``'s ``total`` steps' updates has run once."""
    return min(total, max((int(u.every) for u in stage.updates), default=1))


@dataclass
class Trainer:
    """Mini-batch training of :class:`Stage` s (:meth:`run`) or of one step function (:meth:`fit`).

    ``early_stopping`` is a patience in epochs (None: off): a stage stops when its
    ``monitor`` loss has not improved by ``min_delta`` (relative) for that many epochs. A
    monitor the stage does not report is an error, with early stopping or without.
    ``progress``: a bar over the epochs (None: when stderr is a terminal; True: always,
    into a log too; :mod:`hsad.progress`). ``threads`` is the number of torch
    CPU threads while training (None: torch's setting).
    """

    epochs: int = 20
    batch_size: int = 512
    device: str | torch.device = "auto"
    seed: int = 0
    progress: bool | None = None
    early_stopping: int | None = None
    monitor: str = "loss"
    min_delta: float = 1e-3
    desc: str = "training"
    threads: int | None = 1

    def _bounds(self, n: int) -> list[int]:
        """Where one epoch's mini-batches of ``n`` samples start, and ``n``: a last batch
        of 1 is merged into the one before (batch norm)."""
        bounds = list(range(0, n, self.batch_size)) + [n]
        if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2:
            bounds.pop(-2)
        return bounds

    def batches(self, n: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """Shuffled index batches of one epoch (:meth:`_bounds`)."""
        order = torch.randperm(n, generator=generator)
        bounds = self._bounds(n)
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            yield order[lo:hi]

    def steps_per_epoch(self, n: int) -> int:
        """The number of mini-batches :meth:`batches` makes of ``n`` samples."""
        return len(self._bounds(n)) - 1

    def fit(self, step: Step, *data: torch.Tensor) -> History:
        """Run ``step`` (which optimises by itself) over mini-batches for ``epochs`` epochs;
        ``monitor`` is read only with ``early_stopping`` (a step need not report "loss")."""
        stage = Stage("train", [], int(self.epochs),
                      monitor=self.monitor if self.early_stopping is not None else None)
        return self.run([stage], *data, step=step)

    def run(self, stages: list[Stage], *data: torch.Tensor, step: Step | None = None
            ) -> History:
        """Run ``stages`` in sequence on ``data``; one merged :class:`History`."""
        if self.batch_size < 1 or any(int(s.epochs) < 1 for s in stages):
            raise ParameterError("epochs and batch_size must be ≥ 1")
        history, start = History(), time.perf_counter()
        with cpu_threads(self.threads if resolve_device(self.device).type == "cpu" else None):
            device = resolve_device(self.device)
            data = tuple(t.to(device) for t in data)
            for stage in stages:
                if stage.name in history.stages:
                    raise ParameterError(f"training stage {stage.name!r} given twice")
                if step is None and not stage.updates:
                    raise ParameterError(f"training stage {stage.name!r} has no update")
                first = history.epochs
                with frozen(*stage.frozen):
                    names = self._stage(stage, data, history, step)
                history.stages[stage.name] = [first, history.epochs - first, names]
        history.seconds = time.perf_counter() - start
        return history

    def _stage(self, stage: Stage, data, history: History, step: Step | None) -> list[str]:
        """Run one stage into ``history``; the names of the losses it reported."""
        n, device = int(data[0].shape[0]), data[0].device
        generator = torch.Generator().manual_seed(int(self.seed))
        best, stale, count, latest = math.inf, 0, 0, {}
        desc = self.desc if len(history.stages) == 0 and stage.name == "train" else \
            f"{self.desc}: {stage.name}"
        reported: dict[str, None] = {}
        steps = int(stage.epochs) * self.steps_per_epoch(n)
        shown = show_progress(self.progress)
        bar = tqdm(range(int(stage.epochs)), desc=desc, disable=not shown, unit="epoch",
                   **(bar_style() if shown else {}))
        for _ in bar:
            sums: dict[str, float] = {}
            counts: dict[str, int] = {}
            for idx in self.batches(n, generator):
                raise_if_signalled()  # a Ctrl-C Python printed and went on from
                count += 1
                batch = tuple(t[idx.to(device)] for t in data)
                losses = step(batch) if step is not None else \
                    _step(stage.updates, batch, count, steps, latest)
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + float(value) * len(idx)
                    counts[name] = counts.get(name, 0) + len(idx)
            epoch = {name: total / counts[name] for name, total in sums.items()}
            if known_overlap := set(epoch) & set(history.losses) - set(reported):
                bar.close()
                raise ParameterError(f"training stage {stage.name!r} reports "
                                     f"{sorted(known_overlap)[0]!r}, a loss of an earlier "
                                     "stage: give each stage's losses own names")
            reported.update(dict.fromkeys(epoch))
            history.add(epoch)
            bar.set_postfix({k: f"{v:.4g}" for k, v in epoch.items()}, refresh=False)
            bad = [k for k, v in epoch.items() if not np.isfinite(v)]
            if bad:
                bar.close()
                raise ParameterError(f"training diverged: {bad[0]} = {epoch[bad[0]]} "
                                     "(try a lower learning rate)")
            if stage.monitor is not None and stage.monitor not in epoch:
                if count >= _every_update_ran(stage, steps):  # every update has run: never will
                    bar.close()
                    raise ParameterError(f"stage {stage.name!r} monitors {stage.monitor!r}, "
                                         "which it does not report (it reports "
                                         f"{', '.join(epoch) or 'nothing'})")
                continue  # an update of every k steps has not run yet: nothing to judge
            if self.early_stopping is None or stage.monitor is None:
                continue
            value = epoch[stage.monitor]
            if value < best - self.min_delta * abs(best if np.isfinite(best) else value):
                best, stale = value, 0
            else:
                stale += 1
                if stale >= int(self.early_stopping):
                    history.stopped_early = True
                    break
        bar.close()
        return list(reported)
