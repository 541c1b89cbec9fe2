"""A neural detector's trained networks as state (the mixin :class:`NetworkState`, part of
:class:`~hsad.detectors.neural.NeuralDetector`): checked finite after training, pickled as
their weights (dask.distributed sends the detector to its workers), and moved to the
device asked for."""

from __future__ import annotations

import torch

from hsad.errors import ParameterError
from hsad.nn.trainer import networks_to_load, resolve_device


class NetworkState:
    """The ``networks_`` a detector trained: checked, pickled and placed."""

    def _built_on(self, device) -> dict[str, torch.nn.Module]:
        """The networks for ``n_bands_`` bands, on ``device``; a size no memory holds
        (``hidden=10**9``) is a ParameterError naming the settings, not torch's allocator
        error."""
        try:
            return {k: m.to(device) for k, m in self._build(self.n_bands_).items()}
        except (MemoryError, RuntimeError) as exc:
            if not isinstance(exc, MemoryError) and "alloc" not in str(exc) and \
                    "out of memory" not in str(exc):
                raise
            sizes = ", ".join(f"{k}={getattr(self, k)!r}" for k in
                              ("hidden", "latent", "depth", "channels") if hasattr(self, k))
            raise ParameterError(f"{self.name}: its networks do not fit in memory "
                                 f"({sizes}): give smaller sizes") from None

    def _check_trained(self) -> None:
        """ParameterError when a network's weights ended non-finite or beyond what a model
        file may hold (the last update follows the last loss checked): training diverged."""
        from hsad.nn.persistence import WEIGHT_LIMIT

        for name, module in self.networks_.items():
            for key, tensor in module.state_dict().items():
                if tensor.is_floating_point() and tensor.numel() and not bool(
                        (tensor.abs() <= WEIGHT_LIMIT).all()):
                    what = (f"beyond ±{WEIGHT_LIMIT:g}" if bool(torch.isfinite(tensor).all())
                            else "non-finite")
                    raise ParameterError(f"{self.name}: training diverged: {name}.{key} "
                                         f"ended {what} (try a lower learning rate, lr)")

    def __getstate__(self) -> dict:
        """The networks travel as their weights: torch pickles no spectrally normalised
        module (ALAD's discriminators), only its ``state_dict``."""
        state = self.__dict__.copy()
        networks = state.pop("networks_", None)
        if networks is not None:
            state["_pickled_networks"] = {
                name: (module.training, {k: v.detach().cpu() for k, v in
                                         module.state_dict().items()})
                for name, module in networks.items()}
        return state

    def __setstate__(self, state: dict) -> None:
        pickled = state.pop("_pickled_networks", None)
        self.__dict__.update(state)
        if pickled is None:
            return
        networks = networks_to_load(lambda: self._build(self.n_bands_))
        for name, module in networks.items():
            training, weights = pickled[name]
            module.load_state_dict(weights)
            module.to(self.device_).train(training)
        self.networks_ = networks

    def _ensure_device(self) -> None:
        """Follow a ``device`` changed after fitting/loading (e.g. ``hsad detect --device``);
        freeze the networks (inference takes gradients, if any, in the inputs only)."""
        device = resolve_device(self.device)
        if device != self.device_:
            for module in self.networks_.values():
                module.to(device)
            self.device_ = device
        for module in self.networks_.values():
            module.requires_grad_(False)
