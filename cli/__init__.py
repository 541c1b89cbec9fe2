"""The ``hsad`` command line, installed as ``hsad.cli``. A thin layer over the library."""
