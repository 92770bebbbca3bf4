"""TLS scan of a real granian server with testssl.sh and sslyze (issue 13), bounded.

    .venv/bin/python loadtests/tls_scan.py [--json OUT] [--timeout SECONDS] [--skip-testssl|--skip-sslyze]

For each of the default mode (TLS 1.3 only) and `--ssl-protocol-min tls1.2`: a trustme test
certificate (EC P-256, valid 90 days), one granian worker on 127.0.0.1, then

- `testssl -p -S -P -U --jsonfile` (Debian package `testssl.sh`; its binary is `testssl`):
  it must report no vulnerability and no HIGH/CRITICAL finding other than the trust items of
  a test certificate (TESTSSL_TRUST_ITEMS);
- `sslyze --mozilla_config=intermediate 127.0.0.1:PORT` (PyPI `sslyze`, in its own venv
  loadtests/.tlsscan/, created on first use; never the project's .venv): the server must
  comply with Mozilla's intermediate profile except certificate trust (SSLYZE_TRUST_ITEMS).

Each tool run has a timeout; the whole scan holds loadtests/run.py's machine lock (testssl
starts hundreds of openssl processes). Prints one summary line per tool and mode; exit 1 when
any of them fails, 2 when a tool is missing.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APPS = ROOT / "tests" / "apps"
GRANIAN = Path(sys.executable).parent / "granian"
TLSSCAN_VENV = HERE / ".tlsscan"
MODES = ("tls1.3", "tls1.2")

# What a private test CA's certificate cannot pass, whatever the server: an unknown root, no
# CRL or OCSP URI, no CAA record for 127.0.0.1 (and trustme's default 1000-year validity,
# though the certificate made here is valid 90 days).
TESTSSL_TRUST_ITEMS = {"cert_chain_of_trust", "cert_revocation", "cert_validityPeriod", "DNS_CAArecord"}
SEVERE = {"HIGH", "CRITICAL"}
# sslyze's Mozilla check: the path to a trusted root (trustme's CA is in no trust store).
SSLYZE_TRUST_ITEMS = {"certificate_path_validation"}


# ---------------------------------------------------------------- pure: reading the results


def assess_testssl(findings: list[dict[str, Any]]) -> dict[str, Any]:
    """testssl's JSON findings -> severities, the severe ones beyond trust, the vulnerable ones."""
    severities = Counter(f.get("severity", "?") for f in findings)
    severe = [f for f in findings if f.get("severity") in SEVERE and f.get("id") not in TESTSSL_TRUST_ITEMS]
    vulnerable = [
        f
        for f in findings
        if "VULNERABLE" in f.get("finding", "").upper()
        and "NOT VULNERABLE" not in f.get("finding", "").upper()
    ]
    facts = [
        f"{f['id']}: {f['finding']}"
        for f in findings
        if f.get("id") in ("TLS1_2", "TLS1_3", "cipher_order", "ALPN", "sessionresumption_ticket")
    ]
    trust = sorted(
        {f["id"] for f in findings if f.get("severity") in SEVERE and f.get("id") in TESTSSL_TRUST_ITEMS}
    )
    return {
        "severities": dict(severities),
        "severe_not_trust": [f"{f['severity']} {f['id']}: {f['finding']}" for f in severe],
        "vulnerable": [f"{f['id']}: {f['finding']}" for f in vulnerable],
        "trust_items": trust,
        "facts": facts,
        "ok": bool(findings) and not severe and not vulnerable,
    }


_SSLYZE_VERDICT = re.compile(r"^\s*(\S+): (OK - Compliant\.|FAILED - Not compliant\.|ERROR - .*)$", re.M)
_SSLYZE_ISSUE = re.compile(r"^\s+\* (\w+): (.*)$")


def parse_sslyze(text: str) -> dict[str, Any]:
    """sslyze's console output -> the Mozilla-profile verdict and its issues by criterion.

    The verdict is in the "COMPLIANCE AGAINST TLS CONFIGURATION" section: `HOST:PORT: OK -
    Compliant.`, or `FAILED - Not compliant.` followed by `* criterion: description` lines, or
    `ERROR - ...` when the scan itself did not complete."""
    _, found, section = text.partition("COMPLIANCE AGAINST TLS CONFIGURATION")
    if not found:
        return {"verdict": "missing", "issues": {}}
    m = _SSLYZE_VERDICT.search(section)
    if m is None:
        return {"verdict": "missing", "issues": {}}
    verdict = {"O": "compliant", "F": "not compliant"}.get(m.group(2)[0], "error")
    issues: dict[str, str] = {}
    for line in section[m.end() :].splitlines()[1:]:
        im = _SSLYZE_ISSUE.match(line)
        if im is None:
            if line.strip():
                break
            continue
        issues[im.group(1)] = im.group(2).strip()
    return {"verdict": verdict, "target": m.group(1), "issues": issues}


def assess_sslyze(parsed: dict[str, Any]) -> dict[str, Any]:
    beyond = {k: v for k, v in parsed["issues"].items() if k not in SSLYZE_TRUST_ITEMS}
    ok = parsed["verdict"] == "compliant" or (parsed["verdict"] == "not compliant" and not beyond)
    return {**parsed, "beyond_trust": beyond, "ok": ok}


def testssl_line(mode: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"testssl [{mode}]: FAILED: {r['error']}"
    if r["ok"]:
        trust = ", ".join(r["trust_items"]) or "none"
        return (
            f"testssl [{mode}]: OK: no vulnerability, no HIGH/CRITICAL except certificate trust "
            f"items ({trust}); severities {r['severities']}"
        )
    bad = r["vulnerable"] + r["severe_not_trust"]
    return f"testssl [{mode}]: FAILED: {'; '.join(bad) or 'no findings'}"


def sslyze_line(mode: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"sslyze [{mode}]: FAILED: {r['error']}"
    if r["ok"]:
        trust = ", ".join(sorted(r["issues"])) or "none"
        return f"sslyze [{mode}]: OK: compliant with Mozilla intermediate except certificate trust ({trust})"
    if r["verdict"] in ("missing", "error"):
        return f"sslyze [{mode}]: FAILED: no compliance verdict ({r['verdict']})"
    issues = "; ".join(f"{k}: {v}" for k, v in r["beyond_trust"].items())
    return f"sslyze [{mode}]: FAILED: not compliant with Mozilla intermediate: {issues}"


# ---------------------------------------------------------------- running


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("granian did not start listening")


def ensure_sslyze(venv: Path, timeout: float = 900) -> Path:
    """loadtests/.tlsscan/bin/sslyze, the venv created and sslyze installed on first use."""
    exe = venv / "bin" / "sslyze"
    if exe.exists():
        return exe
    print(f"installing sslyze into {venv} (its own venv) ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=timeout)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "sslyze"], check=True, timeout=timeout)
    return exe


def _certificate(workdir: Path, mode: str) -> tuple[Path, Path]:
    import trustme

    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    # 90 days: the profile's lifespan rule (sslyze: < 366 days) is about the certificate.
    # not_before too: trustme's default is 2000-01-01, which makes any lifespan decades long.
    now = _dt.datetime.now(_dt.timezone.utc)
    leaf = ca.issue_cert(
        "127.0.0.1",
        "localhost",
        key_type=trustme.KeyType.ECDSA,
        not_before=now - _dt.timedelta(days=1),
        not_after=now + _dt.timedelta(days=89),
    )
    cert, key = workdir / f"cert-{mode}.pem", workdir / f"key-{mode}.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


def run_testssl(port: int, out: Path, timeout: float) -> dict[str, Any]:
    cmd = ["testssl", "--quiet", "--warnings", "off", "--color", "0", "-p", "-S", "-P", "-U"]
    cmd += ["--jsonfile", str(out), f"https://127.0.0.1:{port}/"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"testssl did not finish within {timeout:.0f} s"}
    findings = json.loads(out.read_text()) if out.exists() else []
    if not findings:
        return {"error": f"no JSON findings (testssl exit {proc.returncode}): {proc.stderr.strip()[-200:]}"}
    return {"rc": proc.returncode, **assess_testssl(findings)}


def run_sslyze(exe: Path, port: int, out: Path, timeout: float) -> dict[str, Any]:
    cmd = [str(exe), "--mozilla_config=intermediate", "--json_out", str(out), f"127.0.0.1:{port}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"sslyze did not finish within {timeout:.0f} s"}
    # exit 1 = not compliant; the verdict and its reasons are in the console text
    return {"rc": proc.returncode, **assess_sslyze(parse_sslyze(proc.stdout)), "text": proc.stdout}


def scan(mode: str, workdir: Path, opts: argparse.Namespace, sslyze: Path | None) -> dict[str, Any]:
    cert, key = _certificate(workdir, mode)
    port = _free_port()
    args = [str(GRANIAN), "--interface", "rsgi", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--ssl-certificate", str(cert), "--ssl-keyfile", str(key), "--ssl-protocol-min", mode]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    server = subprocess.Popen(
        [*args, "tls_apps:rsgi"], cwd=APPS, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    result: dict[str, Any] = {"mode": mode}
    try:
        _wait_port(port, server)
        if not opts.skip_testssl:
            result["testssl"] = run_testssl(port, workdir / f"testssl-{mode}.json", opts.timeout)
        if sslyze is not None:
            result["sslyze"] = run_sslyze(sslyze, port, workdir / f"sslyze-{mode}.json", opts.sslyze_timeout)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
    result["server_rc"] = server.returncode
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per testssl run")
    parser.add_argument("--sslyze-timeout", type=float, default=300, help="seconds per sslyze run")
    parser.add_argument("--skip-testssl", action="store_true")
    parser.add_argument("--skip-sslyze", action="store_true")
    parser.add_argument("--sslyze-venv", type=Path, default=TLSSCAN_VENV)
    opts = parser.parse_args()
    if not opts.skip_testssl and shutil.which("testssl") is None:
        print("testssl not found: apt-get install testssl.sh", file=sys.stderr)
        return 2
    sslyze = None if opts.skip_sslyze else ensure_sslyze(opts.sslyze_venv)
    sys.path.insert(0, str(HERE))
    from run import acquire_machine_lock

    lock = acquire_machine_lock()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = [scan(mode, Path(tmp), opts, sslyze) for mode in MODES]
    finally:
        lock.close()
    ok = True
    for r in results:
        print(f"[{r['mode']}] server exit={r['server_rc']}")
        ok &= r["server_rc"] == 0
        if "testssl" in r:
            t = r["testssl"]
            print("   ", testssl_line(r["mode"], t))
            for line in t.get("facts", []):
                print("       ", line)
            ok &= t.get("ok", False)
        if "sslyze" in r:
            s = r["sslyze"]
            print("   ", sslyze_line(r["mode"], s))
            ok &= s.get("ok", False)
    if opts.json is not None:
        for r in results:
            r.get("sslyze", {}).pop("text", None)
        opts.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
