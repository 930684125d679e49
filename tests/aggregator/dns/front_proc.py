"""Run ``healthplane dns`` (or ``pdns-backend``) as a real process in tests."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class Running:
    proc: asyncio.subprocess.Process
    port: int = 0
    mport: int = 0
    lines: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.lines)

    async def wait_log(self, pattern: str, timeout: float = 20.0, count: int = 1) -> None:
        try:
            async with asyncio.timeout(timeout):
                while len(re.findall(pattern, self.log())) < count:
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"no {pattern!r} in the log:\n{self.log()}") from None


async def _pump(run: Running) -> None:
    assert run.proc.stderr is not None
    while line := await run.proc.stderr.readline():
        run.lines.append(line.decode(errors="replace"))


@contextlib.asynccontextmanager
async def running(command: str, *args: str, ready: str = r"listening on 127\.0\.0\.1:(\d+)",
                  metrics: bool = False) -> AsyncIterator[Running]:
    """Start the subcommand, wait for the ``ready`` line (its group 1 is the port)."""
    extra = ("--metrics", "127.0.0.1:0") if metrics else ()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "healthplane", command, *args, *extra,
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    run = Running(proc)
    pump = asyncio.create_task(_pump(run))
    try:
        async with asyncio.timeout(30):
            while True:
                if m := re.search(ready, run.log()):
                    run.port = int(m.group(1)) if m.groups() else 0
                    break
                if proc.returncode is not None:
                    raise AssertionError(f"{command} exited early:\n{run.log()}")
                await asyncio.sleep(0.05)
            while metrics and not run.mport:
                if m := re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", run.log()):
                    run.mport = int(m.group(1))
                await asyncio.sleep(0.05)
        yield run
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
