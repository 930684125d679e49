"""Start each owned check's probe at its slot, and fold the results in.

The hot path of a checker. One loop walks the schedule window by window
(see :mod:`healthplane.checker.schedule`), sleeps until the next slot, and starts every
probe that is due. Rows the compiled probe engine runs are started in one
call per wake-up and report as arrays (:mod:`healthplane.checker.batch`);
for every other probe it creates one task around the prober's coroutine and
appends to a result buffer. Everything else (verdicts, lateness, counters)
is done in numpy batches.

Rules:

* **No catch-up.** A slot reached more than ``late_bound`` after its time
  (``min(interval / 2, late_cap)``, late_cap 0.5 s by default) is skipped
  and counted as missed, so a stall releases at most half a second of
  slots at once. After a long stall whole windows are skipped by
  arithmetic, never replayed.
* **Bounded concurrency.** At most ``limit`` probes are in flight, where
  ``limit`` is rate x timeout (the in-flight count if every probe used its
  whole timeout) with headroom. At the bound, due slots wait for probes to
  finish (looking again every ``resolution``); those that then become too
  late are missed.
* **Timeouts are failures.** Probers finish within their timeout by
  contract; a probe still running ``timeout + grace`` after its start, or
  when its check's next slot comes, is cancelled and counts as a timeout.

The latest probe of each row leaves its detail in per-row arrays, read by
detail reports and metrics: ``outcomes`` (:class:`Outcome` values, -1
before the first result), ``reasons`` (its reason text), ``latencies``
(seconds, NaN before the first result) and ``cert_not_after`` (Unix
seconds the target's TLS certificate expires, NaN when not known).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from healthplane.checker.batch import EngineBatch, gather, run_planned
from healthplane.checker.detail import DetailCursor
from healthplane.checker.fold import carry, fold
from healthplane.checker.probes.base import NO_CERT, Outcome, Prober, ProbeResult
from healthplane.checker.schedule import Schedule, concurrency_limit
from healthplane.checker.thresholds import Verdicts

from healthplane.runtime.clock import Clock, SystemClock

log = logging.getLogger("healthplane.checker")

_BROKEN = ProbeResult(Outcome.ERROR, 0.0, "probe error")

ProbeCounter = Callable[[np.ndarray, np.ndarray], None]
LatenessObserver = Callable[[np.ndarray], None]


class Dispatcher:
    """Probes one set of checks on their schedule and keeps their verdicts.

    ``ids``, ``probers``, ``intervals``, ``timeouts``, ``thresholds`` and
    ``kinds`` are per row: a row is a probed check's position in this
    dispatcher (``row_of[check_id]``), never its registry index, which only
    the caller knows. Verdict states are in ``verdicts.state`` by row; call
    :meth:`flush` before reading them.

    ``ids`` is kept as given (a view of the registry will do: it is read
    to build the schedule, for messages and on reload). A row the compiled
    engine runs keeps no prober object: its spec lives in the engine.
    """

    def __init__(self, *, ids: Sequence[str], probers: Iterable[Prober],
                 intervals: np.ndarray, timeouts: np.ndarray, thresholds: np.ndarray,
                 kinds: np.ndarray, successes: np.ndarray | None = None,
                 checker_id: str, clock: Clock,
                 late_cap: float = 0.5, window: float = 1.0, resolution: float = 0.002,
                 grace: float = 0.25, limit: int | None = None,
                 count_probes: ProbeCounter | None = None,
                 observe_lateness: LatenessObserver | None = None) -> None:
        n = len(ids)
        self.ids = ids
        self.intervals = np.asarray(intervals, dtype=np.float64)
        self.timeouts = np.asarray(timeouts, dtype=np.float64)
        self.kinds = np.asarray(kinds, dtype=np.int8)
        self.schedule = Schedule.build(self.ids, self.intervals, checker_id)
        self.verdicts = Verdicts(np.asarray(thresholds, dtype=np.uint8),
                                 None if successes is None
                                 else np.asarray(successes, dtype=np.uint8))
        self.late_cap = late_cap
        self.grace = grace
        self.limit = limit if limit is not None else concurrency_limit(self.intervals,
                                                                       self.timeouts)
        self.clock = clock
        self.window = min(window, self.schedule.max_window)
        self.resolution = resolution
        self.last_result = np.full(n, -np.inf)   # clock time of each row's latest result
        self.details = DetailCursor()            # which rows the next report details
        self._started: dict[int, float] = {}     # Python-probed row -> start of its running probe
        # Python-probed rows only, by row: the running task, and a count of
        # starts that tells a finished task from its successor.
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._gen: dict[int, int] = {}
        self._res_rows: list[int] = []
        self._res: list[ProbeResult] = []
        self._res_at: list[float] = []           # when each buffered result came in
        self.outcomes = np.full(n, -1, dtype=np.int8)
        self.reasons: list[str] = [""] * n
        self.latencies = np.full(n, np.nan, dtype=np.float32)
        self._certs: np.ndarray | None = None    # cert_not_after, once a probe saw one
        self._count_probes = count_probes
        self._observe_lateness = observe_lateness
        self._last_flush = -np.inf
        self._stopped = False
        # Taken one at a time: a row the engine runs keeps no prober, so
        # a generator of probers is never all in memory at once.
        self._batch, self._probers = EngineBatch.build(probers)
        # The engine times the starts itself when it runs every row on the
        # real clock (its timer is CLOCK_MONOTONIC, which SystemClock reads).
        self._planned = (self._batch is not None and self._batch.every_row
                         and type(clock) is SystemClock)
        self._py_in_flight = 0
        self.launched = 0      # probes started
        self.missed = 0        # slots skipped
        self.finished = 0      # results folded into verdicts
        self.expired_results = 0   # results too old when folded (a stall came between)

    @property
    def late_bound(self) -> np.ndarray:
        """Per row, how late a slot may start before it is skipped."""
        return self.late_bound_of(None)

    def late_bound_of(self, rows: np.ndarray | None) -> np.ndarray:
        """late_bound of these rows (None: every row). Computed, not kept:
        at a few bytes a row, what a row keeps is what a checker costs."""
        intervals = self.intervals if rows is None else self.intervals[rows]
        return np.minimum(intervals / 2, self.late_cap)

    @property
    def max_late_bound(self) -> float:
        """The largest late_bound of any row (0 with no rows)."""
        return min(float(self.intervals.max()) / 2, self.late_cap) if len(self.ids) else 0.0

    def skip_stalled(self, t0: float, max_bound: float) -> float:
        """Where the window starting at t0 should start now: after a stall,
        every whole window already too late to run anything in is skipped,
        its slots counted as missed (never replayed)."""
        behind = math.floor((self.clock.now() - max_bound - t0) / self.window)
        if behind <= 0:
            return t0
        jump = t0 + behind * self.window
        self.missed += self.schedule.count_slots(t0, jump)
        return jump

    def stale_bound(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Per row (these rows, None: every row), how old its latest result may
        be before the row counts as not judged lately: two slots and a timeout."""
        if rows is None:
            return 2 * self.intervals + self.timeouts + self.grace
        return 2 * self.intervals[rows] + self.timeouts[rows] + self.grace

    @property
    def row_of(self) -> dict[str, int]:
        """Map of check id to row, built per call (bind it once)."""
        return dict(zip(self.ids, range(len(self.ids)), strict=True))

    @property
    def in_flight(self) -> int:
        """Probes running now, on either path."""
        batch = self._batch
        return self._py_in_flight + (batch.in_flight if batch is not None else 0)

    # -- results ----------------------------------------------------------

    async def _one(self, row: int, gen: int) -> None:
        begun = self.clock.now()
        try:
            prober = self._probers[row]
            assert prober is not None, "an engine row is never run here"
            result = await prober()
            if self.clock.now() - begun > self.timeouts[row] + self.grace:
                # Finished past its deadline: the process was stopped or
                # starved while the answer waited in a socket buffer. That
                # answer is from before the pause; read after it, it would
                # rebuild a reset verdict from old evidence.
                result = ProbeResult(Outcome.TIMEOUT, float(self.timeouts[row]), "timeout")
        except asyncio.CancelledError:
            # Cancelled for overrunning its timeout (or at shutdown).
            result = ProbeResult(Outcome.TIMEOUT, float(self.timeouts[row]), "timeout")
        except Exception as exc:  # a prober broke its never-raise contract
            log.debug("probe %s raised %r", self.ids[row], exc)
            result = _BROKEN
        if self._gen.get(row) == gen:
            self._tasks.pop(row, None)
            self._started.pop(row, None)
        if self._stopped:
            return
        self._res_rows.append(row)
        self._res.append(result)
        self._res_at.append(self.clock.now())
        self._py_in_flight -= 1

    def flush(self) -> None:
        """Fold buffered results into verdicts, per-row detail and counters."""
        batch = self._batch
        if self._planned and batch is not None:
            lateness, launched, missed = batch.take_schedule()
            self.launched += launched
            self.missed += missed
            if self._observe_lateness is not None and lateness.size:
                self._observe_lateness(lateness)
        if not self._res_rows and (batch is None or not batch.pending):
            self._last_flush = self.clock.now()
            return
        rows, codes, latencies, certs, reasons, came = gather(batch, self._res_rows, self._res,
                                                              self._res_at)
        self._res_rows = []
        self._res = []
        self._res_at = []
        now = self._last_flush = self.clock.now()
        expired = (now - came) > self.stale_bound(rows)
        if expired.any():
            # Read before a stall and folded only after it: evidence from
            # before the pause, which must not rebuild a verdict after it.
            self.expired_results += int(np.count_nonzero(expired))
            keep = np.flatnonzero(~expired)
            rows, codes, latencies, certs = rows[keep], codes[keep], latencies[keep], certs[keep]
            reasons = [reasons[i] for i in keep.tolist()]
            if not rows.size:
                return
        fold(self, rows, codes, latencies, certs, reasons)

    @property
    def cert_not_after(self) -> np.ndarray:
        """Per row, Unix seconds its latest TLS certificate expires (NaN: none
        seen). Kept only once some probe has seen one: most rows never do."""
        if self._certs is None:
            return np.full(len(self.outcomes), NO_CERT)
        return self._certs

    def note_certs(self, rows: np.ndarray, not_after: np.ndarray) -> None:
        """Set cert_not_after of these rows."""
        if self._certs is None:
            if np.isnan(not_after).all():
                return
            self._certs = np.full(len(self.outcomes), NO_CERT)
        self._certs[rows] = not_after

    def cert_days_left(self, wall_now: float) -> np.ndarray:
        """Days until each row's latest TLS certificate expires (NaN: none seen)."""
        return (self.cert_not_after - wall_now) / 86400.0

    def certificates_expiring(self, seconds: float, wall_now: float) -> int:
        """Rows whose latest TLS certificate expires within `seconds` of wall_now."""
        if self._certs is None:
            return 0
        with np.errstate(invalid="ignore"):
            return int(np.count_nonzero(self._certs - wall_now < seconds))

    def stale(self, now: float) -> np.ndarray:
        """Rows with no result in their last two slots (plus timeout): not judged lately."""
        return (now - self.last_result) > self.stale_bound()

    # -- the loop ---------------------------------------------------------

    def stop(self) -> None:
        """Stop starting probes and cancel those in flight (results dropped)."""
        self._stopped = True
        if self._batch is not None:
            self._batch.detach()
        for task in list(self._tasks.values()):
            task.cancel()

    async def run(self, start: float | None = None) -> None:
        """Probe on schedule until stop(). Windows start at `start` (default now)."""
        t0 = self.clock.now() if start is None else start
        if self._batch is not None and not self._stopped:
            self._batch.attach(asyncio.get_running_loop(), self.clock.now)
            # Timers in planned mode wait up to 5 ms for company (lateness
            # stays far inside its bound); the grace rule is the one _one applies.
            self._batch.configure(self.limit, max(self.resolution, 0.005) if self._planned
                                  else 0.0, self.grace)
            if self._planned:
                await run_planned(self, t0)
                return
        max_bound = self.max_late_bound
        while not self._stopped:
            if not self.ids:
                await self.clock.sleep_until(self.clock.now() + self.window)
                t0 = self.clock.now()
                continue
            t0 = self.skip_stalled(t0, max_bound)
            t1 = t0 + self.window
            times, rows = self.schedule.slots_in(t0, t1)
            if times.size:
                await self._run_window(times, rows)
            else:
                # Nothing due: wait the window out rather than racing ahead,
                # so housekeeping (timeouts, flushes) keeps its pace.
                await self.clock.sleep_until(t1)
            self._housekeeping()
            t0 = t1

    async def _run_window(self, times: np.ndarray, rows: np.ndarray) -> None:
        i, n = 0, times.size
        while i < n and not self._stopped:
            now = self.clock.now()
            j = int(np.searchsorted(times, now, side="right"))
            if j > i:
                i = self._launch(times, rows, i, j, now)
                if i < j:
                    await self._wait_capacity()
                    continue
            done = len(self._res_rows) + (self._batch.pending if self._batch else 0)
            if done >= 512 or now - self._last_flush >= 0.25:
                # Keep verdicts and counters no more than a quarter second
                # behind, without paying numpy overhead on every wake-up.
                self.flush()
            if i < n:
                # Sleeping at least `resolution` batches slots that are
                # microseconds apart into one wake-up.
                await self.clock.sleep_until(max(float(times[i]), now + self.resolution))

    def _launch(self, times: np.ndarray, rows: np.ndarray, i: int, j: int, now: float) -> int:
        """Start the due slots times[i:j]; return the position of the first not handled."""
        due_rows = rows[i:j]
        late = now - times[i:j]
        keep = late <= self.late_bound_of(due_rows)
        ok_pos = np.flatnonzero(keep)
        room = self.limit - self.in_flight
        stop = j - i
        if ok_pos.size > room:
            stop = int(ok_pos[room]) if room >= 0 else int(ok_pos[0])
            ok_pos = ok_pos[:max(room, 0)]
        self.missed += int(stop - np.count_nonzero(keep[:stop]))
        if ok_pos.size:
            start = due_rows[ok_pos]
            self._start_probes(start, now)
            if self._observe_lateness is not None:
                self._observe_lateness(late[ok_pos])
        return i + stop

    def _start_probes(self, rows: np.ndarray, now: float) -> None:
        self.launched += rows.size
        batch = self._batch
        if batch is not None:
            mine, rows = batch.split(rows)
            batch.start(mine)
        create = asyncio.get_running_loop().create_task
        tasks, gens, one, started = self._tasks, self._gen, self._one, self._started
        for row in rows.tolist():
            started[row] = now
            previous = tasks.get(row)
            if previous is not None:
                # Its next slot came and it is still running: past its timeout.
                previous.cancel()
            gen = gens.get(row, 0) + 1
            gens[row] = gen
            tasks[row] = create(one(row, gen))
        self._py_in_flight += rows.size

    async def _wait_capacity(self) -> None:
        """At the bound: look again one resolution step later.

        Slots that became too late meanwhile are then skipped and counted by
        :meth:`_launch`. Polling, not a wake-up per finished probe: at the
        bound probes finish one at a time, and a wake-up (a future, a timer
        task and a numpy pass over the waiting slots) for each cost several
        times the probe itself, just when the checker is already short of
        room or CPU. Each step starts every waiting probe that fits.
        """
        await self.clock.sleep_until(self.clock.now() + self.resolution)

    def _housekeeping(self) -> None:
        self.flush()
        now = self.clock.now()
        timeouts, grace = self.timeouts, self.grace
        overdue = [row for row, t in self._started.items() if t + timeouts[row] + grace < now]
        for row in overdue:
            task = self._tasks.get(row)
            if task is not None:
                task.cancel()
            del self._started[row]

    # -- reload -----------------------------------------------------------

    def carry_from(self, old: Dispatcher) -> None:
        """Adopt verdicts and freshness of checks that kept their id."""
        carry(self, old)
