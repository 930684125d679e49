"""The lifeline pipe: a child stops when the write end closes, and only then."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from healthplane.runtime.parent import PARENT_FD_ENV, parent_pipe

CHILD = """
import asyncio, signal, sys
from healthplane.runtime.parent import watch_parent

async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(watch_parent(), flush=True)
    try:
        await asyncio.wait_for(stop.wait(), float(sys.argv[1]))
        print("stopped", flush=True)
    except TimeoutError:
        print("timeout", flush=True)

asyncio.run(main())
"""


def test_child_stops_when_the_write_end_closes() -> None:
    r, w = parent_pipe()
    env = dict(os.environ, **{PARENT_FD_ENV: str(r)})
    child = subprocess.Popen([sys.executable, "-c", CHILD, "30"], env=env, pass_fds=(r,),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(r)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "True"
        time.sleep(0.3)
        assert child.poll() is None, "the child stopped while its parent was alive"
        os.close(w)    # what the kernel does when the parent dies in any way
        out, err = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert out.strip() == "stopped", err
    assert "has ended; stopping" in err


def test_without_the_variable_nothing_is_watched() -> None:
    env = {k: v for k, v in os.environ.items() if k != PARENT_FD_ENV}
    done = subprocess.run([sys.executable, "-c", CHILD, "0.5"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.stdout.split() == ["False", "timeout"], done.stderr


def test_a_bad_fd_in_the_variable_is_ignored() -> None:
    env = dict(os.environ, **{PARENT_FD_ENV: "not-a-number"})
    done = subprocess.run([sys.executable, "-c", CHILD, "0.5"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.stdout.split() == ["False", "timeout"], done.stderr
