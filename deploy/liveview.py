"""The demo's live view: check status and votes per region, and DNS answers.

Each frame asks a running aggregator for every check (Health.Query over
gRPC) and the DNS front for every record of the zone (dnspython over UDP),
exactly as an operator would, and then renders either a full ANSI screen
(a terminal) or one compact line (a pipe or a log).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.query
import dns.rcode
import grpc
from healthplane.deploy.launcher import Fleet
from healthplane.proto import codec
from healthplane.proto.healthplane.v1 import healthplane_pb2 as pb
from healthplane.proto.healthplane.v1 import healthplane_pb2_grpc as pb_grpc

VOTE = {codec.UNKNOWN: "?", codec.HEALTHY: "up", codec.UNHEALTHY: "DOWN"}
COLOR = {"healthy": "32", "UNHEALTHY": "31;1", "unknown": "33", "up": "32", "DOWN": "31;1",
         "?": "33"}
MAX_EVENTS = 8


def _shown_status(code: int) -> str:
    """The state's name; an unhealthy one shouts, so it stands out without colour."""
    name = codec.state_name(code)
    return name.upper() if code == codec.UNHEALTHY else name


@dataclass
class CheckRow:
    id: str
    status: str
    healthy_votes: int
    reporting_votes: int
    votes: dict[str, list[str]]          # region -> one vote per checker


@dataclass
class Frame:
    elapsed: float
    aggregator: str | None = None        # which aggregator answered
    sequence: int = 0
    checks: list[CheckRow] = field(default_factory=list)
    dns: list[tuple[str, str, str]] = field(default_factory=list)   # name, type, answer
    events: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)


class LiveView:
    """Collects frames from one fleet; keeps its gRPC channels between frames."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.regions = list(dict.fromkeys(fleet.region_of.values()))
        self.channels = {a: fleet.channel(a) for a in fleet.aggregator_addresses}
        records = fleet.zone_config.records if fleet.zone_config else ()
        self.records = list(dict.fromkeys((r.name, r.type) for r in records))
        # Weighted answers change on every query by design: not worth an event line.
        self.weighted = {r.name for r in records if r.policy == "weighted"}
        self.kinds = {c.id: "disabled" if c.disabled else c.type for c in fleet.registry.checks}
        self.previous: Frame | None = None

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def frame(self, elapsed: float) -> Frame:
        f = Frame(elapsed=elapsed)
        f.dead = [p.name for p in self.fleet.processes() if not p.alive()]
        self._query(f)
        self._resolve(f)
        self._events(f)
        self.previous = f
        return f

    def _query(self, f: Frame) -> None:
        for address, channel in self.channels.items():
            try:
                reply = pb_grpc.HealthStub(channel).Query(pb.QueryRequest(), timeout=0.5)
            except grpc.RpcError:
                continue
            f.aggregator, f.sequence = address, reply.sequence
            for ch in reply.checks:
                votes: dict[str, list[str]] = {r: [] for r in self.regions}
                for v in ch.checkers:
                    votes.setdefault(v.region, []).append(VOTE.get(v.vote, "?"))
                f.checks.append(CheckRow(ch.check_id, _shown_status(ch.status),
                                         ch.healthy_votes, ch.reporting_votes, votes))
            return

    def _resolve(self, f: Frame) -> None:
        if self.fleet.dns_address is None:
            return
        host, port = self.fleet.dns_address
        for name, rtype in self.records:
            try:
                reply = dns.query.udp(dns.message.make_query(name, rtype), host, port=port,
                                      timeout=0.5)
            except (OSError, dns.exception.DNSException) as e:
                f.dns.append((name, rtype, f"({type(e).__name__})"))
                continue
            if reply.rcode() != dns.rcode.NOERROR:
                f.dns.append((name, rtype, dns.rcode.to_text(reply.rcode())))
                continue
            values = sorted(item.address for rrset in reply.answer for item in rrset
                            if hasattr(item, "address"))
            f.dns.append((name, rtype, " ".join(values) or "(no data)"))

    def _events(self, f: Frame) -> None:
        prev = self.previous
        f.events = list(prev.events) if prev else []
        now = time.strftime("%H:%M:%S")
        if prev is not None:
            before = {c.id: c.status for c in prev.checks}
            for c in f.checks:
                if c.id in before and before[c.id] != c.status:
                    f.events.append(f"{now}  {c.id}: {before[c.id]} -> {c.status}")
            answers = {(n, t): a for n, t, a in prev.dns}
            for n, t, a in f.dns:
                if (n, t) in answers and answers[(n, t)] != a and n not in self.weighted:
                    f.events.append(f"{now}  {n} {t}: {answers[(n, t)]} -> {a}")
        f.events = f.events[-MAX_EVENTS:]


def _paint(text: str, word: str, tty: bool) -> str:
    code = COLOR.get(word)
    return f"\x1b[{code}m{text}\x1b[0m" if tty and code else text


def render_screen(f: Frame, view: LiveView, header: list[str]) -> str:
    """A full-screen frame: cursor home, each line cleared, rest of screen cleared."""
    lines = list(header)
    source = f"aggregator {f.aggregator} tick {f.sequence}" if f.aggregator else \
        "no aggregator answering"
    lines.append(f"t={f.elapsed:5.0f}s  {source}")
    lines.append("")
    width = max([len(c.id) for c in f.checks] + [5])
    head = f"{'CHECK':<{width}}  {'KIND':<10}  {'STATUS':<9}  VOTES  " + "".join(
        f"{r:<12}" for r in view.regions)
    lines.append(head)
    for c in f.checks:
        status = _paint(f"{c.status:<9}", c.status, True)
        cells = []
        for r in view.regions:
            # A checker that does not own the check votes unknown: leave it out, so
            # each cell shows the votes that count ("?" only if none does).
            cast = c.votes.get(r, [])
            votes = [v for v in cast if v != "?"] or (["?"] if cast else [])
            text = " ".join(_paint(v, v, True) for v in votes) or "-"
            pad = 12 - (len(" ".join(votes)) if votes else 1)
            cells.append(text + " " * max(1, pad))
        kind = view.kinds.get(c.id, "")
        lines.append(f"{c.id:<{width}}  {kind:<10}  {status}  "
                     f"{c.healthy_votes}/{c.reporting_votes:<3}  "
                     + "".join(cells))
    lines.append("")
    lines.append("DNS answers")
    nwidth = max([len(n) for n, _, _ in f.dns] + [4])
    for name, rtype, answer in f.dns:
        lines.append(f"  {name:<{nwidth}} {rtype:<5} {answer}")
    lines.append("")
    lines.append("Recent changes")
    lines += [f"  {e}" for e in f.events] or ["  (none yet)"]
    if f.dead:
        lines.append("")
        lines.append(_paint(f"exited: {', '.join(f.dead)} (see logs)", "DOWN", True))
    return "\x1b[H" + "".join(line + "\x1b[K\n" for line in lines) + "\x1b[J"


def render_line(f: Frame) -> str:
    """One compact line per frame, for pipes and logs."""
    bad = [c.id for c in f.checks if c.status != "healthy"]
    parts = [f"t={f.elapsed:.0f}s", f"tick={f.sequence}",
             f"agg={f.aggregator or 'none'}",
             f"not-healthy={','.join(bad) or '-'}"]
    for name, rtype, answer in f.dns:
        parts.append(f"{name.split('.')[0]}/{rtype}={answer.replace(' ', ',')}")
    if f.dead:
        parts.append(f"exited={','.join(f.dead)}")
    return "  ".join(parts)
