"""The validated, immutable form of checks.yaml, fleet.yaml and zone.yaml.

Loaders in this package turn YAML into these objects; every other part of
healthplane works only with them. Defaults are written on each field and
match the contract in design.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from healthplane.proto.config.check_table import RowTable

CheckType = Literal["http", "https", "tcp", "grpc", "dns", "calculated"]
IpFamily = Literal["any", "ipv4", "ipv6"]
UnknownAs = Literal["healthy", "unhealthy", "last_known"]
RecordType = Literal["A", "AAAA", "CNAME"]
Policy = Literal["simple", "failover", "weighted", "multivalue"]

PROBE_TYPES: tuple[str, ...] = ("http", "https", "tcp", "grpc", "dns")
CHECK_TYPES: tuple[str, ...] = PROBE_TYPES + ("calculated",)


@dataclass(frozen=True, slots=True)
class Check:
    """One entry of checks.yaml."""

    id: str
    type: CheckType
    host: str | None = None          # IP address or host name; None for calculated
    port: int | None = None
    path: str = "/"                  # http/https request path
    hostname: str | None = None      # Host header and TLS SNI
    search: str | None = None        # must appear in the first 5,120 body bytes
    interval: float = 30.0           # seconds between probes, 1..300
    timeout: float = 4.0             # seconds, <= interval; default min(4, interval)
    failure_threshold: int = 3       # consecutive results to flip state, 1..10
    success_threshold: int | None = None  # consecutive successes to turn healthy
                                          # again, 1..10; None: failure_threshold
    min_votes: int | None = None     # quorum of fresh reporting votes; None: the fleet's
    min_regions: int | None = None   # ... and of regions they come from; None: the fleet's
    regions: tuple[str, ...] = ()    # empty: every region of the fleet
    inverted: bool = False
    disabled: bool = False           # a disabled check is always healthy
    children: tuple[str, ...] = ()   # calculated checks only
    healthy_threshold: int = 1       # calculated: healthy when >= this many children are
    verify_tls: bool = False         # https: verify the certificate (off, as Route 53)
    grpc_service: str = ""           # grpc: service name in the health request
    method: str = "GET"              # http/https: GET or HEAD
    headers: tuple[tuple[str, str], ...] = ()   # http/https: extra request headers, in order
    expected_status: tuple[tuple[int, int], ...] = ((200, 399),)  # http/https: healthy
                                     # status codes, as inclusive ranges
    send: str | None = None          # tcp: bytes sent once connected
    expect: str | None = None        # tcp: must appear in the first 5,120 bytes read
    ip_family: IpFamily = "any"      # which addresses of a host name to probe
    tls: bool = False                # grpc: probe a TLS server
    query_name: str = ""             # dns: the name asked (absolute)
    query_type: str = "A"            # dns: the record type asked
    expect_rcode: str = "NOERROR"    # dns: the response code that is healthy
    line: int = field(default=0, compare=False)  # line of the entry in its file


@dataclass(frozen=True, slots=True)
class Registry:
    """The ordered check registry. A check's index is its position.

    Checks given in any sequence are stored by field (a
    :class:`~healthplane.proto.config.check_table.RowTable`): ``checks[i]``
    makes that Check, and :meth:`column` reads one field of every check
    without making any.
    """

    checks: Sequence[Check]
    version: str                     # hash of the canonical content
    source: str = ""                 # file it was read from, for messages

    def __post_init__(self) -> None:
        if not isinstance(self.checks, RowTable):
            object.__setattr__(self, "checks", RowTable(Check, self.checks))

    @property
    def check_count(self) -> int:
        return len(self.checks)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.column("id"))

    def column(self, name: str, rows: Sequence[int] | np.ndarray | None = None) -> list[Any]:
        """Field name of every check (or of the checks at these indices), in order."""
        return self._table.column(name, None if rows is None else np.asarray(rows))

    def take(self, rows: Sequence[int] | np.ndarray) -> list[Check]:
        """The checks at these indices, made in one pass per field."""
        return self._table.take(np.asarray(rows))

    @property
    def _table(self) -> RowTable[Check]:
        checks = self.checks
        assert isinstance(checks, RowTable)
        return checks

    def index_of(self) -> dict[str, int]:
        """Map of check id to index (build once and keep; not cached here)."""
        return dict(zip(self.column("id"), range(len(self.checks)), strict=True))


@dataclass(frozen=True, slots=True)
class Fleet:
    """fleet.yaml: regions and their checkers, aggregators and timing."""

    regions: dict[str, tuple[str, ...]]   # region -> checker ids, file order
    aggregators: tuple[str, ...]          # HOST:PORT of every aggregator
    checkers_per_region: int = 1
    report_interval: float = 1.0
    tick: float = 1.0
    stale_after: float = 3.0
    healthy_fraction: float = 0.18
    unknown_as: UnknownAs = "last_known"
    canaries: tuple[str, ...] = ()        # HOST:PORT; loader defaults it to aggregators
    allow_private_targets: bool = False
    min_votes: int = 1                    # fewer fresh reporting votes: no data
    min_regions: int = 1                  # votes from fewer regions: no data
    source: str = ""

    @property
    def checker_ids(self) -> tuple[str, ...]:
        """Every checker id, region by region in file order."""
        return tuple(c for ids in self.regions.values() for c in ids)

    def region_of(self, checker_id: str) -> str | None:
        for region, ids in self.regions.items():
            if checker_id in ids:
                return region
        return None


@dataclass(frozen=True, slots=True)
class RecordValue:
    value: str                       # an IPv4 (A) or IPv6 (AAAA) address
    check: str | None = None         # check id; None means always healthy
    weight: int = 1                  # weighted policy only


@dataclass(frozen=True, slots=True)
class Record:
    name: str                        # absolute, lower case, ends with "."
    type: RecordType
    policy: Policy
    values: tuple[RecordValue, ...] = ()   # simple, weighted, multivalue
    primary: RecordValue | None = None     # failover
    secondary: RecordValue | None = None   # failover
    ttl: int | None = None                 # None: the zone's ttl
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Soa:
    """The apex SOA's fixed fields (the serial is the DNS front's to choose)."""

    mname: str | None = None         # None: the first name server
    rname: str | None = None         # None: hostmaster.<zone>
    refresh: int = 3600
    retry: int = 600
    expire: int = 604800
    minimum: int | None = None       # None: the zone's ttl


@dataclass(frozen=True, slots=True)
class NameServer:
    name: str                        # absolute, lower case, ends with "."
    address: str | None = None       # glue, served as an A/AAAA record when in the zone


@dataclass(frozen=True, slots=True)
class Tsig:
    name: str                        # key name, absolute
    algorithm: str                   # e.g. hmac-sha256
    secret: str                      # base64


@dataclass(frozen=True, slots=True)
class Transfer:
    """Serve AXFR/IXFR to ``allow`` and NOTIFY ``notify`` when an answer changes."""

    allow: tuple[str, ...]           # networks in CIDR form
    notify: tuple[str, ...] = ()     # HOST:PORT of each secondary
    tsig: Tsig | None = None


@dataclass(frozen=True, slots=True)
class Zone:
    zone: str                        # absolute, lower case, ends with "."
    records: tuple[Record, ...]
    ttl: int = 30
    source: str = ""
    soa: Soa = Soa()
    nameservers: tuple[NameServer, ...] = ()   # empty: ns1.<zone>, no glue
    transfer: Transfer | None = None
