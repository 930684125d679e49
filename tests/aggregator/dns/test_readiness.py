"""The DNS front's /readyz: not before a fresh snapshot, then for good."""

from __future__ import annotations

from healthplane.aggregator.dns.metrics import DnsReadiness


class Consumer:
    def __init__(self) -> None:
        self.snapshot_age: float | None = None
        self.current: str | None = None

    def age(self) -> float | None:
        return self.snapshot_age


def test_ready_from_the_first_fresh_snapshot_and_then_for_good() -> None:
    consumer = Consumer()
    ready = DnsReadiness(consumer, stale_after=30.0)  # type: ignore[arg-type]
    assert ready() == (False, "no health snapshot yet")
    consumer.snapshot_age = 45.0                # held, but already stale
    assert ready()[0] is False and "over --stale-after" in ready()[1]
    consumer.snapshot_age, consumer.current = 0.4, "127.0.0.1:7000"
    assert ready() == (True, "snapshot 0.4 s old from 127.0.0.1:7000")
    consumer.snapshot_age = 600.0               # failing open now: still serving, still ready
    assert ready()[0] is True


def test_stale_after_zero_never_calls_a_snapshot_stale() -> None:
    consumer = Consumer()
    consumer.snapshot_age = 10_000.0
    assert DnsReadiness(consumer, stale_after=0.0)()[0] is True  # type: ignore[arg-type]
