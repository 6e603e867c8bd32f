"""Sub-commands of the ``stardist-hier`` command line.

Each module here defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; :data:`COMMANDS` lists them in the order ``--help`` shows them.
"""

COMMANDS = ("demo", "benchmark", "datasets", "evaluate", "experiment", "export", "predict", "models", "harmonise")
