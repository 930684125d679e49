"""A small authoritative DNS server for tests, written with dnspython, on loopback UDP.

Answers by name: ``ok.<zone>`` NOERROR with an A record, ``broken.<zone>``
SERVFAIL, ``silent.<zone>`` nothing, ``forged.<zone>`` first a reply with
a wrong id and one with a wrong question, then the real answer,
``flood.<zone>`` 200 replies with a wrong id before the real one; anything
else NXDOMAIN; with ``rcode`` set, every query gets that rcode. Runs in
its own thread with its own event loop, so both the in-process probe tests
and the end-to-end fleet can use it.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import dns.message
import dns.rcode
import dns.rrset


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - a test server ignores garbage
            return
        self.server.queries += 1
        name = query.question[0].name.to_text().lower()
        label = name.split(".", 1)[0]
        if label == "silent":
            return
        response = dns.message.make_response(query)
        if self.server.rcode is not None:
            response.set_rcode(self.server.rcode)
        elif label == "ok":
            response.answer.append(dns.rrset.from_text(name, 30, "IN", "A", "192.0.2.1"))
        elif label == "broken":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif label == "flood":
            fake = dns.message.make_response(query)
            fake.id = (query.id + 1) % 0x10000
            for _ in range(200):
                self.transport.sendto(fake.to_wire(), addr)  # type: ignore[attr-defined]
        elif label == "forged":
            wrong_id = dns.message.make_response(query)
            wrong_id.id = (query.id + 1) % 0x10000
            wrong_q = dns.message.make_response(dns.message.make_query("other.test.", "A"))
            wrong_q.id = query.id
            for fake in (wrong_id, wrong_q):
                self.transport.sendto(fake.to_wire(), addr)  # type: ignore[attr-defined]
            response.answer.append(dns.rrset.from_text(name, 30, "IN", "A", "192.0.2.1"))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(response.to_wire(), addr)  # type: ignore[attr-defined]


class DnsServer:
    """``with DnsServer("127.0.0.1") as s: s.port``; also "::1"."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.queries = 0
        self.rcode: int | None = None    # set: every query gets this rcode
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> DnsServer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "dns server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.host, self.port), family=family)
        self.port = transport.get_extra_info("sockname")[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            transport.close()
