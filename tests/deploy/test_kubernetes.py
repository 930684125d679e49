"""The Kubernetes manifests: schema-valid, consistent enough to deploy as they stand.

kubernetes-validate checks every object against a current Kubernetes
release's schema; the rest checks what a schema cannot: names that must
match across objects, checker ids against fleet.yaml, probes and sandboxing
on every container, a Service for every listener, and the registry sidecar
assembling a registry larger than one ConfigMap, for real.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from healthplane.deploy.registry_parts import assemble, split
from healthplane.proto.config.loader import load_checks

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
FILES = sorted(K8S.glob("*.yaml"))
KUBERNETES = "1.37.0"
HEALTHPLANE = str(Path(sys.executable).parent / "healthplane")


def objects(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def everything() -> dict[str, list[dict[str, Any]]]:
    return {p.name: objects(p) for p in FILES}


def embedded(tmp_path: Path) -> Path:
    for obj in objects(K8S / "common.yaml"):
        if obj["kind"] == "ConfigMap":
            for key, text in obj["data"].items():
                (tmp_path / key).write_text(text)
    return tmp_path


def workloads(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] in ("StatefulSet", "Deployment")]


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_files() -> None:
    assert [p.name for p in FILES] == ["ap-south.yaml", "common.yaml", "eu-west.yaml",
                                       "us-east.yaml"]


def test_schema_valid_strict_against_a_current_release() -> None:
    exe = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    assert exe, "kubernetes-validate is in the test extra"
    done = subprocess.run([exe, "--strict", "-k", KUBERNETES, *map(str, FILES)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    count = sum(len(objects(p)) for p in FILES)
    assert done.stdout.count("passed") + done.stderr.count("passed") == count


def test_embedded_configs_validate(tmp_path: Path) -> None:
    d = embedded(tmp_path)
    done = subprocess.run([HEALTHPLANE, "validate", str(d / "checks.yaml"), "--fleet",
                           str(d / "fleet.yaml"), "--zone", str(d / "zone.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for obj in objects(K8S / "common.yaml"):
        if obj["kind"] == "ConfigMap":
            assert len(yaml.safe_dump(obj).encode()) < 1024 * 1024


def test_checker_ids_are_the_pod_names_and_never_collide(tmp_path: Path) -> None:
    fleet = yaml.safe_load((embedded(tmp_path) / "fleet.yaml").read_text())
    pods: dict[str, list[str]] = {}
    for objs in everything().values():
        for w in workloads(objs):
            if w["spec"]["template"]["metadata"]["labels"].get(
                    "app.kubernetes.io/component") == "checker":
                region = w["spec"]["template"]["metadata"]["labels"]["healthplane.io/region"]
                assert w["kind"] == "StatefulSet"
                name, n = w["metadata"]["name"], w["spec"]["replicas"]
                pods.setdefault(region, []).extend(f"{name}-{i}" for i in range(n))
                args = containers(w)[-1]["args"]
                assert args[args.index("--id") + 1] == "$(POD_NAME)"
    assert pods == fleet["regions"]
    ids = [i for ids in pods.values() for i in ids]
    assert len(ids) == len(set(ids))


def test_every_aggregator_has_its_own_external_address(tmp_path: Path) -> None:
    fleet = yaml.safe_load((embedded(tmp_path) / "fleet.yaml").read_text())
    external: dict[str, str] = {}
    for objs in everything().values():
        sets = {w["metadata"]["name"]: w["spec"]["replicas"] for w in workloads(objs)}
        for svc in (o for o in objs if o["kind"] == "Service"):
            host = svc["metadata"].get("annotations", {}).get(
                "external-dns.alpha.kubernetes.io/hostname")
            pod = svc["spec"].get("selector", {}).get("statefulset.kubernetes.io/pod-name")
            if host and pod:
                assert svc["spec"]["type"] == "LoadBalancer"
                # Not-ready aggregators must be reachable: they become ready from votes.
                assert svc["spec"]["publishNotReadyAddresses"] is True
                sts, _, ordinal = pod.rpartition("-")
                assert int(ordinal) < sets[sts]
                external[f"{host}:7000"] = pod
    assert sorted(external) == sorted(fleet["aggregators"])


@pytest.mark.parametrize("name", [p.name for p in FILES if p.name != "common.yaml"])
def test_workloads_deploy_as_they_stand(name: str) -> None:
    objs = objects(K8S / name)
    common = objects(K8S / "common.yaml")
    services = [o for o in objs if o["kind"] == "Service"]
    pdbs = [o for o in objs if o["kind"] == "PodDisruptionBudget"]
    configmaps = {o["metadata"]["name"] for o in common if o["kind"] == "ConfigMap"}
    assert workloads(objs)
    for w in workloads(objs):
        labels = w["spec"]["template"]["metadata"]["labels"]
        spec = w["spec"]["template"]["spec"]
        if w["kind"] == "StatefulSet":
            headless = [s for s in services if s["metadata"]["name"] == w["spec"]["serviceName"]]
            assert headless and headless[0]["spec"]["clusterIP"] == "None", w["metadata"]["name"]
        assert any(selects(p["spec"]["selector"]["matchLabels"], labels) for p in pdbs)
        assert spec["securityContext"]["runAsNonRoot"] is True
        volumes = {v["name"]: v for v in spec["volumes"]}
        for v in volumes.values():
            if "configMap" in v:
                assert v["configMap"]["name"] in configmaps
            for src in v.get("projected", {}).get("sources", []):
                cm = src["configMap"]
                assert cm["name"] in configmaps or cm.get("optional") is True
        for c in containers(w):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert "resources" in c and c["image"].split(":")[-1] not in ("", "latest")
            for m in c["volumeMounts"]:
                assert m["name"] in volumes
            if c["name"] == "registry":
                assert c["restartPolicy"] == "Always" and "startupProbe" in c
                assert "livenessProbe" in c
                continue
            ports = {p["name"]: p for p in c["ports"]}
            assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
            assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
            args = c["args"]
            assert args[args.index("--http") + 1] == f"0.0.0.0:{ports['http']['containerPort']}"
            for flag in ("--tls-cert", "--tls-key", "--tls-ca"):
                assert args[args.index(flag) + 1].startswith("/etc/healthplane/tls/")
            # A Service for every listener.
            for pname, port in ports.items():
                proto = port.get("protocol", "TCP")
                assert any(selects(s["spec"]["selector"], labels) and any(
                    sp.get("targetPort") in (pname, port["containerPort"])
                    and sp.get("protocol", "TCP") == proto for sp in s["spec"]["ports"])
                    for s in services), (c["name"], pname)
            if c["name"] == "dns":
                # Port 53 outside, an unprivileged port inside, both protocols.
                assert args[args.index("--listen") + 1] == "0.0.0.0:5353"
                outside = {(sp["port"], sp.get("protocol", "TCP")) for s in services
                           if selects(s["spec"]["selector"], labels)
                           for sp in s["spec"]["ports"]}
                assert {(53, "UDP"), (53, "TCP")} <= outside


def sidecar_script() -> str:
    for w in workloads(objects(K8S / "us-east.yaml")):
        for c in containers(w):
            if c["name"] == "registry":
                assert c["command"][:2] == ["/bin/sh", "-c"]
                return c["command"][2]
    raise AssertionError("no registry sidecar")


def big_registry(n: int) -> str:
    lines = ["checks:"]
    for i in range(n):
        lines += [f"  - id: web-{i:05d}", "    type: https", f"    host: web-{i}.example.com",
                  "    port: 443", "    path: /health/deep/and/long/enough", "    interval: 30"]
    return "\n".join(lines) + "\n"


def test_split_and_assemble_round_trip() -> None:
    text = big_registry(12_000)
    assert len(text.encode()) > 1024 * 1024
    parts = split(text)
    assert len(parts) >= 2 and all(len(p.encode()) <= 900 * 1024 for p in parts)
    assert assemble(parts) == text
    assert assemble(parts[:-1]) is None                   # incomplete
    other = split(big_registry(12_001))
    assert assemble([parts[0], *other[1:]]) is None       # two versions mixed


@pytest.mark.timeout(180)
def test_registry_sidecar_assembles_a_registry_over_one_configmap(tmp_path: Path) -> None:
    """The sidecar's own shell script, on a 12,000-check registry split in parts."""
    text = big_registry(12_000)
    parts_dir, run_dir, cfg = tmp_path / "parts", tmp_path / "run", tmp_path / "cfg"
    for d in (parts_dir, run_dir, cfg):
        d.mkdir()
    embedded(cfg)
    parts = split(text)
    # As kubelet lays out the projected volume: only the first part so far.
    (parts_dir / "part-00").write_text(parts[0])
    script = (sidecar_script().replace("/etc/healthplane/registry-parts", str(parts_dir))
              .replace("/var/run/healthplane", str(run_dir))
              .replace("/etc/healthplane/config", str(cfg)).replace("sleep 15", "sleep 0.2"))
    env = dict(os.environ, PATH=f"{Path(HEALTHPLANE).parent}:{os.environ['PATH']}")
    log = tmp_path / "sidecar.log"
    proc = subprocess.Popen(["/bin/sh", "-c", script], env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    out = run_dir / "checks.yaml"
    try:
        time.sleep(1.5)
        assert not out.exists(), "assembled from an incomplete set of parts"
        for i, part in enumerate(parts[1:], start=1):
            (parts_dir / f"part-{i:02d}").write_text(part)
        deadline = time.monotonic() + 120
        while not out.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        assert out.read_text() == text
        assert (run_dir / "checks.yaml.alive").exists()      # the liveness heartbeat
        assert load_checks(out, allow_private_targets=False).check_count == 12_000
        # A broken new version is refused and the running file kept.
        bad = split(text.replace("    port: 443\n", "    port: 0\n", 1))
        for i, part in enumerate(bad):
            (parts_dir / f"part-{i:02d}").write_text(part)
        deadline = time.monotonic() + 120
        while "rejected" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "rejected" in log.read_text()
        assert out.read_text() == text
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert log.read_text().count("adopted") == 1, log.read_text()
