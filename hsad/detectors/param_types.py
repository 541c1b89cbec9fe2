"""Hyperparameter values against their declared annotations (``int``, ``float | None``,
``list[int] | str | None``): the check behind a one-line error for ``-p hidden=abc``."""

from __future__ import annotations

import numpy as np

#: the largest seed (NumPy's legacy and scikit-learn's seeding take 32-bit unsigned
#: integers; the CLI's --seed takes the same range)
SEED_MAX = 2**32 - 1

_KIND_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false",
               "str": "a string", "None": "None"}


def annotation_kind(annotation) -> str | None:
    """An annotation as the text :func:`fits` reads: a string as it is (postponed
    annotations), a class by its name (``int``), ``int | None`` by its text; None for no
    annotation."""
    import inspect

    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        return annotation
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def _kind_tokens(kind: str) -> list[str]:
    return [t.strip() for t in kind.split("|")]


def fits(value, kind: str) -> bool:
    """Whether ``value`` fits the annotation ``kind`` (``"int"``, ``"float | None"``,
    ``"list[int] | str | None"``): integers for int (20.0 too), any real number for float.
    An annotation with other names (``typing.Optional[int]``, a plugin's own type) is not
    checked."""
    tokens = _kind_tokens(kind)
    if not all(t in _KIND_NAMES or t.startswith(("list", "tuple")) for t in tokens):
        return True
    for token in tokens:
        if token == "None" and value is None:
            return True
        if isinstance(value, (bool, np.bool_)):
            if token == "bool":
                return True
            continue
        if token == "int" and (isinstance(value, (int, np.integer))
                               or isinstance(value, float) and value.is_integer()):
            return True
        if token == "float" and isinstance(value, (int, float, np.integer, np.floating)):
            return True
        if token == "str" and isinstance(value, str):
            return True
        if token.startswith(("list", "tuple")) and isinstance(value, (list, tuple)):
            return True
    return False


def dtype_like(value) -> bool:
    """A NumPy type or dtype given for a type's name (``dtype=np.float64``)."""
    return isinstance(value, np.dtype) or (isinstance(value, type)
                                           and issubclass(value, np.generic))


def as_saved(value, kind: str | None):
    """``value`` as a model file's JSON keeps it, in the type its annotation ``kind``
    reads back: NumPy scalars as Python numbers (``np.int64(3)`` → 3), a whole number given
    as a float for an integer-only parameter as an integer (``epochs=2.0`` → 2), NumPy
    types as their names (``dtype=np.float64`` → ``"float64"``), tuples as lists; anything
    else unchanged."""
    if isinstance(value, np.generic):
        value = value.item()
    elif dtype_like(value):
        value = np.dtype(value).name
    if isinstance(value, (list, tuple)):
        value = [as_saved(v, None) for v in value]
    tokens = _kind_tokens(kind) if kind else []
    if isinstance(value, float) and value.is_integer() and "int" in tokens \
            and "float" not in tokens:
        value = int(value)
    return value


def describe(kind: str) -> str:
    """``"int | None"`` → ``"an integer or None"``."""
    names = [_KIND_NAMES.get(t, "a list" if t.startswith(("list", "tuple")) else t)
             for t in _kind_tokens(kind)]
    return " or ".join(names)


__all__ = ["as_saved", "describe", "dtype_like", "fits"]
