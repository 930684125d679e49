"""One reloader for every component: watch files, taste, adopt, keep the old on failure.

A :class:`Reloader` re-reads a configuration on a fixed period and when
triggered (the SIGHUP handler calls :meth:`Reloader.trigger`). Each attempt:

1. takes a *fingerprint* of the watched files (see
   ``healthplane.runtime.files.Fingerprint``: bounded, never blocking, never
   holding a whole file) in a worker thread with a timeout. Unchanged files
   are not parsed again on a periodic attempt; a trigger always re-reads;
2. calls ``load`` in a worker thread. For files, ``load`` is usually
   :func:`run_in_child`: a throw-away process loads the files and exercises
   the new configuration (principle 7, taste before you serve) under a
   timeout, so neither a slow parse, a crash nor a wedged file touches the
   serving process;
3. hands the result to ``adopt``, which may return False (nothing changed)
   or raise to refuse it.

A failure at any step keeps the running configuration: every problem is
logged, one line each, and the attempt is counted as ``failed``
(``count`` receives "adopted", "unchanged" or "failed", for the
component's ``config_reloads_total{result}`` metric). The configuration is
any type: (registry, fleet) for checkers and aggregators, a zone for the
DNS front, certificates for TLS rotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Literal, TypeVar

from healthplane.proto.config.errors import ConfigError
from healthplane.runtime.clock import Clock
from healthplane.runtime.files import UnreadableFile
from healthplane.runtime.grid import GridLoop

C = TypeVar("C")
T = TypeVar("T")
Result = Literal["adopted", "unchanged", "failed"]

# Reading the files' identity and hashing them; a read that takes longer is
# a hung file system, not a slow disk.
FILE_TIMEOUT = 5.0
# Loading and tasting in the child: a million-check YAML registry takes
# about 90 s to load; a taste that takes longer than this is stuck.
TASTE_TIMEOUT = 300.0
# The period of a reloader that reloads only when triggered: a grid slot
# every 31 years never comes due.
_NEVER = 1e9

__all__ = ["FILE_TIMEOUT", "TASTE_TIMEOUT", "Reloader", "Result", "run_in_child"]


async def in_thread(fn: Callable[[], T], timeout: float | None, name: str) -> T:
    """fn() in a fresh daemon thread, awaited for at most timeout seconds.

    A daemon thread, not the loop's executor: a thread stuck in a hung file
    system must not hold up the process's shutdown, nor a pool's workers.
    Raises TimeoutError when fn has not returned in time (it runs on);
    timeout None waits as long as it takes.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def deliver(value: Any, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(value)

    def work() -> None:
        try:
            value, error = fn(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            value, error = None, exc
        try:
            loop.call_soon_threadsafe(deliver, value, error)
        except RuntimeError:
            pass  # the loop is gone: nobody waits any more

    threading.Thread(target=work, name=name, daemon=True).start()
    return await asyncio.wait_for(done, timeout)


_PR_SET_PDEATHSIG = 1      # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent ends (Linux), however it ends.

    A tasting child outliving a killed component would go on holding its
    memory and, in a test fleet, count as a process left behind.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:      # it died before the request took effect
        os._exit(1)


def _child_main(conn: Any, fn: Callable[..., Any], args: tuple, parent: int) -> None:
    _die_with_parent(parent)
    try:
        out: tuple[str, Any] = ("ok", fn(*args))
    except ConfigError as exc:
        out = ("errors", list(exc.errors))
    except Exception as exc:  # noqa: BLE001 - any failure means "do not adopt"
        out = ("errors", [f"trial failed: {type(exc).__name__}: {exc}"])
    try:
        conn.send(out)
    except Exception as exc:  # noqa: BLE001 - e.g. a result that does not pickle
        conn.send(("errors", [f"trial failed: {type(exc).__name__}: {exc}"]))
    conn.close()


def run_in_child(fn: Callable[..., T], *args: Any, timeout: float = TASTE_TIMEOUT) -> T:
    """fn(*args) in a fresh process; its result, or ConfigError with its lines.

    Blocking: call it from a worker thread. fn must be importable (spawn).
    A ConfigError raised in the child comes back with its lines; any other
    exception, a child that dies, or one that has not answered within
    timeout seconds (it is killed) is one ConfigError line.
    """
    ctx = multiprocessing.get_context("spawn")   # never fork a process running gRPC
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(send, fn, args, os.getpid()), daemon=True,
                        name="healthplane-taste")
    child.start()
    send.close()
    try:
        if not receive.poll(timeout):
            raise ConfigError([f"trial process gave no answer within {timeout:g} s; "
                               "killed it"])
        try:
            kind, value = receive.recv()
        except EOFError:
            child.join(1.0)
            raise ConfigError([f"trial process died (exit code {child.exitcode})"]) from None
    finally:
        if child.is_alive():
            child.kill()
        child.join(5.0)
        receive.close()
    if kind == "errors":
        raise ConfigError(value)
    return value


class Reloader(Generic[C]):
    """Re-reads one configuration on a period and on trigger().

    what: names it in logs ("config", "zone", "certificates").
    load: returns the new configuration or raises ConfigError (blocking; it
        runs in a worker thread, for at most load_timeout seconds).
    adopt: takes it into service (a function or a coroutine function);
        returns False when it is the running one, raises to refuse it.
    fingerprint: a digest of the watched files, e.g. files.Fingerprint;
        running is the digest the running configuration was loaded from.
    period: seconds between periodic attempts on a fixed schedule;
        0 or less, or infinity: only on trigger().
    """

    def __init__(self, what: str, load: Callable[[], C],
                 adopt: Callable[[C], bool | None | Awaitable[bool | None]], *,
                 clock: Clock, period: float,
                 count: Callable[[Result], None] = lambda result: None,
                 fingerprint: Callable[[], bytes] | None = None,
                 running: bytes | None = None, file_timeout: float = FILE_TIMEOUT,
                 load_timeout: float = TASTE_TIMEOUT + 30.0,
                 logger: logging.Logger | None = None) -> None:
        self.what = what
        self._load, self._adopt, self._count = load, adopt, count
        self.clock = clock
        self.period = period if 0 < period < float("inf") else 0.0
        self._fingerprint = fingerprint
        self.file_timeout, self.load_timeout = file_timeout, load_timeout
        self.log = logger or logging.getLogger("healthplane.reload")
        # (fingerprint, outcome) of the last attempt that read the files.
        self._last: tuple[bytes, Result] | None = (
            (running, "adopted") if running is not None else None)
        self._fingerprinting: asyncio.Task[bytes] | None = None
        self._lock = asyncio.Lock()
        self._forced = False
        self._grid = GridLoop(self._on_grid, self.period or _NEVER, clock, run_at_start=False)

    def trigger(self) -> None:
        """Reload now, reading the files even if they look unchanged (SIGHUP)."""
        self._forced = True
        self._grid.trigger()

    def stop(self) -> None:
        self._grid.stop()

    async def reload_once(self, *, force: bool = False) -> Result:
        """One attempt; returns (and counts) "adopted", "unchanged" or "failed"."""
        async with self._lock:
            result = await self._attempt(force)
        self._count(result)
        return result

    def _reject(self, problems: list[str]) -> Result:
        for line in problems:
            self.log.error("reload rejected, kept the running config",
                           extra={"what": self.what, "problem": line})
        return "failed"

    async def _digest(self) -> bytes:
        assert self._fingerprint is not None
        running = self._fingerprinting
        if running is not None and not running.done():
            raise TimeoutError  # the last one is still stuck in the file system
        self._fingerprinting = asyncio.ensure_future(
            in_thread(self._fingerprint, None, f"{self.what}-fingerprint"))
        return await asyncio.wait_for(asyncio.shield(self._fingerprinting), self.file_timeout)

    async def _attempt(self, force: bool) -> Result:
        digest = None
        if self._fingerprint is not None:
            try:
                digest = await self._digest()
            except TimeoutError:
                self._last = None
                return self._reject([f"reading the files took longer than "
                                     f"{self.file_timeout:g} s"])
            except (UnreadableFile, OSError) as exc:
                self._last = None
                return self._reject([str(exc)])
            if not force and self._last is not None and self._last[0] == digest:
                if self._last[1] == "failed":
                    return self._reject(["files unchanged since the last failed attempt"])
                return "unchanged"
        outcome = await self._load_and_adopt()
        self._last = (digest, outcome) if digest is not None else None
        return outcome

    async def _load_and_adopt(self) -> Result:
        try:
            config = await in_thread(self._load, self.load_timeout, f"{self.what}-load")
        except ConfigError as exc:
            return self._reject(exc.errors)
        except TimeoutError:
            return self._reject([f"loading took longer than {self.load_timeout:g} s"])
        except Exception as exc:  # noqa: BLE001 - never let a reload take a process down
            return self._reject([f"{type(exc).__name__}: {exc}"])
        try:
            taken = self._adopt(config)
            if inspect.isawaitable(taken):
                taken = await taken
        except Exception as exc:  # noqa: BLE001 - refused, or a bug: keep the running one
            return self._reject([str(exc) or type(exc).__name__])
        if taken is False:
            return "unchanged"
        self.log.info("reload adopted", extra={"what": self.what})
        return "adopted"

    async def run(self) -> None:
        """Reload on trigger() and every period seconds (fixed schedule) until stop()."""
        await self._grid.run()

    async def _on_grid(self) -> None:
        # A slow attempt makes the grid skip the slots it overran rather
        # than bunch them; a trigger during one is served right after.
        force, self._forced = self._forced, False
        await self.reload_once(force=force)


def taste_cadence(work: Callable[[int], object], interval: float, field: str, *,
                  cycles: int = 3, budget: float = 2.0) -> None:
    """Run work(1), work(2), ... on a real fixed grid of interval seconds.

    The cadence a new configuration asks for, exercised for real before it
    is adopted: a few cycles, at most budget seconds in all (at least one
    cycle). Raises ConfigError when one cycle takes longer than interval,
    which would starve the process at that cadence.
    """
    import time

    count = max(1, min(cycles, int(budget / interval)))
    start = time.monotonic()
    for k in range(1, count + 1):
        began = time.monotonic()
        work(k)
        took = time.monotonic() - began
        if took > interval:
            raise ConfigError([f"trial: one cycle took {took:.3f} s, longer than "
                               f"{field} ({interval:g} s) allows"])
        pause = start + k * interval - time.monotonic()
        if pause > 0 and k < count:
            time.sleep(pause)
