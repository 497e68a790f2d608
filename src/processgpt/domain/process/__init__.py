"""Business processes: the one internal model every definition format compiles to
(:mod:`.model`), and the pure engine that advances an instance over it.

* :mod:`.engine` — ``start`` / ``advance``: one step per event, pure and deterministic;
* :mod:`.events` — the events a step takes, and why one can be refused;
* :mod:`.step` — what a step decides (work to create or cancel, incidents, history) and the
  protocol for text conditions (:class:`~.step.NeedsVerdicts`);
* :mod:`.state` — the instance's state between steps (tokens, timers, incidents; JSON);
* :mod:`.walk` — how tokens move through nodes, gateways and joins;
* :mod:`.outputs` — how results become variables and variables a task's input;
* :mod:`.structure` — reachability and the inclusive split/join pairing (publish checks);
* :mod:`.timers` — ISO 8601 durations and dates; :mod:`.conditions` — CEL conditions.
"""
