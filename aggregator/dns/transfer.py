"""Zone transfers (RFC 5936 AXFR, RFC 1995 IXFR) and TSIG (RFC 8945).

With zone.yaml's ``transfer``, the DNS front is a hidden primary: secondaries
whose address is in ``allow`` (and that sign with the key, when one is
configured) get the zone as it would be answered now. For each record:
failover, the chosen value; multivalue, the healthy values (at most 8);
weighted, the healthy values; simple and CNAME, every value. When no value
is healthy the answer rules' fail-open choice is transferred, as served.

IXFR is answered AXFR-style (the whole zone between two SOAs, RFC 1995
section 4), or with the SOA alone when the secondary is already current.
Transfers are TCP only; over UDP they are REFUSED.

A TSIG-signed query (a secondary's SOA check, say) is verified and its
answer signed; a bad signature or an unknown key gets NOTAUTH with the
TSIG error BADSIG or BADKEY and an unsigned TSIG record, as RFC 8945
section 5.3.2 asks.
"""

from __future__ import annotations

import ipaddress
import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.tsig
from healthplane.proto.config.model import Transfer

from .answers import MULTIVALUE_MAX, AnswerTable, Lookup, name_wire
from .build import selection

XFR_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})
_MESSAGE_BUDGET = 32_000   # bytes of records per transfer message, well under 64 KB
_BADSIG, _BADKEY, _BADTIME = 16, 17, 18


class TransferPolicy:
    """Who may transfer the zone, and the TSIG key they must sign with."""

    def __init__(self, transfer: Transfer) -> None:
        self.networks = [ipaddress.ip_network(n) for n in transfer.allow]
        self.key: dns.tsig.Key | None = None
        if transfer.tsig is not None:
            t = transfer.tsig
            self.key = dns.tsig.Key(t.name, t.secret, t.algorithm)
        self.notify = transfer.notify

    def allowed(self, peer: str | None) -> bool:
        if peer is None:
            return False
        try:
            ip = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in self.networks)


def verify(wire: bytes, unchecked: dns.message.Message,
           key: dns.tsig.Key | None) -> dns.message.Message | int:
    """The query with its TSIG verified, or the TSIG error code for the refusal."""
    if key is None or unchecked.keyname != key.name:
        return _BADKEY
    try:
        return dns.message.from_wire(wire, keyring={key.name: key})
    except dns.tsig.BadTime:
        return _BADTIME
    except (dns.tsig.BadKey, dns.tsig.BadAlgorithm, dns.message.UnknownTSIGKey):
        return _BADKEY
    except dns.exception.DNSException:
        return _BADSIG


def tsig_refusal(query: dns.message.Message, error: int) -> bytes:
    """NOTAUTH with an unsigned TSIG record carrying ``error`` (RFC 8945 5.3.2)."""
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.NOTAUTH)
    assert query.tsig is not None
    asked = query.tsig[0]
    rd = dns.rdtypes.ANY.TSIG.TSIG(dns.rdataclass.ANY, dns.rdatatype.TSIG, asked.algorithm,
                                   int(time.time()), asked.fudge, b"", query.id, error, b"")
    assert query.keyname is not None  # a TSIG-signed query names its key
    response.tsig = dns.rrset.from_rdata(query.keyname, 0, rd)
    response.want_tsig_sign = False
    return response.to_wire()


def signed_answer(query: dns.message.Message, found: Lookup, table: AnswerTable,
                  max_size: int) -> bytes:
    """The answer to a verified TSIG-signed query, signed with the same key."""
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.Rcode(found.rcode))
    if found.authoritative:
        response.flags |= dns.flags.AA
    response.answer = list(found.rrsets)
    if found.negative:
        response.authority = [table.soa]
    return response.to_wire(max_size=max_size)


def zone_rrsets(table: AnswerTable) -> list[dns.rrset.RRset]:
    """Every RRset of the zone as it would be answered under the table's health,
    SOA first; the caller ends a transfer with the SOA again."""
    zone, status, apex = table.zone, table.status, table.apex
    assert zone is not None and status is not None and apex is not None
    out = [apex.soa, apex.ns, *apex.glue]
    for rec in zone.records:
        chosen = selection(rec, status)
        values = rec.values if chosen is None else chosen
        if rec.policy == "multivalue":
            values = values[:MULTIVALUE_MAX]
        ttl = zone.ttl if rec.ttl is None else rec.ttl
        out.append(dns.rrset.from_text_list(rec.name, ttl, dns.rdataclass.IN, rec.type,
                                            [v.value for v in values]))
    return out


def _size(rrset: dns.rrset.RRset) -> int:
    owner = len(name_wire(rrset.name))
    return sum(owner + 10 + len(rd.to_wire()) for rd in rrset)


def transfer_messages(query: dns.message.Message, table: AnswerTable) -> list[bytes]:
    """The AXFR (or AXFR-style IXFR) answer as wire messages, signed when the query was."""
    rrsets = zone_rrsets(table)
    soa = rrsets[0]
    if query.question[0].rdtype == dns.rdatatype.IXFR:
        theirs = [rr for rr in query.authority if rr.rdtype == dns.rdatatype.SOA]
        if theirs and _not_older(theirs[0][0].serial, table.serial):
            rrsets = []               # current already: the SOA alone says so
    chunks: list[list[dns.rrset.RRset]] = [[soa]]
    used = _size(soa)
    for rrset in [*rrsets[1:], soa] if rrsets else []:
        size = _size(rrset)
        if used + size > _MESSAGE_BUDGET and chunks[-1]:
            chunks.append([])
            used = 0
        chunks[-1].append(rrset)
        used += size
    wires, ctx = [], None
    for i, chunk in enumerate(chunks):
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if i:
            response.question = []    # RFC 5936 2.2: only the first repeats the question
        response.answer = chunk
        multi = query.had_tsig
        wires.append(response.to_wire(max_size=65535, multi=multi, tsig_ctx=ctx))
        ctx = response.tsig_ctx
    return wires


def _not_older(theirs: int, ours: int) -> bool:
    """RFC 1982 serial arithmetic: theirs >= ours."""
    return theirs == ours or 0 < ((theirs - ours) & 0xFFFFFFFF) < 2**31
