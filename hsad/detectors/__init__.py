"""Detector registry: ``get(name, **params)`` and ``available()``.

Registration happens in one place, the class: every module of this package is found with
``pkgutil``, and each :class:`BaseDetector` subclass it defines with its own ``name`` is
registered under that name. A module named after its detector (``rx.py`` for ``rx``,
``cluster_rx.py`` for ``cluster-rx``) is imported alone by ``get``, so RX users do not pay
torch's import. Detectors defined elsewhere (a plugin) join with :func:`register`, or,
for the command line too, through the ``hsad.detectors`` entry-point group of an installed
package (docs/adding_a_model.md). A module or plugin that cannot be imported is left out
with a warning naming it; asking for it by name is a one-line error.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
import re
import warnings
from typing import TYPE_CHECKING, Any

from hsad.detectors import _plugins
from hsad.detectors.base import BaseDetector
from hsad.errors import ParameterError

if TYPE_CHECKING:  # the classes, for type checkers; at run time imported on first use
    from hsad.detectors.aae import AAE
    from hsad.detectors.adae import ADAE
    from hsad.detectors.ae import Autoencoder
    from hsad.detectors.aed import AED
    from hsad.detectors.alad import ALAD
    from hsad.detectors.alae import ALAE
    from hsad.detectors.alocc import ALOCC
    from hsad.detectors.anogan import AnoGAN
    from hsad.detectors.cavga import CAVGA
    from hsad.detectors.cluster_rx import ClusterRX
    from hsad.detectors.crd import CRD
    from hsad.detectors.egbad import EGBAD
    from hsad.detectors.fanogan import FAnoGAN
    from hsad.detectors.ganomaly import GANomaly
    from hsad.detectors.hadgan import HADGAN
    from hsad.detectors.local_mean_rx import LocalMeanRX
    from hsad.detectors.lrx import LocalRX
    from hsad.detectors.rx import GlobalRX
    from hsad.detectors.skip_ganomaly import SkipGANomaly
    from hsad.detectors.utd import RXDUTD, UTD
    from hsad.detectors.vae import VAE

#: a detector's name: lower case, as ``get`` and the command line look it up; no ``,``
#: (method lists), ``.`` (``-p METHOD.KEY=VALUE``), ``:`` (benchmark stage columns)
NAME = re.compile(r"[a-z][a-z0-9_-]*\Z")

#: detectors whose module is not named after them
MODULE_OF = {"rxd-utd": "utd"}
#: hsad's detector classes by class name -> their module (``from hsad.detectors import HADGAN``)
CLASSES = {
    "AAE": "aae", "ADAE": "adae", "Autoencoder": "ae", "AED": "aed", "ALAD": "alad",
    "ALAE": "alae", "ALOCC": "alocc", "AnoGAN": "anogan", "CAVGA": "cavga",
    "ClusterRX": "cluster_rx", "CRD": "crd", "EGBAD": "egbad", "FAnoGAN": "fanogan",
    "GANomaly": "ganomaly", "HADGAN": "hadgan", "LocalMeanRX": "local_mean_rx",
    "LocalRX": "lrx", "GlobalRX": "rx", "RXDUTD": "utd", "SkipGANomaly": "skip_ganomaly",
    "UTD": "utd", "VAE": "vae",
}

_REGISTRY: dict[str, type[BaseDetector]] = {}
_BUILT_IN: set[str] = set()
_SCANNED: set[str] = set()
_BROKEN: dict[str, str] = {}  # module or entry point -> why it cannot be imported
_LOADED: set[str] = set()  # entry points registered
_PLUGINS_LOADED = False


def register(cls: type[BaseDetector], *, replace: bool = False) -> type[BaseDetector]:
    """Make a detector defined outside this package available under ``cls.name``.

    The name must be new: hsad's own detectors' names are refused, and so is another
    plugin's unless ``replace`` (the same class defined again, as a notebook cell run
    twice, replaces its earlier self)."""
    name = cls.__dict__.get("name")
    if not (isinstance(cls, type) and issubclass(cls, BaseDetector)):
        raise ParameterError(f"{cls!r} is not a BaseDetector subclass")
    if not name:
        raise ParameterError(f"{cls.__name__} has no name to register")
    if not isinstance(name, str) or not NAME.match(name):
        raise ParameterError(f"{cls.__name__}: name {name!r} must be lower-case letters, "
                             "digits, '-' or '_', starting with a letter")
    _scan_package()
    if name in _BUILT_IN:
        raise ParameterError(f"{cls.__name__}: name {name!r} is hsad's own detector "
                             f"({_qualified(_REGISTRY[name])}); choose another name")
    held = _REGISTRY.get(name)
    if held is not None and held is not cls and not replace \
            and _qualified(held) != _qualified(cls):
        raise ParameterError(f"{cls.__name__}: name {name!r} is already registered by "
                             f"{_qualified(held)}; choose another name, or "
                             "register(..., replace=True)")
    claimed = None if held is not None or replace or _PLUGINS_LOADED else _claimed(name, cls)
    if claimed:
        raise ParameterError(f"{cls.__name__}: name {name!r} is the installed plugin "
                             f"{claimed}'s; choose another name, or "
                             "register(..., replace=True)")
    _REGISTRY[name] = cls
    return cls


def _claimed(name: str, cls: type) -> str | None:
    """The installed plugin, not looked up yet, whose entry point names another class than
    ``cls`` ``name`` (``module:Class``): in a fresh session ``register`` had taken its name,
    and the installed one was left out at the next lookup. Read from the entry points, not
    imported (a plugin registering itself while it imports, another thread looking the
    plugins up); a module entry point's names are known once the plugins are looked up."""
    own = f"{cls.__module__}:{cls.__qualname__}"
    for ep in _plugins.entry_points():
        if ep.name == name and ":" in ep.value and ep.value.replace(" ", "") != own:
            return ep.value
    return None


def _qualified(cls: type) -> str:
    return qualified_name(cls)


def qualified_name(cls: type) -> str:
    """``module.QualName`` of a detector class: what a model file records of it."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def _scan(module: str) -> None:
    """Import ``hsad.detectors.<module>`` and register the detectors it defines; a module
    that cannot be imported is noted (:data:`_BROKEN`) and warned about, once."""
    if module in _SCANNED:
        return
    _SCANNED.add(module)
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except Exception as exc:  # a dropped-in module with a missing dependency, say
        _broken(f"module hsad.detectors.{module}", exc)
        return
    except BaseException:  # Ctrl-C while importing: try again next time
        _SCANNED.discard(module)
        raise
    for _, obj in inspect.getmembers(mod, inspect.isclass):
        if (issubclass(obj, BaseDetector) and obj.__module__ == mod.__name__
                and obj.__dict__.get("name")):
            _REGISTRY[obj.name] = obj
            _BUILT_IN.add(obj.name)


def _broken(what: str, exc: BaseException) -> None:
    why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    _BROKEN[what] = why
    missing = exc.name if isinstance(exc, ModuleNotFoundError) and exc.name else None
    top = missing.split(".")[0] if missing else None
    if top is not None and top in _MISSING:  # said once: without torch, 21 lines had
        return  # come before every command's own line
    more = ""
    if top is not None:
        _MISSING.add(top)
        more = f", as are those of every other module that needs {top} (install {top})"
    warnings.warn(f"{what} cannot be imported ({why}): its detectors are left out{more}",
                  UserWarning, stacklevel=4)


#: the missing modules a warning has named (:func:`_broken`)
_MISSING: set[str] = set()


def _left_out(what: str, why: str) -> None:
    _BROKEN[what] = why
    warnings.warn(f"{what}: {why}; its detectors are left out", UserWarning, stacklevel=4)


def _scan_package() -> None:
    for module in _modules():
        _scan(module)


def _load_plugins() -> None:
    """Register the detectors of the installed packages' ``hsad.detectors`` entry points
    (each a BaseDetector subclass, or a module whose subclasses with a name join)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    for ep in _plugins.entry_points():
        _load_plugin(ep)
    _PLUGINS_LOADED = True  # not after a Ctrl-C while a plugin imports: tried again


def _load_plugin(ep) -> None:
    """Register one entry point's detectors, all or none, or warn why not."""
    what = f"plugin {ep.name} = {ep.value}"
    if what in _BROKEN or what in _LOADED:  # once: a retry after a Ctrl-C skips it
        return
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin leaves the others working
        _broken(what, exc)
        return
    classes = _plugins.detector_classes(obj)
    why = _plugins.refusal(ep, obj, classes, _clash)
    if why:
        _left_out(what, why)
        return
    for cls in classes:
        register(cls)
    _LOADED.add(what)


def _clash(cls: type[BaseDetector]) -> str | None:
    """Why an installed plugin's ``cls`` cannot take its name, or None."""
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        return f"name {name!r} of {_qualified(cls)} is not lower-case letters, digits, '-' or '_'"
    held = _REGISTRY.get(name)
    if name in _BUILT_IN:
        return f"name {name!r} of {_qualified(cls)} is hsad's own detector"
    if held is not None and _qualified(held) != _qualified(cls):
        return (f"name {name!r} of {_qualified(cls)} is already {_qualified(held)}'s: "
                "rename one of them")
    return None


def available() -> dict[str, type[BaseDetector]]:
    """Registered detectors by name: hsad's own, the installed plugins', the registered."""
    _scan_package()
    _load_plugins()
    return dict(sorted(_REGISTRY.items()))


def get(name: str, **params) -> BaseDetector:
    """Instantiate the detector ``name`` with hyperparameters ``params``."""
    key = name.lower()
    module = MODULE_OF.get(key, key.replace("-", "_"))  # "cluster-rx" is in cluster_rx.py
    if key not in _REGISTRY and module in _modules():
        _scan(module)
        if f"module hsad.detectors.{module}" in _BROKEN:
            raise ParameterError(f"method {name!r}: module hsad.detectors.{module} cannot be "
                                 f"imported ({_BROKEN[f'module hsad.detectors.{module}']})")
    if key not in _REGISTRY:
        available()
    if key not in _REGISTRY:
        close = difflib.get_close_matches(str(name).lower(), available(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ParameterError(f"unknown method {name!r}{hint} (available: "
                             f"{', '.join(available())})")
    det = _REGISTRY[key]()
    det.set_params(**params)
    return det


def __getattr__(name: str) -> Any:
    """Modules of this package, and hsad's detector classes, load on first use."""
    if name in CLASSES:
        return getattr(importlib.import_module(f"{__name__}.{CLASSES[name]}"), name)
    from hsad.lazy_modules import submodule

    return submodule(__name__, name)


def __dir__() -> list[str]:
    """The package's names, and its modules still to load."""
    from hsad.lazy_modules import listing

    return listing(__name__, CLASSES)


__all__ = [
    "AAE", "ADAE", "AED", "ALAD", "ALAE", "ALOCC", "AnoGAN", "Autoencoder", "BaseDetector",
    "CAVGA", "CRD", "ClusterRX", "EGBAD", "FAnoGAN", "GANomaly", "GlobalRX", "HADGAN",
    "LocalMeanRX", "LocalRX", "RXDUTD", "SkipGANomaly", "UTD", "VAE", "available", "get",
    "register",
]
