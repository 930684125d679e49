"""The high-water marks and the stream admission, as pure logic."""

from __future__ import annotations

import logging

import pytest
from healthplane.aggregator.limits import Admission, Limits
from healthplane.aggregator.sequence import SequenceMarks

from healthplane.runtime.grpclog import _FILTER, escape

STALE = 3.0


@pytest.mark.parametrize(("mark", "incoming", "now", "admitted"), [
    (None, (5, 1), 0.0, True),            # first snapshot of a checker
    ((5, 10), (5, 11), 0.0, True),        # the next one
    ((5, 10), (5, 10), 0.0, False),       # the same one again (a replay)
    ((5, 10), (5, 9), 0.0, False),        # an older one
    ((5, 10), (6, 1), 0.0, True),         # a restarted checker
    ((6, 1), (5, 10**9), 0.0, False),     # the old run after the restart
    ((6, 1), (5, 10**9), 99.0, False),    # ... however long it waits
    ((0, 100), (0, 3), 1.0, False),       # no incarnation: a lower sequence while live
    ((0, 100), (0, 3), 3.5, True),        # ... is a restart once the slot went stale
    ((5, 100), (0, 3), 99.0, False),      # a downgrade cannot undercut a real incarnation
])
def test_marks(mark, incoming, now, admitted):
    marks = SequenceMarks()
    if mark is not None:
        marks.record("c", *mark, 0.0)
    assert marks.admits("c", *incoming, now, STALE) is admitted
    assert marks.admits("other", *incoming, now, STALE)


def test_admission_total_and_per_client():
    adm = Admission("Watch", total=3, per_peer=2)
    assert adm.acquire("a") is None and adm.acquire("a") is None
    assert "from this client" in (adm.acquire("a") or "")
    assert adm.acquire("b") is None
    assert "on this aggregator" in (adm.acquire("c") or "")
    assert dict(adm.refused) == {"per_client": 1, "total": 1}
    adm.release("a")
    assert adm.acquire("c") is None
    # Without identities (plaintext) only the total applies.
    plain = Admission("Report", total=2, per_peer=1)
    assert plain.acquire(None) is None and plain.acquire(None) is None
    assert plain.acquire(None) is not None


def test_limits_derive_the_stream_cap_from_the_fleet():
    lim = Limits().for_fleet(10)
    assert lim.max_streams == 36
    assert lim.max_rpcs() == 36 + lim.max_watchers + lim.max_unary
    options = dict(lim.server_options())
    assert options["grpc.max_allowed_incoming_connections"] == lim.max_connections
    assert options["grpc.server_handshake_timeout_ms"] == 5000


def test_grpc_records_become_one_escaped_line():
    assert escape("/\udcff\x1b[31m\nforged") == "/\\udcff\\x1b[31m\\x0aforged"
    try:
        raise UnicodeDecodeError("utf-8", b"/\xff\nx", 1, 2, "invalid start byte")
    except UnicodeDecodeError:
        record = logging.getLogger("grpc._cython.cygrpc").makeRecord(
            "grpc._cython.cygrpc", logging.ERROR, __file__, 1, "bad %s", ("/\n\x1b",),
            exc_info=__import__("sys").exc_info())
    assert _FILTER.filter(record)
    assert record.exc_info is None and "\n" not in record.getMessage()
    assert record.getMessage().startswith("bad /\\x0a\\x1b")


def test_peer_host():
    from healthplane.aggregator.limits import _peer_host
    assert _peer_host("ipv4:10.0.0.7:51234") == "10.0.0.7"
    assert _peer_host("ipv6:[::1]:51234") == "::1"
    assert _peer_host("unix:/run/x.sock") == "/run/x.sock"
