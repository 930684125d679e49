"""Starting without wrong answers: what a restarted aggregator reads back and waits for.

A process that has just started knows no votes. Published as is, its first
tick would say "never seen, healthy" for every check, including the ones the
fleet knows to be dead. Three things prevent that:

* **Persisted states.** With ``--snapshot-file``, the file the previous run
  wrote at every tick is read back at start: each check's last published
  status becomes its last known status (carried by check id, so a registry
  change between the runs moves nothing to the wrong check). A check without
  a fresh vote then falls back to what it last was, not to "healthy".
* **Warm-up.** Until every checker of the fleet has reported since the start,
  or one ``stale_after`` has passed (after which a checker that has not
  reported would not vote anyway), every snapshot is marked ``warming``. DNS
  hosts do not adopt warming snapshots while another aggregator is warm, the
  snapshot file is not rewritten (file readers keep the previous run's last
  tick), and ``/readyz`` says not ready.
* **The previous registry.** When the file was written for another
  registry version (checks.yaml changed across the restart), snapshots of
  that version are accepted and remapped by check id, as after a reload, so
  checkers that have not got the new file yet keep voting.
* **A growing sequence.** The first tick number is above both the persisted
  file's and the wall clock in milliseconds, so the sequence a client sees
  only grows across restarts, with or without a file.

Temporary files that a crash left next to the snapshot file are removed at
start.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgpack
import numpy as np
from healthplane.aggregator.tick_layout import inverted_checks
from healthplane.aggregator.tick_memory import TickMemory, carry, from_check_order
from healthplane.aggregator.votes import lane_words_for
from healthplane.proto import codec
from healthplane.proto.config.model import Fleet, Registry

if TYPE_CHECKING:
    from healthplane.aggregator.state import AggregatorState

log = logging.getLogger("healthplane.aggregator.warmstart")


def temp_pattern(path: str) -> str:
    """The glob of the temporary files written beside path (see snapshot_file)."""
    directory = os.path.dirname(os.path.abspath(path))
    return os.path.join(glob.escape(directory), "." + glob.escape(os.path.basename(path))
                        + ".*.tmp")


def clean_temp_files(path: str) -> int:
    """Remove temporary files a crashed writer left beside path; returns how many."""
    removed = 0
    for tmp in glob.glob(temp_pattern(path)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
            removed += 1
    if removed:
        log.info("removed %d stale temporary file(s) beside %s", removed, path)
    return removed


@dataclass(frozen=True)
class Persisted:
    """What a previous run left behind."""

    sequence: int                 # its last tick number
    memory: TickMemory | None    # per-check memory on the current registry; None: none usable
    age_ms: int                   # how old the file's tick is
    version: str = ""             # the registry version it was written for
    ids: tuple[str, ...] = ()     # and that registry's check ids


def read_persisted(path: str, registry: Registry, fleet: Fleet,
                   wall_ms: int) -> Persisted | None:
    """The previous run's last snapshot file, carried onto registry; None when absent.

    A file that does not parse is logged and ignored: a cold start is right,
    a crash is not.
    """
    try:
        with open(path, "rb") as f:
            data = msgpack.unpackb(f.read(), raw=False)
        sequence = int(data["sequence"])
        version = str(data["registry_version"])
        ids = tuple(str(i) for i in data["check_ids"])
        count = int(data["check_count"])
        states = codec.decode(bytes(data["states"]), count)
        generated = int(data["generated_unix_ms"])
        if len(ids) != count:
            raise ValueError(f"{len(ids)} check ids for check_count {count}")
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - any damage means: start cold
        log.warning("snapshot file %s unusable, starting without persisted states: %s",
                    path, exc)
        return None
    memory = _memory(ids, np.asarray(states, dtype=np.uint8), registry, fleet)
    return Persisted(sequence, memory, max(0, wall_ms - generated), version, ids)


def _memory(ids: tuple[str, ...], states: np.ndarray, registry: Registry,
            fleet: Fleet) -> TickMemory | None:
    index = registry.index_of()
    known = [index.get(i, -1) for i in ids]
    found = [i for i in known if i >= 0]
    columns = {name: dict(zip(found, registry.column(name, found), strict=True))
               for name in ("inverted", "disabled", "type")}
    # Final statuses of the file are what each check last was; a check the
    # current registry inverts was stored inverted, and one without votes of
    # its own (calculated, disabled) keeps nothing.
    inverted = np.array([i >= 0 and columns["inverted"][i] for i in known], dtype=bool)
    novote = np.array([i < 0 or columns["disabled"][i] or columns["type"][i] == "calculated"
                       for i in known], dtype=bool)
    valid = (states == codec.HEALTHY) | (states == codec.UNHEALTHY)
    status = np.where(valid, states, codec.HEALTHY).astype(np.uint8)
    mem = from_check_order(
        ids, lane_words_for(len(ids)), status=status,
        last_known=status.copy() if fleet.unknown_as == "last_known" else None,
        last_change_unix_ms=np.zeros(len(ids), dtype=np.int64),
        established=valid, inverted=inverted, novote=novote)
    return carry(mem, registry.ids, lane_words_for(registry.check_count),
                 inverted=inverted_checks(registry))


def restore(state: AggregatorState, path: str, wall_ms: int) -> Persisted | None:
    """Read back what the previous run left in path into a new state.

    Its temporary files go; its last tick becomes every check's last known
    status; when its registry differs, snapshots of that version are
    accepted (remapped by id), as after a reload.
    """
    clean_temp_files(path)
    registry = state.registry
    persisted = read_persisted(path, registry, state.fleet, wall_ms)
    if persisted is None:
        return None
    if persisted.version != registry.version and persisted.ids \
            and len(persisted.ids) <= 2 * registry.check_count:
        state.accept_previous(persisted.version, persisted.ids)
    if persisted.memory is not None:
        state.engine.restore(persisted.memory)
        log.info("read back check states", extra={
            "checks": len(persisted.memory.ids), "file": path,
            "tick": persisted.sequence, "age_s": persisted.age_ms / 1000})
    return persisted


def first_sequence(persisted: Persisted | None, wall_ms: int) -> int:
    """The first tick number of this run: above the previous run's, whatever it was.

    Wall-clock milliseconds grow faster than ticks (a tick is at least
    milliseconds long), so they alone keep the sequence growing across
    restarts without a file; the file covers a clock that stepped back.
    """
    previous = persisted.sequence if persisted is not None else 0
    return max(previous + 1, wall_ms)


class WarmUp:
    """Warming until every checker reported since start, or one stale_after passed."""

    def __init__(self, started: float, stale_after: float) -> None:
        self.started = started
        self.stale_after = stale_after
        self.warm = False
        self.reason = ""

    def update(self, now: float, received: np.ndarray) -> bool:
        """True while warming; latches to False for good once warm."""
        if not self.warm:
            if received.size and bool(np.all(received > self.started - 1e-9)):
                self.warm, self.reason = True, "every checker reported"
            elif now - self.started >= self.stale_after:
                self.warm, self.reason = True, "one stale_after passed"
        return not self.warm
