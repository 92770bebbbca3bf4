"""TLS scan of a real granian server with testssl.sh (issue 13), bounded.

    .venv/bin/python loadtests/tls_scan.py [--json OUT] [--timeout SECONDS]

For each of the default mode (TLS 1.3 only) and `--ssl-protocol-min tls1.2`: a trustme test
certificate (EC P-256), one granian worker on 127.0.0.1, then `testssl -p -S -P -U --jsonfile`
(Debian package `testssl.sh`; its binary is `testssl`). The result counts the findings per
severity and fails (exit 1) on any vulnerability or any HIGH/CRITICAL finding other than the
trust items of a test certificate (listed in TRUST_ITEMS), or a mode that could not be scanned.
sslyze's Mozilla-profile check is not run here (not installed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "tests" / "apps"
GRANIAN = Path(sys.executable).parent / "granian"

# What a private test CA's certificate cannot pass, whatever the server: an unknown root, no
# CRL or OCSP URI, trustme's 1000-year validity, no CAA record for 127.0.0.1.
TRUST_ITEMS = {"cert_chain_of_trust", "cert_revocation", "cert_validityPeriod", "DNS_CAArecord"}
SEVERE = {"HIGH", "CRITICAL"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("granian did not start listening")


def scan(mode: str, workdir: Path, timeout: float) -> dict[str, Any]:
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = workdir / f"cert-{mode}.pem", workdir / f"key-{mode}.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    port = _free_port()
    args = [str(GRANIAN), "--interface", "rsgi", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--ssl-certificate", str(cert), "--ssl-keyfile", str(key), "--ssl-protocol-min", mode]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    server = subprocess.Popen(
        [*args, "tls_apps:rsgi"], cwd=APPS, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    out = workdir / f"testssl-{mode}.json"
    try:
        _wait_port(port, server)
        cmd = ["testssl", "--quiet", "--warnings", "off", "--color", "0", "-p", "-S", "-P", "-U"]
        cmd += ["--jsonfile", str(out), f"https://127.0.0.1:{port}/"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
    findings = json.loads(out.read_text()) if out.exists() else []
    severities = Counter(f["severity"] for f in findings)
    severe = [f for f in findings if f["severity"] in SEVERE and f["id"] not in TRUST_ITEMS]
    vulnerable = [
        f
        for f in findings
        if "VULNERABLE" in f.get("finding", "").upper() and "NOT VULNERABLE" not in f["finding"].upper()
    ]
    lines = [
        f"{f['id']}: {f['finding']}"
        for f in findings
        if f["id"] in ("TLS1_2", "TLS1_3", "cipher_order", "ALPN", "sessionresumption_ticket")
    ]
    return {
        "mode": mode,
        "testssl_rc": proc.returncode,
        "server_rc": server.returncode,
        "severities": dict(severities),
        "severe_not_trust": [f"{f['severity']} {f['id']}: {f['finding']}" for f in severe],
        "vulnerable": [f"{f['id']}: {f['finding']}" for f in vulnerable],
        "summary": lines,
        "ok": bool(findings) and not severe and not vulnerable and server.returncode == 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per testssl run")
    opts = parser.parse_args()
    if shutil.which("testssl") is None:
        print("testssl not found: apt-get install testssl.sh", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        results = [scan(mode, Path(tmp), opts.timeout) for mode in ("tls1.3", "tls1.2")]
    for r in results:
        print(f"[{r['mode']}] ok={r['ok']} severities={r['severities']} server exit={r['server_rc']}")
        for line in r["summary"] + r["severe_not_trust"] + r["vulnerable"]:
            print("   ", line)
    if opts.json is not None:
        opts.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
