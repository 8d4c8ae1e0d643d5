"""The ``rnnkit`` command: one module per subcommand, each with ``add_parser(subparsers)`` and
``run(args)`` (which returns its result, so tests call it directly)."""
