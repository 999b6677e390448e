"""Allows `python -m watcher`."""

import sys

import watcher.cli as cli

# Guarded: the worker process (spawned, `watcher.flow.worker`) imports this module again as `__mp_main__`.
if __name__ == "__main__":
    sys.exit(cli.main())
