"""``python -m rnnkit``: the same as the ``rnnkit`` command."""
import sys

try:
    from rnnkit.cli.main import main
except KeyboardInterrupt:   # Ctrl-C before the program has even loaded
    try:
        from rnnkit.cli.main import forget_escaped_interrupt
        forget_escaped_interrupt()
    except BaseException:
        pass
    sys.exit(130)

sys.exit(main())
