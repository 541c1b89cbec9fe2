"""The one training loop of hsad: epochs, device, seed, progress bar, early stopping, history.

A model supplies a *step* function that takes one mini-batch (a tuple of tensors already
on the device) and returns its losses as ``{name: float}``; the :class:`Trainer` does the
rest. Shuffling uses its own seeded generator, so a run is reproducible on the CPU.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from hsad.errors import ParameterError

Step = Callable[[tuple[torch.Tensor, ...]], dict[str, float]]


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


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch's global generators for the block and restore them afterwards.

    Inside the block deterministic algorithms are requested (``warn_only``, so ops
    without a deterministic kernel still run); the previous setting is restored.
    """
    devices = [device] if device is not None and device.type == "cuda" else []
    was_det = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_det, warn_only=was_warn)


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


@dataclass
class History:
    """Mean loss of each epoch by name, plus how training ended."""

    losses: dict[str, list[float]] = field(default_factory=dict)
    epochs: int = 0
    stopped_early: bool = False
    seconds: float = 0.0

    def add(self, epoch_losses: dict[str, float]) -> None:
        for name, value in epoch_losses.items():
            self.losses.setdefault(name, []).append(float(value))
        self.epochs += 1

    def to_dict(self) -> dict:
        return {"losses": self.losses, "epochs": self.epochs,
                "stopped_early": self.stopped_early, "seconds": round(self.seconds, 3)}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls({k: list(map(float, v)) for k, v in d.get("losses", {}).items()},
                   int(d.get("epochs", 0)), bool(d.get("stopped_early", False)),
                   float(d.get("seconds", 0.0)))


@dataclass
class Trainer:
    """Mini-batch training loop.

    ``early_stopping`` is a patience in epochs (None: off): training stops when the
    ``monitor`` loss has not improved by ``min_delta`` (relative) for that many epochs.
    ``threads`` is the number of torch CPU threads while training (None: torch's setting).
    """

    epochs: int = 20
    batch_size: int = 512
    device: str | torch.device = "auto"
    seed: int = 0
    progress: bool = True
    early_stopping: int | None = None
    monitor: str = "loss"
    min_delta: float = 1e-3
    desc: str = "training"
    threads: int | None = 1

    def batches(self, n: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """Shuffled index batches of one epoch; a last batch of 1 is merged (batch norm)."""
        order = torch.randperm(n, generator=generator)
        bounds = list(range(0, n, self.batch_size)) + [n]
        if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2:
            bounds.pop(-2)
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            yield order[lo:hi]

    def fit(self, step: Step, *data: torch.Tensor) -> History:
        """Run ``step`` over shuffled mini-batches of ``data`` for ``epochs`` epochs."""
        if self.epochs < 1 or self.batch_size < 1:
            raise ParameterError("epochs and batch_size must be ≥ 1")
        with cpu_threads(self.threads if resolve_device(self.device).type == "cpu" else None):
            return self._fit(step, *data)

    def _fit(self, step: Step, *data: torch.Tensor) -> History:
        n = int(data[0].shape[0])
        device = resolve_device(self.device)
        data = tuple(t.to(device) for t in data)
        generator = torch.Generator().manual_seed(int(self.seed))
        history = History()
        best, stale, start = math.inf, 0, time.perf_counter()
        bar = tqdm(range(self.epochs), desc=self.desc, disable=not self.progress,
                   leave=False, unit="epoch", dynamic_ncols=True)
        for _ in bar:
            sums: dict[str, float] = {}
            count = 0
            for idx in self.batches(n, generator):
                idx = idx.to(device)
                losses = step(tuple(t[idx] for t in data))
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + float(value) * len(idx)
                count += len(idx)
            epoch = {name: total / count for name, total in sums.items()}
            history.add(epoch)
            bar.set_postfix({k: f"{v:.4g}" for k, v in epoch.items()}, refresh=False)
            bad = [k for k, v in epoch.items() if not np.isfinite(v)]
            if bad:
                bar.close()
                raise ParameterError(f"training diverged: {bad[0]} = {epoch[bad[0]]} "
                                     "(try a lower learning rate)")
            if self.early_stopping is not None and self.monitor in epoch:
                value = epoch[self.monitor]
                if value < best - self.min_delta * abs(best if np.isfinite(best) else value):
                    best, stale = value, 0
                else:
                    stale += 1
                    if stale >= self.early_stopping:
                        history.stopped_early = True
                        break
        bar.close()
        history.seconds = time.perf_counter() - start
        return history
