"""The parsing and bookkeeping of loadtests/tls_scan.py and loadtests/tls_bench.py, without load:
testssl's JSON findings, sslyze's compliance verdict, the ServerHellos read out of an strace of
wrk (TLS version, resumption), the medians, ratios and targets of the bench.

    .venv/bin/pytest loadtests/test_tls_tools.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tls_bench  # noqa: E402
import tls_scan  # noqa: E402

# ---------------------------------------------------------------- testssl


def _finding(id_: str, severity: str, finding: str) -> dict[str, str]:
    return {"id": id_, "severity": severity, "finding": finding}


GOOD_TESTSSL = [
    _finding("TLS1_3", "OK", "offered with final"),
    _finding("TLS1_2", "INFO", "not offered"),
    _finding("cert_chain_of_trust", "CRITICAL", "failed (chain incomplete)."),
    _finding("DNS_CAArecord", "LOW", "not offered"),
    _finding("heartbleed", "OK", "not vulnerable, no heartbeat extension"),
    _finding("ROBOT", "OK", "not vulnerable, no RSA key transport cipher"),
]


def test_testssl_trust_items_alone_pass() -> None:
    r = tls_scan.assess_testssl(GOOD_TESTSSL)
    assert r["ok"] and r["severe_not_trust"] == [] and r["vulnerable"] == []
    assert r["trust_items"] == ["cert_chain_of_trust"]
    assert r["severities"]["CRITICAL"] == 1
    assert "TLS1_3: offered with final" in r["facts"]
    line = tls_scan.testssl_line("tls1.3", r)
    assert line.startswith("testssl [tls1.3]: OK: no vulnerability") and "cert_chain_of_trust" in line


def test_testssl_severe_finding_beyond_trust_fails() -> None:
    r = tls_scan.assess_testssl([*GOOD_TESTSSL, _finding("cipherlist_NULL", "HIGH", "offered (NOT ok)")])
    assert not r["ok"]
    assert r["severe_not_trust"] == ["HIGH cipherlist_NULL: offered (NOT ok)"]
    assert "FAILED" in tls_scan.testssl_line("tls1.2", r) and "cipherlist_NULL" in tls_scan.testssl_line(
        "tls1.2", r
    )


def test_testssl_vulnerable_fails_but_not_vulnerable_does_not() -> None:
    r = tls_scan.assess_testssl([*GOOD_TESTSSL, _finding("BREACH", "MEDIUM", "potentially VULNERABLE, gzip")])
    assert not r["ok"] and r["vulnerable"] == ["BREACH: potentially VULNERABLE, gzip"]
    assert tls_scan.assess_testssl(GOOD_TESTSSL)["vulnerable"] == []  # "not vulnerable" lines


def test_testssl_no_findings_is_a_failure() -> None:
    assert not tls_scan.assess_testssl([])["ok"]
    assert tls_scan.testssl_line("tls1.3", {"error": "testssl did not finish within 600 s"}) == (
        "testssl [tls1.3]: FAILED: testssl did not finish within 600 s"
    )


# ---------------------------------------------------------------- sslyze

SSLYZE_HEAD = """ SCANS COMPLETED IN 1.2 S
 -----------------------------

 COMPLIANCE AGAINST TLS CONFIGURATION
 ------------------------------------

    Checking results against Mozilla's "intermediate" configuration. See https://ssl-config.mozilla.org/ ...

"""


def test_sslyze_trust_only_counts_as_compliant() -> None:
    text = SSLYZE_HEAD + (
        "    127.0.0.1:4443: FAILED - Not compliant.\n"
        "        * certificate_path_validation: Certificate path validation failed for O=trustme.\n\n"
    )
    parsed = tls_scan.parse_sslyze(text)
    assert parsed == {
        "verdict": "not compliant",
        "target": "127.0.0.1:4443",
        "issues": {"certificate_path_validation": "Certificate path validation failed for O=trustme."},
    }
    r = tls_scan.assess_sslyze(parsed)
    assert r["ok"] and r["beyond_trust"] == {}
    assert tls_scan.sslyze_line("tls1.2", r) == (
        "sslyze [tls1.2]: OK: compliant with Mozilla intermediate except certificate trust "
        "(certificate_path_validation)"
    )


def test_sslyze_real_issue_fails() -> None:
    text = SSLYZE_HEAD + (
        "    127.0.0.1:4443: FAILED - Not compliant.\n"
        "        * certificate_path_validation: Certificate path validation failed.\n"
        "        * tls_curves: TLS curves {'X448', 'secp521r1'} are supported, but should be rejected.\n"
        "\n"
    )
    r = tls_scan.assess_sslyze(tls_scan.parse_sslyze(text))
    assert not r["ok"]
    assert r["beyond_trust"] == {
        "tls_curves": "TLS curves {'X448', 'secp521r1'} are supported, but should be rejected."
    }
    assert "tls_curves" in tls_scan.sslyze_line("tls1.3", r)


def test_sslyze_compliant_and_missing_and_error() -> None:
    ok = tls_scan.assess_sslyze(tls_scan.parse_sslyze(SSLYZE_HEAD + "    127.0.0.1:1: OK - Compliant.\n\n"))
    assert ok["verdict"] == "compliant" and ok["ok"]
    missing = tls_scan.assess_sslyze(tls_scan.parse_sslyze(" SCANS COMPLETED IN 1 S\n"))
    assert missing["verdict"] == "missing" and not missing["ok"]
    err = tls_scan.parse_sslyze(
        SSLYZE_HEAD + "    127.0.0.1:1: ERROR - Scan did not run successfully; review.\n"
    )
    assert err["verdict"] == "error" and not tls_scan.assess_sslyze(err)["ok"]
    assert "no compliance verdict" in tls_scan.sslyze_line("tls1.3", tls_scan.assess_sslyze(err))


# ---------------------------------------------------------------- ServerHellos out of strace


def _server_hello(version: int | None = 0x0304, psk: bool = False, random: bytes = b"\x11" * 32) -> bytes:
    """A ServerHello record (RFC 8446 §4.1.3): legacy version 1.2, supported_versions when
    given, a pre_shared_key when resumed, a dummy key_share."""
    exts = b""
    if version is not None:
        exts += b"\x00\x2b\x00\x02" + version.to_bytes(2, "big")
    exts += b"\x00\x33\x00\x24\x00\x1d\x00\x20" + b"\x22" * 32
    if psk:
        exts += b"\x00\x29\x00\x02\x00\x00"
    body = b"\x03\x03" + random + b"\x20" + b"\x33" * 32 + b"\x13\x02\x00"
    body += len(exts).to_bytes(2, "big") + exts
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + len(hs).to_bytes(2, "big") + hs


def _xx(data: bytes) -> str:
    return "".join(f"\\x{b:02x}" for b in data)


def _strace(pid: int, fd: int, chunks: list[bytes]) -> str:
    lines = [f"{pid} connect({fd}, {{sa_family=AF_INET, sin_port=htons(4443)}}, 16) = -1 EINPROGRESS"]
    lines += [f'{pid} read({fd}, "{_xx(c)}", {len(c)}) = {len(c)}' for c in chunks]
    return "\n".join(lines) + "\n"


def test_server_hello_fields() -> None:
    full = tls_bench.tls_records(_server_hello())[0]
    assert full[0] == 22
    assert tls_bench.server_hello(full[1]) == {"version": 0x0304, "resumed": False, "hrr": False}
    resumed = tls_bench.tls_records(_server_hello(psk=True))[0][1]
    assert tls_bench.server_hello(resumed)["resumed"]
    tls12 = tls_bench.tls_records(_server_hello(version=None))[0][1]
    assert tls_bench.server_hello(tls12)["version"] == 0x0303  # no supported_versions: the legacy field
    hrr = tls_bench.tls_records(_server_hello(random=tls_bench.HRR_RANDOM))[0][1]
    assert tls_bench.server_hello(hrr)["hrr"]
    assert tls_bench.server_hello(b"\x01\x00\x00\x04abcd") is None  # a ClientHello, not a ServerHello


def test_records_stop_at_junk() -> None:
    data = _server_hello() + b"\x14\x03\x03\x00\x01\x01" + b"\x17\x03\x03\x00\x02ab" + b"garbage"
    assert [t for t, _ in tls_bench.tls_records(data)] == [22, 20, 23]
    assert tls_bench.tls_records(b"\x16\x03\x03\x00\x10short") == []


def test_handshake_facts_from_strace() -> None:
    # wrk reads a record header (5 bytes) and then its body; each connect() is a new connection.
    first, again = _server_hello(), _server_hello(psk=True)
    ccs_and_data = b"\x14\x03\x03\x00\x01\x01\x17\x03\x03\x00\x05abcde"
    text = _strace(7, 5, [first[:5], first[5:], ccs_and_data])
    text += _strace(7, 5, [again[:5], again[5:], ccs_and_data])
    text += _strace(7, 6, [again])  # another fd, whole record in one read
    text += '7 read(3, "\\x7f\\x45\\x4c\\x46", 4) = 4\n'  # a library file read: no TLS
    assert tls_bench.handshake_facts(text) == {
        "server_hellos": 3,
        "tls13": 3,
        "resumed": 2,
        "hello_retries": 0,
    }


def test_handshake_facts_counts_a_retry_apart() -> None:
    text = _strace(9, 4, [_server_hello(random=tls_bench.HRR_RANDOM), _server_hello()])
    assert tls_bench.handshake_facts(text) == {
        "server_hellos": 1,
        "tls13": 1,
        "resumed": 0,
        "hello_retries": 1,
    }


# ---------------------------------------------------------------- bench bookkeeping


def _run(load: str, server: str, rps: float, rnd: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "load": load,
        "server": server,
        "round": rnd,
        "rps": rps,
        "p99_ms": 1.0,
        "socket_errors": 0,
        "non_2xx": 0,
        **extra,
    }


def test_summary_medians_ratios_and_targets() -> None:
    runs = []
    for rnd, (ours, rust, uvi) in enumerate([(60e3, 50e3, 40e3), (66e3, 52e3, 41e3), (54e3, 48e3, 39e3)]):
        runs += [
            _run("keepalive", "ours", ours, rnd),
            _run("keepalive", tls_bench.RUST, rust, rnd),
            _run("keepalive", "uvicorn", uvi, rnd),
        ]
    for rnd, (ours, rust, uvi) in enumerate([(3000, 4000, 2000), (3100, 4500, 2400), (2900, 4400, 2600)]):
        runs += [
            _run("handshake", "ours", ours, rnd),
            _run("handshake", tls_bench.RUST, rust, rnd),
            _run("handshake", "uvicorn", uvi, rnd),
        ]
    runs.append({"load": "handshake", "server": "uvicorn", "round": 3, "error": "exited with status 1"})
    s = tls_bench.summarize(runs)
    ka, hs = s["table"]["keepalive"], s["table"]["handshake"]
    assert ka["ours"]["rps"] == 60e3 and ka[tls_bench.RUST]["rps"] == 50e3
    assert ka["ours"]["vs_granian-rust"] == pytest.approx(1.2)
    assert ka["ours"]["spread"] == pytest.approx((66e3 - 54e3) / 60e3)
    assert hs["uvicorn"]["rps"] == 2400 and hs["uvicorn"]["failed"] == 1 and hs["uvicorn"]["runs"] == 3
    assert hs["ours"]["vs_granian-rust"] == pytest.approx(3000 / 4400)
    assert hs["ours"]["vs_uvicorn"] == pytest.approx(3000 / 2400)
    targets = {(t["load"], t["peer"]): t for t in s["targets"]}
    assert targets[("keepalive", tls_bench.RUST)]["met"] is True  # 1.2 >= 1.2
    assert targets[("handshake", tls_bench.RUST)]["met"] is False  # 0.68 < 0.8
    assert targets[("handshake", "uvicorn")]["met"] is True  # 1.25 >= 1.2
    text = tls_bench.render(s)
    assert "target handshake: ours >= 0.8× granian-rust: 0.68× (MISSED)" in text


def test_summary_without_ours_measures_no_target() -> None:
    s = tls_bench.summarize([_run("keepalive", tls_bench.RUST, 50e3)])
    assert all(t["met"] is None and t["ratio"] is None for t in s["targets"])
    assert "not measured" in tls_bench.render(s)


def test_rotation_and_dechunk_and_argv(tmp_path: Path) -> None:
    names = ["ours", tls_bench.RUST, "uvicorn"]
    assert [tls_bench.rotation(names, r)[0] for r in range(4)] == ["ours", tls_bench.RUST, "uvicorn", "ours"]
    assert tls_bench.dechunk(b"5\r\nHello\r\n8;x=y\r\n, world!\r\n0\r\n\r\n") == b"Hello, world!"
    cert = tls_bench.Cert(tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem")
    ours = tls_bench.server_argv("ours", 1234, cert, "/x/granian", tmp_path)
    rust = tls_bench.server_argv(tls_bench.RUST, 1234, cert, "/x/granian", tmp_path)
    assert ours[1:] == rust[1:]  # the same flags for both granians
    assert ours[0] == "/x/granian" and rust[0] == str(tmp_path / "granian")
    assert ["--ssl-certificate", str(cert.cert), "--ssl-keyfile", str(cert.key)] == ours[9:13]
    uvi = tls_bench.server_argv("uvicorn", 1234, cert, "/x/granian", tmp_path)
    assert "--ssl-certfile" in uvi and "--no-access-log" in uvi and uvi[-1] == "asgi_app:app"


def test_s_time_outputs_sum_to_one_rate() -> None:
    out = (
        "Collecting connection statistics for 5 seconds\n****\n\n"
        "566 connections in 0.87s; 650.57 connections/user sec, bytes read 85466\n"
        "566 connections in 6 real seconds, 151 bytes read per connection\n"
    )
    stats = tls_bench.parse_s_time(
        [out, out.replace("566 connections in 0.87s", "434 connections in 0.7s")], 5
    )
    assert stats["requests"] == 1000 and stats["rps"] == 200 and stats["p99_ms"] is None
    with pytest.raises(ValueError):
        tls_bench.parse_s_time(["connect: Connection refused\n"], 5)
    s = tls_bench.summarize([{**_run("full-handshake", "ours", 900.0), "p99_ms": None}])
    assert list(s["table"]) == ["full-handshake"] and s["table"]["full-handshake"]["ours"]["p99_ms"] is None
    assert "| ours | 900 | — |" in tls_bench.render(s)
