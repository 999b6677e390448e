"""Allows `python -m watcher`."""

import sys

import watcher.cli as cli

sys.exit(cli.main())
