"""Detector settings from the command line (``--param k=v``) or a YAML/TOML file."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from hsad.errors import FileFormatError, ParameterError
from hsad.io import check_input

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parse_value(text: str):
    """Type a ``--param`` value as YAML would: ``3`` → int, ``1e-6`` → float, ``[3,9]`` → list;
    ``None`` (any case) or ``null`` → None."""
    if text.strip().lower() == "none":  # as ``hsad methods`` prints a default of None
        return None
    try:
        value = yaml.load(text, Loader=_UniqueKeyLoader)  # a safe loader
    except yaml.constructor.ConstructorError as exc:
        if "given twice" in str(exc.problem):
            raise ParameterError(f"{text!r}: {exc.problem}") from None
        return text
    except yaml.YAMLError:
        return text
    except RecursionError:
        raise ParameterError(f"a value nested too deeply: {text[:40]}...") from None
    except ValueError as exc:  # an integer of thousands of digits (Python's 4300 limit)
        if "digits" not in str(exc):
            return text  # a date YAML cannot make (2020-13-45): the text, as other errors
        raise ParameterError(f"a value that cannot be read: {text[:40]}... ({exc})") from None
    if isinstance(value, str):  # YAML 1.1 reads "1e-6" as a string
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_params(pairs: list[str] | tuple[str, ...]) -> dict:
    """``["inner=3", "outer=9"]`` → ``{"inner": 3, "outer": 9}``."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--param expects key=value, got {pair!r}")
        try:
            params[key.strip()] = parse_value(value.strip())
        except ParameterError as exc:
            raise ParameterError(f"-p {key.strip()}: {exc.problem}") from None
    return params


def parse_numbers(text: str | None, option: str, kind=float) -> list | None:
    """``"640,550,460"`` → ``[640.0, 550.0, 460.0]`` (``kind`` each); three values wanted.
    ``None`` stays ``None``; anything else is a one-line ParameterError naming ``option``."""
    if text is None:
        return None
    try:
        values = [kind(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise ParameterError(f"{option} needs three comma-separated numbers (R,G,B), "
                             f"got {text!r}")
    return values


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML takes the last
    one silently; TOML refuses it)."""


def _unique_mapping(loader: _UniqueKeyLoader, node, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<:``: its keys may be overridden
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            twice = key in seen
        except TypeError:  # an unhashable key: the loader's own error follows
            continue
        if twice:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice",
                                                    key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _unique_mapping)

#: What a detection config may hold.
CONFIG_KEYS = ("method", "params", "contamination", "far", "threshold")
#: a config is a few lines: larger files are refused before they are parsed
MAX_CONFIG_BYTES = 1 << 20
#: values a config may hold once YAML's aliases are expanded, and how deep they may nest
MAX_CONFIG_VALUES = 10_000
MAX_CONFIG_DEPTH = 20


def _check_extent(value, path: Path) -> None:
    """FileFormatError when ``value`` holds more than :data:`MAX_CONFIG_VALUES` values once
    aliases are expanded (YAML's "billion laughs": 1 KB of anchors is 10⁹ values, which
    printing in an error message took 5.8 GB) or nests deeper than :data:`MAX_CONFIG_DEPTH`."""
    count, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_CONFIG_VALUES:
            raise FileFormatError(f"the config holds more than {MAX_CONFIG_VALUES} values "
                                  "(expanded YAML aliases?): a config is a few settings", path)
        if depth > MAX_CONFIG_DEPTH:
            raise FileFormatError(f"the config nests deeper than {MAX_CONFIG_DEPTH} levels: "
                                  "a config is a few settings", path)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for pair in item.items() for v in pair)
        elif isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)


def load_config(path: str | Path) -> dict:
    """Read a detection config (YAML or TOML): ``method``, ``params`` and output options.

    Example (YAML)::

        method: lrx
        params: {inner: 5, outer: 15, pca: 10}
        contamination: 0.005
    """
    p = Path(path)
    check_input(p, "config")
    if p.stat().st_size > MAX_CONFIG_BYTES:
        raise FileFormatError(f"a config of {p.stat().st_size / 2**20:.1f} MiB: a config is "
                              f"a few settings (at most {MAX_CONFIG_BYTES // 2**20} MiB)", p)
    text = p.read_text(encoding="utf-8-sig", errors="replace")
    try:
        if p.suffix.lower() == ".toml":
            cfg = tomllib.loads(text)
        else:
            cfg = yaml.load(text, Loader=_UniqueKeyLoader)  # a safe loader
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FileFormatError(f"not a valid YAML/TOML config: {first}", p) from None
    except RecursionError:
        raise FileFormatError("the config nests too deeply to be read: a config is a few "
                              "settings", p) from None
    except ValueError as exc:  # an integer of thousands of digits (Python's 4300 limit)
        raise FileFormatError(f"a value that cannot be read ({exc})", p) from None
    _check_extent(cfg, p)
    if not isinstance(cfg, dict):
        raise FileFormatError("a config must be a mapping with at least 'method'", p)
    unknown = sorted(set(map(str, cfg)) - set(CONFIG_KEYS))
    if unknown:
        raise FileFormatError(f"unknown key {unknown[0]!r} in the config (valid: "
                              f"{', '.join(CONFIG_KEYS)}; outputs are options)", p)
    if cfg.get("method") is not None and not isinstance(cfg["method"], str):
        raise FileFormatError(f"'method' must be a detector's name (`hsad methods`), got "
                              f"{cfg['method']!r}", p)
    params = cfg.get("params", {}) or {}
    if not isinstance(params, dict):
        raise FileFormatError("'params' must be a mapping of hyperparameters", p)
    odd = [k for k in params if not isinstance(k, str)]
    if odd:  # ``ridge: 0,5`` in a flow mapping is a key 5 to YAML
        raise FileFormatError(f"'params' holds {odd[0]!r}, which is no hyperparameter's name "
                              "(a decimal comma? write 0.5, with a point)", p)
    # typed as -p values are: YAML 1.1 leaves ``1e-4`` a string, ``None`` is None
    cfg["params"] = {k: parse_value(v) if isinstance(v, str) else v for k, v in params.items()}
    return cfg


__all__ = ["CONFIG_KEYS", "MAX_CONFIG_BYTES", "MAX_CONFIG_DEPTH", "MAX_CONFIG_VALUES",
           "load_config", "parse_numbers", "parse_params", "parse_value"]
