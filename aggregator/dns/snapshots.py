"""Health.Watch messages into :class:`Snapshot` values, for the consumer.

:class:`SnapshotDecoder` validates one message against the check ids it holds
for the message's registry version (ids travel only when asked for), decodes
the states into one byte per check, and learns the aggregator's tick period
from consecutive snapshots. It does no I/O: the consumer's watch loop feeds
it and decides what to do with a None (resubscribe for ids, or count it and
wait for the next tick).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import median

from healthplane.proto import codec
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb

log = logging.getLogger("healthplane.aggregator.dns.consumer")

UNKNOWN = codec.UNKNOWN


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One decoded aggregator health snapshot."""

    source: str                      # HOST:PORT of the aggregator it came from
    registry_version: str
    sequence: int                    # the aggregator's tick number
    generated_unix_ms: int
    check_count: int
    states: bytes                    # one byte per check: 0 unknown, 1 healthy, 2 unhealthy
    index: Mapping[str, int] = field(repr=False)  # check id -> position
    received: float = 0.0            # consumer clock reading when accepted

    def status(self, check_id: str) -> int:
        """The check's state (UNKNOWN for an id this registry does not have)."""
        i = self.index.get(check_id)
        return UNKNOWN if i is None else self.states[i]


class SnapshotDecoder:
    """Check ids per registry version, message validation, the learned tick period."""

    def __init__(self) -> None:
        self.ids: dict[str, Mapping[str, int]] = {}   # registry version -> index
        self.want_ids = True        # the next subscription should ask for check ids
        self.periods: list[float] = []   # the last tick periods seen, in seconds
        self.malformed = 0          # messages dropped as malformed

    def period(self, default: float) -> float:
        """The learned tick period (the median of the last few), or default."""
        return median(self.periods) if self.periods else default

    def decode(self, address: str, msg: pb.HealthSnapshot, held: Snapshot | None,
               now: float, learn: bool) -> Snapshot | None:
        """The snapshot in msg from address, or None when unusable.

        ``held`` is the snapshot the consumer holds now; ``learn``: msg follows
        another message of the same stream (so the two tell a period) and the
        period is not fixed.
        """
        version = msg.registry_version
        if msg.check_ids:
            if len(msg.check_ids) != msg.check_count:
                self.malformed += 1
                log.warning("snapshot dropped: check ids do not match check_count",
                            extra={"aggregator": address, "check_ids": len(msg.check_ids),
                                   "check_count": msg.check_count})
                return None
            if version not in self.ids:
                # Keep the current and the new version only: a registry change
                # must not grow memory without bound.
                keep: dict[str, Mapping[str, int]] = {
                    version: {cid: i for i, cid in enumerate(msg.check_ids)}}
                held_version = held.registry_version if held else None
                if held_version in self.ids:
                    keep[held_version] = self.ids[held_version]
                self.ids = keep
        index = self.ids.get(version)
        if index is None:
            self.want_ids = True
            return None
        if len(index) != msg.check_count:
            self.malformed += 1
            return None
        try:
            states = codec.decode(msg.states, msg.check_count).tobytes()
        except codec.SnapshotError as exc:
            self.malformed += 1
            log.warning("malformed snapshot dropped", extra={
                "aggregator": address, "tick": msg.sequence, "error": str(exc)})
            return None
        self.want_ids = False
        if learn and held is not None and held.source == address \
                and msg.sequence > held.sequence:
            period = (msg.generated_unix_ms - held.generated_unix_ms) / 1000.0 \
                / (msg.sequence - held.sequence)
            if 0.001 <= period <= 3600:
                self.periods = (self.periods + [period])[-9:]
        return Snapshot(
            source=address, registry_version=version, sequence=msg.sequence,
            generated_unix_ms=msg.generated_unix_ms, check_count=msg.check_count,
            states=states, index=index, received=now)
