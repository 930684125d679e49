"""Certificate rotation on a running aggregator process: SIGHUP re-reads the files."""

from __future__ import annotations

import re
import shutil
import signal
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from healthplane.deploy.ports import free_port, grpc_serving

from healthplane.certs import write_fleet_certs
from tests.aggregator.test_server_death import _configs, _stop

pytestmark = pytest.mark.timeout(90)


def _creds(d: Path, name: str) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials((d / "ca.pem").read_bytes(),
                                        (d / f"{name}-key.pem").read_bytes(),
                                        (d / f"{name}.pem").read_bytes())


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
        text = r.read().decode()
    m = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def _eventually(predicate, seconds: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("trigger", ["sighup", "period"])
def test_rotation_to_a_new_ca_and_a_bad_file_keeps_the_old(tmp_path: Path, trigger: str) -> None:
    import subprocess
    import sys
    port, mport = free_port(), free_port()
    checks, fleet = _configs(tmp_path, port)
    old, new, live = tmp_path / "old", tmp_path / "new", tmp_path / "live"
    for d in (old, new):
        write_fleet_certs(d, ["use1-a"], [f"127.0.0.1:{port}"])
    live.mkdir()
    for name in ("aggregator.pem", "aggregator-key.pem", "ca.pem"):
        shutil.copy(old / name, live / name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthplane", "aggregator", "--checks", str(checks),
         "--fleet", str(fleet), "--listen", f"127.0.0.1:{port}", "--metrics",
         f"127.0.0.1:{mport}", "--reload-interval", "0" if trigger == "sighup" else "0.5",
         "--tls-cert", str(live / "aggregator.pem"), "--tls-key", str(live / "aggregator-key.pem"),
         "--tls-ca", str(live / "ca.pem")],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "log", "wb"))  # noqa: SIM115
    address = f"127.0.0.1:{port}"
    try:
        assert _eventually(lambda: grpc_serving(address, credentials=_creds(old, "query")), 30)
        assert not grpc_serving(address, credentials=_creds(new, "query"))
        for name in ("aggregator.pem", "aggregator-key.pem", "ca.pem"):
            shutil.copy(new / name, live / name)
        if trigger == "sighup":
            proc.send_signal(signal.SIGHUP)
        assert _eventually(lambda: grpc_serving(address, credentials=_creds(new, "query")))
        assert not grpc_serving(address, credentials=_creds(old, "query"))
        assert _metric(mport, 'healthplane_aggregator_tls_reloads_total{result="adopted"}') == 1
        failed = 'healthplane_aggregator_tls_reloads_total{result="failed"}'
        # (a periodic re-read may catch the three copies half done: that one
        # fails too, and the next one adopts them)
        before = _metric(mport, failed)
        (live / "aggregator-key.pem").write_bytes((old / "aggregator-key.pem").read_bytes())
        if trigger == "sighup":
            proc.send_signal(signal.SIGHUP)
        assert _eventually(lambda: _metric(mport, failed) > before)
        assert grpc_serving(address, credentials=_creds(new, "query"))
        assert proc.poll() is None
    finally:
        _stop(proc)
    log = (tmp_path / "log").read_text()
    assert "key does not match" in log and "Traceback" not in log
