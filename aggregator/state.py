"""The aggregator's live state: one slot per checker, the registries it
accepts, and the latest published tick.

Everything here runs on the event loop thread, so ingest writes and the tick
never interleave inside a row. Ingest costs one validation pass and one copy
per snapshot; the tick's cost depends only on (checkers, checks).
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from healthplane.aggregator.detail import DetailEntry, DetailStore
from healthplane.aggregator.remap import Remap, build_remap
from healthplane.aggregator.tick import TickEngine
from healthplane.aggregator.tick_result import TickResult
from healthplane.aggregator.tick_view import TickView
from healthplane.aggregator.votes import SlotMatrix
from healthplane.proto import codec
from healthplane.proto.config.model import Fleet, Registry

from healthplane.runtime.clock import Clock

log = logging.getLogger("healthplane.aggregator")

# Drop reasons, also the values of the metrics label `reason`.
UNKNOWN_CHECKER = "unknown_checker"
REGION_MISMATCH = "region_mismatch"
UNKNOWN_VERSION = "unknown_version"
CHECK_COUNT_MISMATCH = "check_count_mismatch"
WRONG_LENGTH = "wrong_length"
PADDING_SET = "padding_set"
RESERVED_STATE = "reserved_state"
OVERSIZED = "oversized"
MALFORMED = "malformed"
IDENTITY_MISMATCH = "identity_mismatch"   # checker_id not in the stream's certificate
STALE_SEQUENCE = "stale_sequence"         # not newer than the checker's last accepted one
DROP_REASONS = (UNKNOWN_CHECKER, REGION_MISMATCH, UNKNOWN_VERSION, CHECK_COUNT_MISMATCH,
                WRONG_LENGTH, PADDING_SET, RESERVED_STATE, OVERSIZED, MALFORMED,
                IDENTITY_MISMATCH, STALE_SEQUENCE)

# Room for the non-state fields of a CheckerSnapshot (ids, version, numbers)
# on top of the states themselves. Ids are short; this is generous.
MESSAGE_OVERHEAD = 16 * 1024


def max_message_bytes(check_count: int) -> int:
    """The largest CheckerSnapshot that can be valid for check_count checks.

    Larger messages are dropped as ``oversized`` without being parsed.
    """
    return codec.packed_size(check_count) + MESSAGE_OVERHEAD


def transport_limit(check_count: int) -> int:
    """gRPC's max_receive_message_length for a server started with check_count checks.

    Twice the largest valid message: oversized messages up to this size are
    dropped and counted while their stream goes on, anything larger ends the
    stream inside gRPC before it is buffered, and a reload may grow the
    registry up to about twice its size without a restart.
    """
    return 2 * max_message_bytes(check_count)


@dataclass(frozen=True)
class VersionInfo:
    """A registry version whose snapshots the aggregator accepts."""

    version: str
    check_count: int
    remap: Remap | None  # None: the current registry, written as is


@dataclass
class Counters:
    accepted: int = 0
    remapped: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


class AggregatorState:
    """Slots, accepted registry versions, and the latest tick.

    ``sequence`` is the aggregator's one tick counter: the sequence of the
    latest tick, which is also the number of ticks computed, across every
    registry and fleet change.
    """

    # Set by _install for each configuration.
    rows: dict[str, int]                 # checker id -> its row in the slots
    regions: dict[str, str]              # checker id -> its region
    slots: SlotMatrix
    received: np.ndarray                 # per row, when its latest snapshot arrived
    checker_ids: tuple[str, ...]
    versions: dict[str, VersionInfo]
    max_message: int
    index: dict[str, int]                # check id -> its index in the registry
    engine: TickEngine

    def __init__(self, registry: Registry, fleet: Fleet, clock: Clock) -> None:
        self.clock = clock
        self.counters = Counters()
        self.latest: TickResult | None = None
        self.sequence = 0
        self.sequence_base = 0  # the sequence before this process's first tick
        self.changes_total = 0  # status changes over every tick
        self.registry = registry
        self.fleet = fleet
        self.versions: dict[str, VersionInfo] = {}
        self._install(registry, fleet, None)

    # -- configuration ---------------------------------------------------

    def _install(self, registry: Registry, fleet: Fleet, old: AggregatorState | None) -> None:
        """Build slots and engine for (registry, fleet), carrying over what old had."""
        rows = {cid: i for i, cid in enumerate(fleet.checker_ids)}
        regions = {cid: region for region, ids in fleet.regions.items() for cid in ids}
        slots = SlotMatrix(len(fleet.checker_ids), registry.check_count)
        received = np.full(len(rows), -np.inf)
        versions = {registry.version: VersionInfo(registry.version, registry.check_count, None)}
        engine: TickEngine | None = None
        carry: Remap | None = None
        if old is not None and old.registry.version != registry.version:
            # The registry being replaced becomes "previous": its checkers are
            # remapped by id until they reload too.
            carry = build_remap(old.registry.ids, registry)
            versions[old.registry.version] = VersionInfo(
                old.registry.version, old.registry.check_count, carry)
        elif old is not None:
            versions = dict(old.versions)  # same registry: keep accepting its previous one
            if _vote_rule(fleet) == _vote_rule(old.fleet):
                # Same registry and vote rule: keep the engine and with it each
                # check's last known status and last change time.
                engine = old.engine
        if engine is None:
            engine = TickEngine(registry, fleet)
            if old is not None:
                # A new registry or vote rule: the new engine starts from the
                # old one's per-check memory, or under last_known every check
                # without a fresh vote would read "never seen" (healthy) and
                # every last change time would go back to "never". The payload
                # remap already matched the ids: its indices are reused.
                engine.inherit(old.engine, carry.source if carry else None)
        if old is not None:
            # Carry every remaining checker's latest snapshot over, so a reload
            # does not blank the votes until the next reports arrive.
            for cid, old_row in old.rows.items():
                if cid in rows and old.received[old_row] > -np.inf:
                    payload = bytes(old.slots.row(old_row))
                    slots.write(rows[cid], carry(payload) if carry else payload)
                    received[rows[cid]] = old.received[old_row]
        self.rows, self.regions, self.slots, self.received = rows, regions, slots, received
        self.view = TickView(len(rows), codec.packed_size(registry.check_count))
        self.details = DetailStore(len(rows), registry.check_count)
        self.checker_ids = fleet.checker_ids
        self.versions = versions
        self.max_message = max_message_bytes(max(v.check_count for v in versions.values()))
        self.registry, self.fleet = registry, fleet
        self.index = registry.index_of()
        self.engine = engine
        # Report streams end when this moves, so checkers learn the versions.
        self.epoch = getattr(self, "epoch", 0) + 1

    def accepted_versions(self) -> list[str]:
        """The registry versions whose snapshots are accepted, the current one first."""
        return [self.registry.version,
                *(v for v in self.versions if v != self.registry.version)]

    def accept_previous(self, version: str, ids: Sequence[str]) -> None:
        """Also accept snapshots of registry version, whose checks were ids (remapped)."""
        if version in self.versions:
            return
        remap = build_remap(tuple(ids), self.registry)
        self.versions[version] = VersionInfo(version, len(ids), remap)
        self.max_message = max_message_bytes(max(v.check_count for v in self.versions.values()))

    def adopt(self, registry: Registry, fleet: Fleet) -> None:
        """Switch to a new registry and fleet; the old registry stays accepted (remapped)."""
        old = copy.copy(self)  # a shallow view of the state being replaced
        self._install(registry, fleet, old)

    # -- ingest ----------------------------------------------------------

    def accept(self, checker_id: str, region: str, version: str, check_count: int,
               states: bytes, details: Sequence[DetailEntry] = ()) -> str | None:
        """Validate one snapshot and overwrite its checker's slot.

        Returns None when accepted, else the drop reason (already counted).
        Costs O(len(states)) whatever the content.
        """
        reason = self._check(checker_id, region, version, check_count, states)
        if reason is not None:
            self.counters.dropped[reason] += 1
            return reason
        row = self.rows[checker_id]
        info = self.versions[version]
        if info.remap is not None:
            states = info.remap(states)
            self.counters.remapped += 1
        if self.view.wants_copy(row):
            self.view.before_write(row, bytes(self.slots.row(row)))
        self.slots.write(row, states)
        self.received[row] = self.clock.now()
        if details and info.remap is None:
            # Details name checks by index: only those of the current registry.
            self.details.record(row, details, self.received[row])
        self.counters.accepted += 1
        return None

    def _check(self, checker_id: str, region: str, version: str, check_count: int,
               states: bytes) -> str | None:
        row = self.rows.get(checker_id)
        if row is None:
            return UNKNOWN_CHECKER
        if self.regions[checker_id] != region:
            return REGION_MISMATCH
        info = self.versions.get(version)
        if info is None:
            return UNKNOWN_VERSION
        if check_count != info.check_count:
            return CHECK_COUNT_MISMATCH
        if len(states) != codec.packed_size(info.check_count):
            return WRONG_LENGTH
        try:
            codec.validate(states, info.check_count)
        except codec.SnapshotError as exc:
            return PADDING_SET if "padding" in str(exc) else RESERVED_STATE
        return None

    def count_drop(self, reason: str) -> None:
        self.counters.dropped[reason] += 1

    # -- tick ------------------------------------------------------------

    def fresh_mask(self, now: float) -> np.ndarray:
        """Rows whose latest snapshot arrived within stale_after of now."""
        return self.received >= now - self.fleet.stale_after

    def tick(self, warming: bool = False) -> TickResult:
        """Compute the next tick with the engine and make it the latest.

        A tick that raises consumes no sequence number: the next one reuses it.
        warming: mark it as computed during the warm-up (see aggregator.warmstart).
        """
        now = self.clock.now()
        fresh = self.fresh_mask(now)
        result = self.engine.compute(self.slots, fresh, self.clock.wall_ms(),
                                     sequence=self.sequence + 1)
        result.warming = warming
        self.view.on_tick(now, self.received)
        self.sequence = result.sequence
        self.changes_total += result.changed
        self.latest = result
        return result

    # -- per-checker detail ----------------------------------------------

    def checker_detail(self, indices: np.ndarray) -> CheckerDetail:
        """Every checker's vote on each check of indices, and its snapshot's age.

        Both as of the latest tick (see aggregator.tick_view), so they agree
        with that tick's vote counts: a row votes there exactly when its age
        is at most stale_after. The vote is what the checker's snapshot
        said, stale or not; the age tells whether it counted. Cheap (a few
        numpy gathers), so it runs on the event loop; the result is a copy,
        safe to read from another thread.
        """
        view = self.view
        now = view.at
        received = view.received
        never = received == -np.inf
        if len(indices):
            votes = np.stack([view.votes_of(int(i), self.slots.votes_of(int(i)))
                              for i in indices])
        else:
            votes = np.zeros((0, len(self.rows)), dtype=np.uint8)
        votes[:, never] = codec.UNKNOWN
        seen = np.where(never, now, received)  # keeps -inf out of the arithmetic
        ages = np.where(never, -1, np.maximum(0, np.round((now - seen) * 1000))).astype(np.int64)
        live = self.clock.now()
        probes = [[self.details.get(row, int(i), live) for row in range(len(self.rows))]
                  for i in indices]
        return CheckerDetail(self.checker_ids, tuple(self.regions[c] for c in self.checker_ids),
                             votes, ages, probes)


def _vote_rule(fleet: Fleet) -> tuple:
    """What of the fleet the tick engine is built on (besides the slot rows)."""
    return (fleet.healthy_fraction, fleet.unknown_as, fleet.min_votes, fleet.min_regions,
            fleet.regions)


@dataclass(frozen=True)
class CheckerDetail:
    """Per-checker votes for some checks: votes[k, row] for the k-th check asked."""

    checker_ids: tuple[str, ...]
    regions: tuple[str, ...]
    votes: np.ndarray           # uint8 [checks asked, checkers]
    ages_ms: np.ndarray         # int64 per checker; -1 when it never reported
    # Per check asked, per checker: (reason, latency_ms, detail_age_ms), live.
    probes: list[list[tuple[str, float, int]]] = field(default_factory=list)
