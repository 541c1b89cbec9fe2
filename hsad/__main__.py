"""``python -m hsad``: the ``hsad`` command, for an environment whose scripts are not on
``PATH``."""

from hsad.cli.main import main

if __name__ == "__main__":
    main()
