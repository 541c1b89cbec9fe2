"""The ``hsad`` command line, installed as ``hsad.cli``. A thin layer over the library.

Its modules load on first use, as the library's do (``import hsad;
hsad.cli.convert.convert``)."""

from hsad.lazy_modules import submodule


def __getattr__(name: str):
    return submodule(__name__, name)
