"""The one backoff policy: a capped exponential step, with the caller's kind of jitter.

Each caller keeps its own figures (first step, cap, jitter kind) and counts its own attempts; the
step doubles per `doublings` and stops at the cap. Randomness comes in as a `draw` in [0, 1), so
the policy stays pure and a test can fix it.
"""

import dataclasses
import enum
from collections.abc import Callable
from typing import Final

# Beyond this the step is at any sane cap long since, and 2**n stays a small float.
MAX_DOUBLINGS: Final = 32


class Jitter(enum.Enum):
    """Where in the step the wait falls."""

    NONE = "none"  # the step itself
    FULL = "full"  # anywhere in [0, step): spreads a crowd of clients the most
    HALF = "half"  # in [step/2, step): spread, yet never much shorter than the step


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """`base` seconds at the first step, doubling up to `cap` seconds, jittered by `jitter`."""

    base: float
    cap: float
    jitter: Jitter = Jitter.HALF

    def step(self, doublings: int) -> float:
        """`base * 2**doublings`, at most `cap` (doublings below 0 count as 0)."""
        return min(self.cap, self.base * 2.0 ** min(max(doublings, 0), MAX_DOUBLINGS))

    def delay(self, doublings: int, draw: Callable[[], float]) -> float:
        """Seconds to wait after the step's `doublings`; `draw` returns a number in [0, 1)."""
        step = self.step(doublings)
        if self.jitter is Jitter.FULL:
            return step * draw()
        if self.jitter is Jitter.HALF:
            return step / 2 + step / 2 * draw()
        return step
