"""``python -m rnnkit``: the same as the ``rnnkit`` command."""
import sys

try:
    from rnnkit.cli.main import main
except KeyboardInterrupt:   # Ctrl-C before the program has even loaded
    sys.exit(130)

sys.exit(main())
