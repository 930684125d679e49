"""The common query answered from prebuilt wire bytes, without dnspython.

Nearly every query a front sees has one shape: a header with one question
and no other records but an optional bare EDNS OPT (version 0, no options),
asking for a name of the zone. For that shape the response is fixed once the
(name, type) is known, but for the query id, the RD bit, the client's case
of the name and which EDNS form was asked for; and, where a record draws
among prebuilt answers per query (weighted, multivalue), which answer.
:class:`FastAnswers` keeps, per lower-cased question, every such response
rendered (built on first use from the table, by the same code as the
dnspython path), so a query costs a few slices, one dict lookup and a join.

Anything else (another opcode, more records, EDNS options or a version above
0, an unusual type, ANY, transfers, a name outside the zone, bytes that do
not parse) is declined: :meth:`FastAnswers.answer` returns None and the
caller takes the dnspython path, which has every rule. The two paths are
tested to give the same bytes for every query the fast path takes. The
compiled UDP loop (:mod:`.udp`) reads :attr:`FastAnswers.entries` the same
way, and hands a question it does not find there to :meth:`FastAnswers.answer`.

Why matching lower-cased bytes is exact: ``bytes.lower`` changes only A-Z
(0x41-0x5A, into 0x61-0x7A). A key is a question in wire form lower-cased,
stored only when its label lengths (below 64), type and class bytes are none
of 0x41-0x5A or 0x61-0x7A; so a query byte that lowers to one of those was
that byte already. A query matching a key has the key's very structure, and
labels equal to the key's but for ASCII case, which is how DNS compares names.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

import dns.rcode
import dns.rdatatype

from .answers import AnswerTable, Choice, Lookup
from .render import HEADER, body, header, opt_record, rcode_name, truncates, udp_limit

log = logging.getLogger(__name__)
ENV = "HEALTHPLANE_DNS_FAST_PATH"   # "0": every query parsed by dnspython (to compare)

# Types whose answer is one of the table's plain lookups (no ANY, no transfer,
# no meta type): what resolvers ask an authoritative server for.
FAST_TYPES = frozenset(int(t) for t in (
    dns.rdatatype.A, dns.rdatatype.NS, dns.rdatatype.CNAME, dns.rdatatype.SOA,
    dns.rdatatype.PTR, dns.rdatatype.MX, dns.rdatatype.TXT, dns.rdatatype.AAAA,
    dns.rdatatype.SRV, dns.rdatatype.NAPTR, dns.rdatatype.DS, dns.rdatatype.DNSKEY,
    dns.rdatatype.TLSA, dns.rdatatype.SVCB, dns.rdatatype.CAA))
# Lower-casing the question must leave these alone (see the module's note):
# HTTPS (65, 0x41 'A') lowers into type 97, so it takes the slow path.
assert all(not (0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A)
           for t in FAST_TYPES for b in t.to_bytes(2, "big"))
NEVER = 1 << 16            # a payload size no query has: the UDP form always truncates
ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00\x00\x00"
ONE_QUESTION_OPT = b"\x00\x01\x00\x00\x00\x00\x00\x01"
OPT_HEAD = b"\x00\x00\x29"  # root owner, type OPT
OPT_LEN = 11
# Entries per table, at most: one per (name, type) asked, so a zone of
# thousands of names asked every type still fits; past it a response is
# built for each query anew (and the compiled loop hands it to Python).
MAX_ENTRIES = 1 << 15
MAX_NX_ENTRIES = 1 << 12    # NXDOMAIN questions: endless, so bounded apart

# One response form (no EDNS, or EDNS) of one answer:
#   (need, tcp_fits, stat, head_rd0, head_rd1, tail, tc_head_rd0, tc_head_rd1, tc_tail)
# need: the smallest EDNS payload size (0 without EDNS) with which the UDP
# response fits; heads: header bytes 2..12 with RD clear / set; tail: the
# records and the OPT after the question; tc_*: the truncated response.
Form = tuple[int, bool, str, bytes, bytes, bytes, bytes, bytes, bytes]
# Per prebuilt answer, its two forms; the Choice draws which (None: one answer).
Entry = tuple[Choice | None, tuple[tuple[Form, Form], ...]]


def fast_path_enabled() -> bool:
    return os.environ.get(ENV, "").strip().lower() not in ("0", "false", "no", "off")


class FastAnswers:
    """Prebuilt responses of one :class:`AnswerTable` (a new one per table)."""

    def __init__(self, table: AnswerTable, max_udp: int, stats: Counter[str]) -> None:
        self.table = table
        self.max_udp = max_udp
        self.stats = stats
        self.entries: dict[bytes, Entry] = {}
        self.rng = table.rng
        self._opt = opt_record(max_udp)
        self._origin = table.origin_wire.lower()
        self._nx: dict[int, Entry] = {}     # NXDOMAIN by name length: nothing else varies
        self._nx_keys = 0                   # NXDOMAIN questions in entries

    def answer(self, wire: bytes, tcp: bool = False) -> bytes | None:
        """The response to a query of the common shape; None: take the slow path."""
        try:
            n = len(wire)
            if n < 17 or wire[2] & 0xF8:             # QR or an opcode other than QUERY
                return None
            qe = wire.find(0, 12) + 5               # past the name's end, type and class
            if n == qe:
                if wire[4:12] != ONE_QUESTION:
                    return None
                form_at, payload = 0, 0
            elif n == qe + OPT_LEN:
                if (wire[4:12] != ONE_QUESTION_OPT or wire[qe:qe + 3] != OPT_HEAD
                        or wire[qe + 6] or wire[qe + 9] or wire[qe + 10]):
                    return None                      # EDNS version above 0, or options
                form_at, payload = 1, wire[qe + 3] << 8 | wire[qe + 4]
            else:
                return None
            key = wire[12:qe].lower()
            entry = self.entries.get(key) or self._miss(key)
            if entry is None:
                return None
            choice, answers = entry
            form = answers[0 if choice is None else choice.index(self.rng)][form_at]
            stats = self.stats
            stats[form[2]] += 1
            rd = wire[2] & 1
            if form[1] if tcp else payload >= form[0]:
                return b"".join((wire[:2], form[4] if rd else form[3], wire[12:qe], form[5]))
            stats["truncated"] += 1
            return b"".join((wire[:2], form[7] if rd else form[6], wire[12:qe], form[8]))
        except Exception:  # a bug must cost the fast path one query, never the answer
            log.exception("fast path failed; the query takes the dnspython path")
            self.stats["error"] += 1
            return None

    # -- building ----------------------------------------------------------

    def _miss(self, key: bytes) -> Entry | None:
        """Build the entry of a question not seen under this table yet."""
        if key[-2:] != b"\x00\x01" or len(key) < 5:            # class IN only
            return None
        qtype = key[-4] << 8 | key[-3]
        if qtype not in FAST_TYPES:
            return None
        name = key[:-4]
        table = self.table
        types = table.names.get(name)
        if types is None:
            if not self._in_zone(name):
                return None
            nx = self._nx.get(len(name))
            if nx is None:
                nx = self._nx[len(name)] = (None, (self._forms(table.nxdomain, len(name)),))
            if self._nx_keys < MAX_NX_ENTRIES:
                # Kept by question too, for the compiled loop (which reads only
                # entries), under a bound of its own so that names no one has
                # cannot crowd out the names of the zone.
                self._nx_keys += 1
                self.entries[key] = nx
            return nx
        found = table.resolve(types, qtype)
        entry: Entry
        if isinstance(found, Lookup):
            entry = (None, (self._forms(found, len(name)),))
        else:
            entry = (found if len(found.answers) > 1 else None,
                     tuple(self._forms(Lookup(dns.rcode.NOERROR, (a,)), len(name))
                           for a in found.answers))
        if len(self.entries) - self._nx_keys < MAX_ENTRIES:
            self.entries[key] = entry
        return entry

    def _in_zone(self, name: bytes) -> bool:
        """Whether name (lower-cased wire, ending at its first zero byte) is a
        well-formed name below the origin, as dnspython would read it."""
        origin = self._origin
        if len(name) > 255 or not name.endswith(origin):
            return False
        cut, i = len(name) - len(origin), 0
        while i < cut:
            if name[i] > 63:
                return False                    # a pointer or an extended label type
            i += name[i] + 1
        return i == cut                         # the origin starts at a label

    def _forms(self, found: Lookup, qname_len: int) -> tuple[Form, Form]:
        b = body(self.table, found, qname_len)
        stat = rcode_name(found.rcode)
        plain = HEADER + qname_len + 4                  # the query's length without OPT
        out = []
        for opt in (b"", self._opt):
            size = plain + len(b.records) + len(opt)
            qlen = plain + (OPT_LEN if opt else 0)
            if not truncates(size, udp_limit(None if not opt else 0, self.max_udp),
                             b.negative, False, qlen):
                need = 0
            elif opt and not truncates(size, udp_limit(65535, self.max_udp),
                                       b.negative, False, qlen):
                need = size                             # fits once the payload allows it
            else:
                need = NEVER
            ar = 1 if opt else 0
            out.append((need, not truncates(size, 65535, b.negative, True, qlen), stat,
                        header(b.flags, b.ancount, b.nscount, ar),
                        header(b.flags | 0x0100, b.ancount, b.nscount, ar), b.records + opt,
                        header(b.flags | 0x0200, 0, 0, ar),
                        header(b.flags | 0x0300, 0, 0, ar), opt))
        return out[0], out[1]
