"""PowerDNS's remote backend protocol, answered from the same AnswerTable as the front.

PowerDNS (``launch=remote``, ``remote-connection-string=unix:path=PATH``)
sends one JSON object per request over a Unix socket and reads one JSON
object back. Implemented: ``initialize``, ``getAllDomains``,
``getDomainInfo``, ``lookup`` (any qtype including ANY, which PowerDNS uses
for almost every query, and SOA), ``list`` (so PowerDNS can serve AXFR: the
zone as it would be answered now; an empty non-terminal is returned as an
``ENT`` record, else PowerDNS would answer it NXDOMAIN), and
``getAllDomainMetadata`` /
``getDomainMetadata`` (no metadata). Anything else gets ``{"result": false}``,
which PowerDNS reads as "not supported".

Bad input never costs more than its bytes: a request longer than
``MAX_REQUEST`` closes the connection, and anything that is not a JSON
object with a method is answered ``false`` and counted in :attr:`stats`.
No I/O beyond the socket: the table is swapped whole by the keeper.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
import stat
from collections import Counter
from collections.abc import Callable
from typing import Any

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from .answers import AnswerTable
from .transfer import zone_rrsets

log = logging.getLogger("healthplane.pdns")

MAX_REQUEST = 64 * 1024        # far above any PowerDNS request; a longer one is not read
DOMAIN_ID = 1
_FALSE = b'{"result":false}\n'


def _records(rrsets: list[dns.rrset.RRset], domain_id: int | None = None) -> list[dict[str, Any]]:
    out = []
    for rrset in rrsets:
        qtype = dns.rdatatype.to_text(rrset.rdtype)
        name = rrset.name.to_text()
        for rd in rrset:
            rec: dict[str, Any] = {"qtype": qtype, "qname": name, "content": rd.to_text(),
                                   "ttl": rrset.ttl, "auth": True}
            if domain_id is not None:
                rec["domain_id"] = domain_id
            out.append(rec)
    return out


class RemoteBackend:
    """Turns one remote-backend request into its reply, from ``table()``."""

    def __init__(self, table: Callable[[], AnswerTable]) -> None:
        self.table = table
        self.stats: Counter[str] = Counter()   # methods answered, "malformed", "oversized"

    def _domain(self, table: AnswerTable) -> dict[str, Any]:
        return {"id": DOMAIN_ID, "zone": table.origin.to_text(), "kind": "native",
                "serial": table.serial, "notified_serial": table.serial,
                "last_check": 0, "masters": []}

    def reply(self, line: bytes) -> bytes:
        """The reply (one JSON line) to one request line; never raises."""
        try:
            request = json.loads(line)
            method = request["method"]
            params = request.get("parameters") or {}
            if not isinstance(method, str) or not isinstance(params, dict):
                raise TypeError("method and parameters")
        except (ValueError, TypeError, KeyError, RecursionError):
            self.stats["malformed"] += 1
            return _FALSE
        try:
            result = self._dispatch(method, params)
        except (ValueError, TypeError, KeyError, dns.exception.DNSException):
            self.stats["malformed"] += 1
            return _FALSE
        except Exception:  # a bug costs one answer, never the backend
            log.exception("remote backend request %s failed", method[:40])
            self.stats["error"] += 1
            return _FALSE
        self.stats[method if len(method) < 40 else "other"] += 1
        return json.dumps({"result": result}, separators=(",", ":")).encode() + b"\n"

    def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        table = self.table()
        if method == "lookup":
            return self._lookup(table, params) or False
        if method == "initialize":
            return True
        if method == "getAllDomains":
            return [self._domain(table)]
        if method == "getDomainInfo":
            name = dns.name.from_text(str(params["name"]))
            return self._domain(table) if name == table.origin else False
        if method == "list":
            name = dns.name.from_text(str(params.get("zonename", "")))
            if name != table.origin:
                return False
            rrsets = zone_rrsets(table)
            return _records(rrsets, DOMAIN_ID)
        return False   # getAllDomainMetadata, getDomainMetadata and the rest

    def _lookup(self, table: AnswerTable, params: dict[str, Any]) -> list[dict[str, Any]]:
        qname = dns.name.from_text(str(params["qname"]))
        qtype = dns.rdatatype.from_text(str(params["qtype"]))
        found = table.lookup(qname, qtype, full_any=True)
        if found.negative and found.rcode == dns.rcode.NOERROR and qtype == dns.rdatatype.ANY:
            # A name with nothing of its own but names below it (RFC 8020): PowerDNS
            # must not call it NXDOMAIN, or resolvers would prune everything under it.
            return [{"qtype": "ENT", "qname": qname.to_text(), "content": "",
                     "ttl": table.soa.ttl, "auth": True}]
        if found.negative or not found.answer:
            return []
        # Owners as asked: the prebuilt answers carry the record's own spelling.
        records = _records(found.rrsets)
        asked = qname.to_text()
        for rec in records:
            rec["qname"] = asked
        return records


class _Connection(asyncio.Protocol):
    def __init__(self, backend: RemoteBackend) -> None:
        self.backend = backend
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        transport = self.transport
        assert transport is not None
        while (end := self.buf.find(b"\n")) >= 0:
            line = bytes(self.buf[:end])
            del self.buf[:end + 1]
            if line.strip():
                transport.write(self.backend.reply(line))
        if len(self.buf) > MAX_REQUEST:
            self.backend.stats["oversized"] += 1
            transport.close()
            self.buf.clear()
        elif self.buf.strip().endswith(b"}"):
            # A connector that sends no newline: a complete object stands alone.
            try:
                json.loads(self.buf)
            except ValueError:
                return
            transport.write(self.backend.reply(bytes(self.buf)))
            self.buf.clear()


def _listened_on(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)          # a local connect: instant, unless a backlog is full
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True                # busy (backlog full) or timed out: someone is there
    finally:
        probe.close()
    return True


async def serve_unix(backend: RemoteBackend, path: str, mode: int = 0o666) -> asyncio.Server:
    """Listen on the Unix socket ``path`` (a stale socket there is replaced).

    A socket someone still listens on is a running backend's: taking it over
    would cut PowerDNS off from that one, and its exit would then remove
    ours. It is refused with EADDRINUSE instead.
    """
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            if _listened_on(path):
                raise OSError(errno.EADDRINUSE, "a running backend listens there", path)
            os.unlink(path)
    except FileNotFoundError:
        pass
    loop = asyncio.get_running_loop()
    server = await loop.create_unix_server(lambda: _Connection(backend), path)
    os.chmod(path, mode)
    return server
