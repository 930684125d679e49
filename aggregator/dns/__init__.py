"""The DNS side of healthplane: what a DNS host runs beside the aggregators.

* :mod:`.consumer` - :class:`~.consumer.HealthConsumer`, the client that
  follows the freshest aggregator health snapshot over gRPC; :mod:`.snapshots`
  decodes the messages, :mod:`.feed` hands the freshest one out;
* :mod:`.answers` and :mod:`.build` - every answer of a zone, prebuilt per
  snapshot; :mod:`.apex` - SOA, NS, glue and the serial;
* :mod:`.keeper` - rebuilds answers per snapshot and fails open on stale data;
* :mod:`.server` - the authoritative UDP/TCP DNS front, :mod:`.fastpath` its
  prebuilt responses for common queries, :mod:`.render` the response pieces
  both paths share, :mod:`.tcp` its connection slots, :mod:`.transfer`
  AXFR/IXFR and TSIG, :mod:`.notify` NOTIFY to secondaries;
* :mod:`.reload` - zone.yaml reloads, tasted in a child process;
* :mod:`.pdns_backend` - PowerDNS's remote backend;
* :mod:`.cli` - ``healthplane dns``; :mod:`.pdns_cli` - ``healthplane pdns-backend``.

It talks to aggregators only over gRPC through the ``proto`` stubs.
"""
