"""The checker: probes its share of the checks on a fixed schedule, streams snapshots.

Modules, in the order data flows through them:

* :mod:`checker.ownership` - which checks this checker probes (rendezvous hashing)
* :mod:`checker.schedule` - when: ``phase + k * interval``, planned a window at a time
* :mod:`checker.dispatch` - starting probes at their slots, bounded, no catch-up
* :mod:`checker.probes` - one module per probe kind (http/https, tcp, grpc)
* :mod:`checker.thresholds` - consecutive results to verdicts
* :mod:`checker.selfdoubt` - when to abstain instead of voting
* :mod:`checker.snapshot` and :mod:`checker.streams` - what is sent, and how
* :mod:`checker.reload` - adopting new config files safely
* :mod:`checker.runner` - :class:`~checker.runner.Checker`, tying it together
* :mod:`checker.cli` - ``healthplane checker``; :mod:`checker.metrics`, :mod:`checker.logs`
"""
