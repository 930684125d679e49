"""The DNS side of healthplane: what a DNS host runs beside the aggregators.

* :mod:`.consumer` - :class:`~.consumer.HealthConsumer`, the client that
  follows the freshest aggregator health snapshot over gRPC;
* :mod:`.answers` - every answer of a zone, prebuilt per snapshot;
* :mod:`.keeper` - rebuilds answers per snapshot and fails open on stale data;
* :mod:`.server` - the authoritative UDP/TCP DNS front;
* :mod:`.cli` - ``healthplane dns``.

It talks to aggregators only over gRPC through the ``proto`` stubs.
"""
