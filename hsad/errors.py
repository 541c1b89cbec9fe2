"""One exception hierarchy for hsad.

Every error a user can cause derives from :class:`HsadError`. Its ``str()`` is
``"<path>: <problem>"`` when a file is involved, so the CLI can print
``error: <file>: <problem>`` and exit with status 2.
"""

from __future__ import annotations

import os


class HsadError(Exception):
    """Base class: a problem the user can act on."""

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        self.problem = problem
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class FileFormatError(HsadError):
    """The file exists but is not a readable cube, map or header."""


class HeaderError(FileFormatError):
    """An ENVI header is missing, malformed or incomplete."""


class TruncatedFileError(FileFormatError):
    """The data file is shorter than its header says."""


class GeoreferenceError(HsadError):
    """A cube or map carries a georeference (CRS, transform, x/y coordinates) that cannot
    be read. Having none is not an error: that is the plain pixel grid."""


class UnsupportedError(FileFormatError):
    """A valid file using a feature or type hsad does not support."""


class ParameterError(HsadError, ValueError):
    """A bad argument or hyperparameter."""


class ModelError(HsadError):
    """A saved model is invalid, or does not fit the scene it is applied to."""


class NotFittedError(ParameterError, ModelError):
    """A detector used before ``fit`` (or a model load): a :class:`ParameterError` and a
    :class:`ModelError`, so that either ``except`` catches it for every detector."""


class DatasetError(HsadError):
    """A benchmark scene is unknown, missing or fails its checksum."""


class OutputError(HsadError):
    """An output cannot be written: it exists, is an input, its folder is not writable, or
    the disk filled up while writing it."""


class DegenerateDataWarning(UserWarning):
    """The data leave a statistic degenerate (e.g. a singular covariance): results are
    computed, but part of the data carries no weight; the message says what to do."""


__all__ = [
    "DatasetError", "DegenerateDataWarning", "FileFormatError", "GeoreferenceError",
    "HeaderError", "HsadError", "ModelError", "NotFittedError", "OutputError", "ParameterError",
    "TruncatedFileError", "UnsupportedError"
]
