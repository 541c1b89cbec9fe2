"""Torch inference over a scene's tiles: in batches on a device, with the model one key of
the dask graph (sent to each worker once).

:func:`infer_batches` runs a network's forward pass over a tile's pixels in batches
(optional bf16/fp16 autocast on CUDA, with pinned buffers), :func:`tile_threads` keeps
torch and BLAS to one thread a tile while dask runs tiles side by side, and
:func:`model_node`/:func:`call_model` put a model in a graph.
"""

from __future__ import annotations

import contextlib
import uuid

import dask
import numpy as np

from hsad import stopping
from hsad.engine.scheduler import active_client, concurrency
from hsad.errors import ModelError, ParameterError

#: Pixels per inference batch on the CPU, and on a CUDA GPU, which larger batches keep busy
#: (f-AnoGAN's score terms: 4.6 Mpixel/s at 8192, 16.7 at 65536 on an H200; performance.md §4).
BATCH, CUDA_BATCH = 8192, 65536
#: Autocast dtypes for ``precision`` (CUDA only; CPU inference stays float32).
PRECISIONS = ("fp32", "bf16", "fp16")


@contextlib.contextmanager
def tile_threads():
    """One torch and one BLAS thread per tile task while the local scheduler runs several
    tasks at once: dask's parallelism over tiles replaces the libraries' own, which would
    otherwise oversubscribe the CPUs (and spin-wait on a busy machine)."""
    if active_client() is not None or concurrency() <= 1:
        yield
        return
    from threadpoolctl import threadpool_limits

    from hsad.nn.trainer import cpu_threads

    with cpu_threads(1), threadpool_limits(1, user_api="blas"):
        yield


def model_node(model) -> dask.delayed:
    """``model`` as one key of a dask graph: tasks taking it as an argument share it, so a
    cluster ships it to each worker once (then keeps it), not once per tile."""
    return dask.delayed(model, name=f"model-{type(model).__name__}-{uuid.uuid4().hex}",
                        traverse=False)


def call_model(model, method: str, *args, **kwargs):
    """``getattr(model, method)(*args, **kwargs)``: the task run per tile on a model node."""
    return getattr(model, method)(*args, **kwargs)


def batch_for(device) -> int:
    """Pixels per inference batch on ``device``: :data:`CUDA_BATCH` on CUDA, else
    :data:`BATCH`."""
    return CUDA_BATCH if str(device).startswith("cuda") else BATCH


def infer_batches(forward, inputs: np.ndarray, *, prepare=None, on_device=None,
                  batch: int | None = None, device="cpu", precision: str | None = None,
                  grad: bool = False, keys: np.ndarray | None = None,
                  reduce=None) -> np.ndarray:
    """``forward`` over ``inputs`` in batches of ``batch`` rows (default
    :func:`batch_for` the device); float32 numpy result.

    ``prepare(numpy batch) -> tensor`` (default ``torch.from_numpy``) runs on the CPU. On
    CUDA, with ``on_device(tensor) -> tensor`` (the same preparation, of a float32 tensor of
    the raw values), the raw batch is copied instead and prepared on the GPU: the CPU only
    copies it into a pinned buffer, and the results come back through another (see
    :func:`_infer_cuda`). ``precision`` ``"bf16"`` or ``"fp16"`` runs ``forward`` under CUDA
    autocast (ignored on the CPU); default from dask config ``hsad.precision``
    (``"fp32"``). ``grad`` runs ``forward`` with autograd on (a score that descends a
    gradient), else under ``inference_mode``. With ``keys`` (one per input row, e.g. the
    pixels' scene positions) ``forward(x, keys_of_the_batch)``. ``reduce(numpy batch
    outputs) -> (rows, C')``: applied to each batch before it is stored, so that only its
    result is kept.
    """
    import torch

    device = torch.device(device)
    batch = int(batch or batch_for(device))
    precision = precision or dask.config.get("hsad.precision", "fp32")
    if precision not in PRECISIONS:
        raise ParameterError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if device.type == "cuda":
        return _infer_cuda(forward, inputs, prepare, on_device, batch, device,
                           precision, grad, keys, reduce)
    result = None  # allocated at the first batch, filled batch by batch
    since = stopping.mark()
    with torch.enable_grad() if grad else torch.inference_mode():
        for lo in range(0, len(inputs), batch):
            stopping.check(since)  # Ctrl-C or SIGTERM: end here, not at the tile's end
            chunk = inputs[lo:lo + batch]
            x = prepare(chunk) if prepare is not None else _as_tensor(chunk)
            args = (x.to(device),) if keys is None else (x.to(device), keys[lo:lo + batch])
            y = forward(*args).detach().float().cpu().numpy()
            result = _store(result, len(inputs), lo, reduce(y) if reduce is not None else y,
                            len(chunk))
    return np.empty((0,), dtype=np.float32) if result is None else result


def _infer_cuda(forward, inputs, prepare, on_device, batch, device, precision, grad, keys,
                reduce) -> np.ndarray:
    """:func:`infer_batches` on a CUDA ``device``.

    Each batch goes to the GPU through one pinned host buffer, reused: the raw values
    (converted to float32 in the same copy) when ``on_device`` prepares them there, else
    ``prepare``'s tensor. The outputs come back into a second pinned buffer
    (asynchronous copy, then one synchronisation a batch, which also frees the first
    buffer for the next batch). ``torch.Tensor.pin_memory`` per batch would allocate and
    copy once more.
    """
    import torch

    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    stream = torch.cuda.current_stream(device)
    staged = returned = result = None
    since = stopping.mark()
    with torch.enable_grad() if grad else torch.inference_mode():
        for lo in range(0, len(inputs), batch):
            stopping.check(since)
            chunk = inputs[lo:lo + batch]
            x = _as_tensor(chunk) if on_device is not None or prepare is None \
                else prepare(chunk)
            if staged is None:
                staged = torch.empty((min(batch, len(inputs)),) + tuple(x.shape[1:]),
                                     dtype=x.dtype, pin_memory=True)
            host = staged[:len(x)]
            host.copy_(x)
            x = host.to(device, non_blocking=True)
            if on_device is not None:
                x = on_device(x)
            args = (x,) if keys is None else (x, keys[lo:lo + batch])
            with torch.autocast(device_type="cuda", dtype=amp or torch.float32,
                                enabled=amp is not None):
                y = forward(*args).detach().float()
            if returned is None:
                returned = torch.empty((min(batch, len(inputs)),) + tuple(y.shape[1:]),
                                       dtype=torch.float32, pin_memory=True)
            back = returned[:len(y)]
            back.copy_(y, non_blocking=True)
            stream.synchronize()
            y = back.numpy()
            result = _store(result, len(inputs), lo, reduce(y) if reduce is not None
                            else y, len(chunk))
    return np.empty((0,), dtype=np.float32) if result is None else result


def _as_tensor(chunk: np.ndarray):
    """A float32 CPU tensor of ``chunk`` (no copy when it is float32 and contiguous)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))


def _store(result: np.ndarray | None, rows: int, lo: int, y: np.ndarray,
           given: int) -> np.ndarray:
    """``y``, the outputs of a batch of ``given`` inputs, into rows ``lo:`` of ``result``,
    allocated (``rows`` long) at the first batch; a row count other than ``given`` is a
    ModelError (unfilled rows would keep whatever the memory held)."""
    if len(y) != given:
        raise ModelError(f"a batch of {given} inputs gave {len(y)} rows of outputs")
    if result is None:
        result = np.empty((rows,) + y.shape[1:], dtype=np.float32)
    result[lo:lo + len(y)] = y
    return result


__all__ = ["BATCH", "CUDA_BATCH", "PRECISIONS", "batch_for", "call_model", "infer_batches",
           "model_node", "tile_threads"]
