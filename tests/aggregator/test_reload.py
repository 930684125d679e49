"""Config reload: adopt only a valid new version, keep the previous one remapped."""

from __future__ import annotations

import asyncio

from healthplane.aggregator.reload import adopt_into
from healthplane.aggregator.server import run_aggregator
from healthplane.proto.config.errors import ConfigError

from healthplane.runtime.clock import FakeClock
from healthplane.runtime.reload import Reloader
from tests.aggregator.conftest import make_fleet, make_registry, report, snap


def config_reloader(agg, load, period: float, clock, **kw) -> Reloader:
    """The reloader the command line builds, with load and fingerprint given."""
    return Reloader("config", load, lambda new: adopt_into(agg, new), clock=clock,
                    period=period, count=lambda result: agg.reloads.update([result]), **kw)


OLD = make_registry(("a", "b", "c"), version="old")
NEW = make_registry(("c", "a", "d"), version="new")
FLEET = make_fleet()


async def test_bad_config_is_counted_and_the_running_one_stays():
    def broken():
        raise ConfigError(["checks.yaml:3: checks[0].port: must be 1..65535"])

    async with run_aggregator(OLD, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg:
        reloader = config_reloader(agg, broken, 0, agg.clock)
        assert await reloader.reload_once() == "failed"
        assert agg.state.registry is OLD and agg.reloads["failed"] == 1


async def test_same_config_is_unchanged_and_new_one_adopted():
    current = [(OLD, FLEET)]
    async with run_aggregator(OLD, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg:
        reloader = config_reloader(agg, lambda: current[0], 0, agg.clock)
        assert await reloader.reload_once() == "unchanged"
        # A checker's vote from before the reload is carried over by id.
        await report(agg.port, [snap("use1-a", "us-east", OLD, [2, 1, 2])])
        current[0] = (NEW, FLEET)
        assert await reloader.reload_once() == "adopted"
        assert agg.state.registry is NEW
        pub = agg.on_tick()
        assert pub.registry is NEW
        # c unhealthy, a unhealthy (carried over), d never seen: healthy.
        from healthplane.proto import codec
        assert codec.decode(pub.states, 3).tolist() == [2, 2, 1]
        # A checker still on the old registry is remapped, not dropped.
        summary = await report(agg.port, [snap("use1-b", "us-east", OLD, [1, 1, 1])])
        assert summary.accepted == 1 and agg.state.counters.remapped == 1


async def test_fleet_change_keeps_slots_of_remaining_checkers_and_tick_sequence():
    smaller = make_fleet(regions={"us-east": ("use1-a",)}, tick=0.5)
    async with run_aggregator(OLD, FLEET, clock=FakeClock()) as agg:
        await report(agg.port, [snap("use1-a", "us-east", OLD, [2, 2, 2]),
                                snap("euw1-a", "eu-west", OLD, [1, 1, 1])])
        for _ in range(50):
            await asyncio.sleep(0)
        seq_before = agg.state.sequence
        assert seq_before >= 1
        reloader = config_reloader(agg, lambda: (OLD, smaller), 0, agg.clock)
        assert await reloader.reload_once() == "adopted"
        assert agg.state.checker_ids == ("use1-a",)
        assert agg.tick_loop.interval == 0.5
        for _ in range(50):
            await asyncio.sleep(0)
        assert agg.state.sequence > seq_before
        summary = await report(agg.port, [snap("euw1-a", "eu-west", OLD, [1, 1, 1])])
        assert summary.dropped == 1
        pub = agg.state.latest
        assert pub.fresh_checkers == 1


async def test_periodic_and_triggered_reloads_run_on_the_clock():
    clock = FakeClock()
    calls = []

    def load():
        calls.append(clock.now())
        return OLD, FLEET

    async with run_aggregator(OLD, FLEET, clock=clock, start_ticking=False) as agg:
        reloader = config_reloader(agg, load, 10.0, clock)
        task = asyncio.create_task(reloader.run())
        await asyncio.sleep(0.01)
        assert calls == []
        reloader.trigger()
        for _ in range(100):
            await asyncio.sleep(0.001)
            if calls:
                break
        assert len(calls) == 1
        await clock.advance(10.0)
        for _ in range(100):
            await asyncio.sleep(0.001)
            if len(calls) == 2:
                break
        assert len(calls) == 2 and agg.reloads["unchanged"] == 2
        task.cancel()


async def test_periodic_reload_parses_nothing_while_the_files_are_unchanged(tmp_path):
    from healthplane.aggregator.reload import FileSource

    checks, fleet = tmp_path / "checks.yaml", tmp_path / "fleet.yaml"
    checks.write_text("one")
    fleet.write_text("two")
    src = FileSource(str(checks), str(fleet))
    loads = []

    def load():
        loads.append(1)
        return OLD, FLEET

    async with run_aggregator(OLD, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg:
        reloader = config_reloader(agg, load, 10.0, agg.clock, fingerprint=src.fingerprint,
                                   running=src.fingerprint())
        assert await reloader.reload_once() == "unchanged"
        assert loads == []
        checks.write_text("one, edited")
        assert await reloader.reload_once() == "unchanged"  # same config inside
        assert loads == [1]
        assert await reloader.reload_once() == "unchanged"
        assert loads == [1]
        # An operator's SIGHUP always reads the files.
        assert await reloader.reload_once(force=True) == "unchanged"
        assert loads == [1, 1]


async def test_a_registry_too_big_for_the_transport_limit_is_refused():
    from healthplane.aggregator.server import ReloadRefused
    from healthplane.aggregator.state import max_message_bytes

    async with run_aggregator(OLD, FLEET, clock=FakeClock(),
                              start_ticking=False) as agg:
        n = 4 * agg.transport_limit  # far more checks than the limit has room for
        assert max_message_bytes(n) > agg.transport_limit
        huge = make_registry(tuple(f"c{i}" for i in range(n)), version="huge")
        reloader = config_reloader(agg, lambda: (huge, FLEET), 0, agg.clock)
        assert await reloader.reload_once() == "failed"
        assert agg.state.registry is OLD
        try:
            agg.adopt(huge, FLEET)
        except ReloadRefused as exc:
            assert "restart the aggregator" in str(exc)
        else:
            raise AssertionError("adopted a registry over the message limit")
