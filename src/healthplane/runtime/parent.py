"""Exit when the launcher that started this process dies, however it dies.

A launcher (``healthplane demo``, the test fleet) opens a pipe, keeps the
write end to itself and hands the read end to each child, naming its number
in ``HEALTHPLANE_PARENT_FD``. Nobody ever writes to the pipe: when the last
copy of the write end closes, which the kernel does for every way a process
can end (exit, Ctrl-C, SIGTERM, SIGHUP, SIGKILL, a crash), the read end
becomes readable with end-of-file. Each component watches it on its event
loop and then stops as if it had been sent SIGTERM, so a killed demo never
leaves children holding its ports.

Without the variable (a component started by hand, by systemd or by
Kubernetes) nothing is watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

PARENT_FD_ENV = "HEALTHPLANE_PARENT_FD"
# A component that does not stop within this long after its parent died (a
# stuck shutdown) is ended without ceremony: an orphan must never linger.
EXIT_GRACE = 10.0

log = logging.getLogger("healthplane.runtime")


def parent_pipe() -> tuple[int, int]:
    """A new (read, write) pipe for a launcher: pass read to children, keep write.

    Both ends are close-on-exec; the launcher passes the read end explicitly
    (``pass_fds``), so no child ever holds the write end.
    """
    return os.pipe()


def watch_parent(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Watch the pipe named by HEALTHPLANE_PARENT_FD; on EOF, SIGTERM ourselves.

    Returns whether a pipe is being watched. Call once, from the component's
    startup, after its SIGTERM handler is installed. A bad or closed fd in the
    variable is logged and ignored: the variable is a hint from a launcher,
    not configuration.
    """
    text = os.environ.get(PARENT_FD_ENV)
    if not text:
        return False
    # Our own children (the config tasting process) must not watch it too.
    os.environ.pop(PARENT_FD_ENV, None)
    try:
        fd = int(text)
        os.set_blocking(fd, False)
        os.set_inheritable(fd, False)
    except (ValueError, OSError) as exc:
        log.warning("%s=%r is not an open pipe, not watching the parent: %s",
                    PARENT_FD_ENV, text, exc)
        return False
    loop = loop or asyncio.get_running_loop()
    loop.add_reader(fd, _readable, loop, fd)
    return True


def _readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    try:
        data = os.read(fd, 512)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if data:
        return      # nobody should write; ignore it rather than die for it
    loop.remove_reader(fd)
    with contextlib.suppress(OSError):
        os.close(fd)
    log.warning("the process that started this one has ended; stopping")
    loop.call_later(EXIT_GRACE, os._exit, 1)
    os.kill(os.getpid(), signal.SIGTERM)
