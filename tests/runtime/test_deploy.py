"""The files in deploy/ are checked as far as this machine allows: systemd's own verifier,
nginx's own syntax check (with a throwaway prefix and certificate), the container file's shape
(no container engine here to build it)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
VENV_BIN = Path(shutil.which("dr-panel") or PROJECT_ROOT / ".venv" / "bin" / "dr-panel").parent


@pytest.mark.parametrize("unit", ["dr-panel.service", "dr-panel-worker.service"])
def test_systemd_units_verify(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    text = (DEPLOY / "systemd" / unit).read_text()
    assert "ExecStart=/opt/dr-panel/.venv/bin/dr-panel " in text
    # The verifier checks that ExecStart's program exists: point it at this checkout's.
    text = text.replace("/opt/dr-panel/.venv/bin/dr-panel", str(VENV_BIN / "dr-panel"))
    text = text.replace("EnvironmentFile=/etc/dr-panel/env", "EnvironmentFile=-/etc/dr-panel/env")
    (tmp_path / unit).write_text(text)
    result = subprocess.run([analyze, "verify", str(tmp_path / unit)], capture_output=True,
                            text=True, timeout=120)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if unit in line or "Unknown" in line or "ignoring" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dr-panel.example.org")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if nginx is None:
        pytest.skip("nginx is not installed on this machine (apt-get install nginx-light)")
    cert, key = _self_signed(tmp_path)
    site = (DEPLOY / "nginx" / "dr-panel.conf").read_text()
    site = (site.replace("/etc/ssl/dr-panel/fullchain.pem", str(cert))
                .replace("/etc/ssl/dr-panel/privkey.pem", str(key))
                .replace("/var/log/nginx/", f"{tmp_path}/"))
    (tmp_path / "dr-panel.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n access_log off;\n include {tmp_path}/dr-panel.conf;\n}}\n"
    )
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_nginx_config_keeps_query_strings_out_of_its_log() -> None:
    site = (DEPLOY / "nginx" / "dr-panel.conf").read_text()
    formats = [line for line in site.splitlines() if "log_format" in line or "'$" in line]
    assert formats and not any(v in " ".join(formats)
                               for v in ("$request ", "$request_uri", "$args", "$query_string"))
    assert "access_log off" in site.split("location /password/")[1].split("}")[0]
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in site  # replaced, never appended


def test_container_file_runs_as_a_user_without_keys_baked_in() -> None:
    """Cannot be built here (no podman or docker): its shape is what can be checked."""
    lines = [line.strip() for line in (DEPLOY / "Containerfile").read_text().splitlines()
             if line.strip() and not line.strip().startswith("#")]
    assert lines[0].startswith("FROM ")
    assert "USER dr-panel" in lines
    assert lines[-2:] == ['ENTRYPOINT ["dr-panel"]', 'CMD ["serve"]']
    copied = " ".join(line for line in lines if line.startswith("COPY"))
    assert "instance" not in copied and "keys" not in copied
