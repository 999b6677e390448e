"""vote-watcher: watches ASF release-vote threads and keeps Trusted Votes honest."""

from typing import Final

__version__: Final = "0.1.0"
