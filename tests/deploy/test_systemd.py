"""The systemd units as shipped: sandbox score, required settings, and their commands run.

``systemd-analyze security --offline=yes`` rates each unit file; then each
unit's ExecStartPre and ExecStart run for real, as systemd would expand them
(EnvironmentFile variables, %i), with /etc/healthplane and /opt/healthplane
mapped to a temporary copy and this venv, and a NOTIFY_SOCKET to catch
READY=1 and STOPPING=1.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from healthplane.deploy.launcher import free_port

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
EXAMPLES = ROOT / "deploy" / "examples"
UNIT_FILES = sorted(UNITS.glob("*.service"))
MAX_EXPOSURE = 3.0


def service_section(path: Path) -> list[tuple[str, str]]:
    """(key, value) pairs of the [Service] section, in order."""
    out, section = [], None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            out.append((key, value))
    return out


def one(path: Path, key: str) -> str:
    values = [v for k, v in service_section(path) if k == key]
    assert len(values) == 1, (path.name, key, values)
    return values[0]


def test_every_component_has_a_unit() -> None:
    assert [p.name for p in UNIT_FILES] == [
        "healthplane-aggregator.service", "healthplane-checker@.service",
        "healthplane-dns.service"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian package systemd)")
@pytest.mark.parametrize("unit", UNIT_FILES, ids=lambda p: p.name)
def test_sandbox_exposure_is_at_most_3(unit: Path, tmp_path: Path) -> None:
    # A template is rated as one of its instances.
    name = unit.name.replace("@.", "@use1-a.")
    shutil.copy(unit, tmp_path / name)
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                           f"--threshold={int(MAX_EXPOSURE * 10)}", name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert m, done.stdout + done.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, done.stdout
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("unit", UNIT_FILES, ids=lambda p: p.name)
def test_unit_settings(unit: Path) -> None:
    assert one(unit, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(unit, "ExecStartPre").startswith("/opt/healthplane/bin/healthplane validate ")
    assert one(unit, "ExecStart").startswith("/opt/healthplane/bin/healthplane ")
    assert int(one(unit, "LimitNOFILE")) >= 65536
    assert one(unit, "Type") == "notify" and one(unit, "NotifyAccess") == "main"
    assert one(unit, "EnvironmentFile").startswith("/etc/healthplane/")
    assert one(unit, "DynamicUser") == "yes"
    # Ports come from the environment file, never from the unit.
    assert not re.search(r"\d+\.\d+\.\d+\.\d+:\d+|:\d{2,5}\b", one(unit, "ExecStart"))
    if "@" in unit.name:
        assert "%i" in one(unit, "EnvironmentFile") and "--id %i" in one(unit, "ExecStart")


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def expand(command: str, env: dict[str, str], instance: str, mapping: dict[str, str]) -> list[str]:
    """systemd's expansion: ${VAR} one word, $VAR split on spaces, %i the instance."""
    words: list[str] = []
    for word in shlex.split(command.replace("%i", instance)):
        if m := re.fullmatch(r"\$([A-Za-z_]\w*)", word):
            words += env.get(m.group(1), "").split()
            continue
        word = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), word)
        for old, new in mapping.items():
            word = word.replace(old, new)
        words.append(word)
    return words


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)

    def wait(self, wanted: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                assert proc.poll() is None, f"exited {proc.returncode} before {wanted}"
                continue
            if wanted in message.splitlines():
                return message
        raise AssertionError(f"no {wanted} within {timeout} s")


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("checks.yaml", "fleet.yaml", "zone.yaml"):
        shutil.copy(EXAMPLES / name, etc / name)
    # The example env files, with TLS left out (this test has no certificates),
    # free loopback ports, and an aggregator that is not there for the DNS front.
    (etc / "aggregator.env").write_text(
        f"HEALTHPLANE_LISTEN=127.0.0.1:{free_port()}\nHEALTHPLANE_HTTP=127.0.0.1:{free_port()}\n")
    (etc / "checker-use1-a.env").write_text(f"HEALTHPLANE_HTTP=127.0.0.1:{free_port()}\n")
    (etc / "dns.env").write_text(
        f"HEALTHPLANE_LISTEN=127.0.0.1:{free_port()}\nHEALTHPLANE_HTTP=127.0.0.1:{free_port()}\n"
        f"HEALTHPLANE_AGGREGATORS=--aggregator 127.0.0.1:{free_port()}\n")
    return etc


def test_shipped_env_files_name_every_variable_the_units_use() -> None:
    used = {u: set(re.findall(r"\$\{?(HEALTHPLANE_\w+)", one(u, "ExecStart"))) for u in UNIT_FILES}
    files = {"healthplane-aggregator.service": "aggregator.env",
             "healthplane-checker@.service": "checker-use1-a.env",
             "healthplane-dns.service": "dns.env"}
    for unit, names in used.items():
        env = read_env(UNITS / "env" / files[unit.name])
        assert names <= set(env), unit.name
        # TLS files come from the unit's credentials, which only it can read.
        loaded = {v.split(":", 1)[0] for k, v in service_section(unit) if k == "LoadCredential"}
        assert loaded == {"tls.crt", "tls.key", "ca.crt"}, unit.name
        args = env["HEALTHPLANE_ARGS"].split()
        credentials = f"/run/credentials/{unit.name.replace('@.', '@use1-a.')}/"
        for flag, name in (("--tls-cert", "tls.crt"), ("--tls-key", "tls.key"),
                           ("--tls-ca", "ca.crt")):
            assert args[args.index(flag) + 1] == credentials + name, (unit.name, flag)


@pytest.mark.parametrize("unit", UNIT_FILES, ids=lambda p: p.name)
def test_unit_commands_run_validate_notify_reload_and_stop(unit: Path, etc: Path,
                                                            tmp_path: Path) -> None:
    instance = "use1-a"
    env_file = Path(one(unit, "EnvironmentFile").replace("%i", instance))
    env_vars = read_env(etc / env_file.name)
    run = tmp_path / "run"
    run.mkdir()
    mapping = {"/opt/healthplane/bin/healthplane": str(Path(sys.executable).parent / "healthplane"),
               "/etc/healthplane": str(etc), "/run/healthplane": str(run)}
    pre = expand(one(unit, "ExecStartPre"), env_vars, instance, mapping)
    done = subprocess.run(pre, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (pre, done.stderr)
    assert done.stdout.startswith("ok:")

    notify = NotifySocket(tmp_path / "notify")
    argv = expand(one(unit, "ExecStart"), env_vars, instance, mapping)
    proc = subprocess.Popen(argv, env=dict(os.environ, NOTIFY_SOCKET=str(notify.path)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert notify.wait("READY=1", proc).startswith("READY=1\nSTATUS=")
        reload = expand(one(unit, "ExecReload").replace("$MAINPID", str(proc.pid)), {},
                        instance, {})
        assert subprocess.run(reload, timeout=10).returncode == 0
        time.sleep(1.0)
        assert proc.poll() is None, "SIGHUP (systemctl reload) ended the process"
        proc.send_signal(signal.SIGTERM)        # systemctl stop
        notify.wait("STOPPING=1", proc)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
    assert "Traceback" not in err, err
