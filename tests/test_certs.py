"""``healthplane certs`` and the TLS flags every gRPC command shares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from healthplane.runtime.tls import TlsFiles, certificate_dns_names

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "deploy" / "examples"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "healthplane", *args], capture_output=True,
                          text=True, timeout=60)


def test_certs_for_the_example_fleet(tmp_path: Path) -> None:
    out = run("certs", "--out", str(tmp_path), "--fleet", str(EXAMPLES / "fleet.yaml"),
              "--aggregator", "agg.example.com")
    assert out.returncode == 0, out.stderr
    agg = x509.load_pem_x509_certificate((tmp_path / "aggregator.pem").read_bytes())
    sans = agg.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"agg.example.com", "localhost"} <= set(sans.get_values_for_type(x509.DNSName))
    assert "127.0.0.1" in {str(a) for a in sans.get_values_for_type(x509.IPAddress)}
    tls = TlsFiles(str(tmp_path / "checker-use1-a.pem"), str(tmp_path / "checker-use1-a-key.pem"),
                   str(tmp_path / "ca.pem"))
    assert certificate_dns_names(tls.material) == {"use1-a"}
    for name in ("dns", "query", "pdns-backend"):
        assert (tmp_path / f"{name}.pem").exists()
    assert (tmp_path / "ca-key.pem").stat().st_mode & 0o077 == 0


def test_certs_with_a_bad_fleet_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text("regions: 3\n")
    out = run("certs", "--out", str(tmp_path / "c"), "--fleet", str(bad))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and out.stderr.startswith("healthplane certs: ")


@pytest.mark.parametrize("command", ["aggregator", "checker", "dns", "query", "pdns-backend"])
def test_partial_tls_flags_are_a_usage_error(command: str, tmp_path: Path) -> None:
    base = {"aggregator": ["--checks", "c", "--fleet", "f", "--listen", "127.0.0.1:0"],
            "checker": ["--checks", "c", "--fleet", "f", "--id", "x"],
            "dns": ["--zone", "z", "--aggregator", "127.0.0.1:1"],
            "query": ["--aggregator", "127.0.0.1:1"],
            "pdns-backend": ["--zone", "z", "--aggregator", "127.0.0.1:1", "--socket", "s"],
            }[command]
    out = run(command, *base, "--tls-cert", str(tmp_path / "x.pem"))
    # query keeps 2 for "a named check is not healthy"; its errors are 1.
    assert out.returncode == (1 if command == "query" else 2)
    assert "--tls-key and --tls-ca" in out.stderr and "Traceback" not in out.stderr


def test_aggregator_refuses_plaintext_off_loopback_without_insecure() -> None:
    out = run("aggregator", "--checks", str(EXAMPLES / "checks.yaml"),
              "--fleet", str(EXAMPLES / "fleet.yaml"), "--listen", "0.0.0.0:0")
    assert out.returncode == 1
    assert "--insecure" in out.stderr and "Traceback" not in out.stderr


def test_unusable_tls_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "x.pem").write_text("nope\n")
    out = run("query", "--aggregator", "127.0.0.1:1", "--tls-cert", str(tmp_path / "x.pem"),
              "--tls-key", str(tmp_path / "x.pem"), "--tls-ca", str(tmp_path / "x.pem"))
    assert out.returncode == 1
    assert out.stderr.strip() == f"healthplane query: {tmp_path / 'x.pem'}: not a PEM certificate"
