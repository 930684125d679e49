"""When a checker should stop believing its own failures.

A checker sees the world through its own CPU and its own network. If either
is broken, every probe it makes fails, and a checker that voted those
failures would tell the aggregators that the world is down. So a checker
that has reason to doubt itself reports **unknown (00) for every check**,
which the aggregators count as no vote at all, and the checkers that can
see keep deciding.

The exact rule, evaluated once per report (every ``report_interval``):

* **Canaries.** The fleet's canaries (by default the aggregators' own
  addresses: if a checker cannot reach them its votes are worthless anyway)
  are probed like tcp checks every ``canary_interval`` seconds, with the
  usual threshold logic (``canary_threshold`` consecutive failures make a
  canary unhealthy, as many successes make it healthy again). The canary
  condition holds while **more than half** of the canaries are unhealthy.
  One aggregator being restarted (one canary of two) is not enough.
* **Schedule.** A report window is *late* when more than
  ``missed_fraction`` (5 %) of the slots due in it were missed, i.e. reached
  more than ``min(interval / 2, 0.5 s)`` after their time (the process
  stalled, or the concurrency bound was reached). The schedule condition
  holds once ``enter_after`` (2) windows in a row were late and clears after
  ``leave_after`` (5) windows in a row were not.
* While either condition holds, every check is reported 00.

Why every check and not only the unhealthy ones: masking only failures
would turn a doubting checker into one that can vote only "healthy", and
its votes would then lean every tally toward healthy (a cut-off checker
still holds verdicts of "healthy" from before it was cut off). Abstaining
altogether leaves the other checkers' votes to decide, unbiased.

Independently of doubt, a check whose latest result is older than
``2 * interval + timeout`` (two slots in a row not judged) is reported 00:
the checker could not judge it lately, so it casts no vote on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from healthplane.proto.codec import UNHEALTHY


@dataclass(frozen=True, slots=True)
class DoubtPolicy:
    missed_fraction: float = 0.05
    enter_after: int = 2
    leave_after: int = 5


class SelfDoubt:
    """The doubt state machine; fed counters and canary states, no I/O."""

    def __init__(self, policy: DoubtPolicy | None = None) -> None:
        self.policy = policy or DoubtPolicy()
        self._late_windows = 0
        self._good_windows = 0
        self._last_launched = 0
        self._last_missed = 0
        self.schedule_doubt = False
        self.canary_doubt = False

    @property
    def doubting(self) -> bool:
        return self.schedule_doubt or self.canary_doubt

    def reasons(self) -> list[str]:
        out = []
        if self.canary_doubt:
            out.append("canaries")
        if self.schedule_doubt:
            out.append("schedule")
        return out

    def rebase(self, launched: int, missed: int) -> None:
        """Start counting from these totals (after a new dispatcher took over)."""
        self._last_launched, self._last_missed = launched, missed

    def evaluate(self, launched: int, missed: int, canary_states: np.ndarray) -> bool:
        """One report window: cumulative slot counters and canary verdicts in, doubt out."""
        d_launched = launched - self._last_launched
        d_missed = missed - self._last_missed
        self._last_launched, self._last_missed = launched, missed
        due = d_launched + d_missed
        late = due > 0 and d_missed > self.policy.missed_fraction * due
        if late:
            self._late_windows += 1
            self._good_windows = 0
        else:
            self._good_windows += 1
            self._late_windows = 0
        if self._late_windows >= self.policy.enter_after:
            self.schedule_doubt = True
        elif self._good_windows >= self.policy.leave_after:
            self.schedule_doubt = False
        n = canary_states.size
        self.canary_doubt = n > 0 and int(np.count_nonzero(canary_states == UNHEALTHY)) * 2 > n
        return self.doubting
