"""The checker: probes its share of the checks on a fixed schedule, streams snapshots.

Modules, in the order data flows through them:

* :mod:`healthplane.checker.ownership` - which checks this checker probes (rendezvous hashing)
* :mod:`healthplane.checker.schedule` - when: ``phase + k * interval``, planned a window at a time
* :mod:`healthplane.checker.dispatch` - starting probes at their slots, bounded, no catch-up
* :mod:`healthplane.checker.probes` - one module per probe kind (http/https, tcp, grpc)
* :mod:`healthplane.checker.thresholds` - consecutive results to verdicts
* :mod:`healthplane.checker.selfdoubt` - when to abstain instead of voting
* :mod:`healthplane.checker.snapshot` and :mod:`healthplane.checker.streams` - what is sent, and how
* :mod:`healthplane.checker.reload` - adopting new config files safely
* :mod:`healthplane.checker.runner` - :class:`~checker.runner.Checker`, tying it together
* :mod:`healthplane.checker.cli` - ``healthplane checker``;
  :mod:`healthplane.checker.metrics`
"""
