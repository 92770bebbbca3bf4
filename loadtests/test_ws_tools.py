"""The WebSocket tools' own logic: Autobahn report parsing and verdicts (autobahn.py), the
picows client's result line, medians and ratios, tables (ws_bench.py). No load generated,
no server started.

    .venv/bin/pytest loadtests/test_ws_tools.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import autobahn  # noqa: E402
import ws_bench  # noqa: E402


def _entry(behavior: str, close: str = "OK", code: int | None = 1000) -> dict[str, object]:
    return {
        "behavior": behavior,
        "behaviorClose": close,
        "remoteCloseCode": code,
        "duration": 1,
        "reportfile": None,
    }


def _write_index(tmp_path: Path, cases: dict[str, dict[str, object]]) -> Path:
    # kosoku's index.json: {agent: {case_id: entry}} as Autobahn writes it.
    (tmp_path / "index.json").write_text(json.dumps({"127.0.0.1:9001": cases}))
    return tmp_path


def test_summary_counts_each_verdict_and_lists_the_rest(tmp_path: Path) -> None:
    cases = {
        "1.1.1": _entry("OK"),
        "1.1.2": _entry("OK"),
        "6.4.3": _entry("NON-STRICT"),
        "7.1.6": _entry("INFORMATIONAL", "INFORMATIONAL"),
        "5.1": _entry("FAILED"),
        "12.1.1": _entry("UNIMPLEMENTED"),
        "13.2.1": _entry("UNIMPLEMENTED"),
        "2.1": _entry("ERROR", "FAILED", None),
    }
    s = autobahn.summarize(autobahn.load_index(_write_index(tmp_path, cases)))
    assert (
        s["OK"],
        s["NON-STRICT"],
        s["INFORMATIONAL"],
        s["FAILED"],
        s["UNIMPLEMENTED"],
        s["OTHER"],
        s["total"],
    ) == (2, 1, 1, 1, 2, 1, 8)
    # Notable cases come in numeric case order (5.1 before 12.1.1, 2.1 before 5.1).
    assert [n["id"] for n in s["notable"]] == ["2.1", "5.1", "6.4.3", "7.1.6", "12.1.1", "13.2.1"]
    line = autobahn.format_summary("ours ASGI", s)
    assert line == (
        "ours ASGI: 8 cases: 2 OK / 1 NON-STRICT / 1 INFORMATIONAL / 1 FAILED / 2 UNIMPLEMENTED / 1 OTHER"
    )


def test_verdict_passes_only_without_failed_unimplemented_or_missing_cases() -> None:
    good = {f"1.1.{i}": _entry("OK") for i in range(1, 4)}
    good["6.4.3"] = _entry("NON-STRICT")
    good["7.13.1"] = _entry("INFORMATIONAL", "INFORMATIONAL", 1002)
    s = autobahn.summarize(good)
    assert autobahn.verdict_ok(s, 5) == (True, [])
    assert autobahn.verdict_ok(s, None) == (True, [])
    # A case missing from the whole suite's report is a failure of the run.
    assert autobahn.verdict_ok(s, 517) == (False, ["5 cases reported, 517 expected"])
    unimpl = dict(good, **{"12.1.1": _entry("UNIMPLEMENTED")})
    assert autobahn.verdict_ok(autobahn.summarize(unimpl), None) == (False, ["1 UNIMPLEMENTED"])
    failed = dict(good, **{"5.1": _entry("FAILED"), "2.2": _entry("ERROR", "FAILED")})
    assert autobahn.verdict_ok(autobahn.summarize(failed), None) == (False, ["1 FAILED", "1 OTHER"])


def test_unclean_close_of_an_ok_case_fails_the_run() -> None:
    s = autobahn.summarize({"1.1.1": _entry("OK", "UNCLEAN", None), "1.1.2": _entry("OK")})
    assert s["bad_close"] == ["1.1.1"]
    assert [n["id"] for n in s["notable"]] == ["1.1.1"]
    assert autobahn.verdict_ok(s, None) == (False, ["1 with a failed close"])


def test_group_ids_compresses_by_major_number() -> None:
    ids = ["12.1.1", "12.1.2", "13.7.18", "9.1.1"]
    assert autobahn.group_ids(ids) == "9.* (1), 12.* (2), 13.* (1)"


def test_describe_case_quotes_the_case_report(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(
        json.dumps(
            {
                "result": "Actual events differ from any expected.",
                "resultClose": "The connection was failed by the wrong endpoint",
                "description": "d",
                "expectation": "e",
                "received": [],
            }
        )
    )
    item = {
        "id": "5.1",
        "behavior": "FAILED",
        "behaviorClose": "FAILED",
        "remoteCloseCode": None,
        "reportfile": "r.json",
    }
    line = autobahn.describe_case(tmp_path, item, verbose=False)
    assert line == (
        "  5.1: FAILED (close FAILED, remote code None) — Actual events differ "
        "from any expected. / The connection was failed by the wrong endpoint"
    )
    assert "expectation: e" in autobahn.describe_case(tmp_path, item, verbose=True)


def test_autobahn_server_argv() -> None:
    argv = autobahn.server_argv("rust", "rsgi", 9001, "/ours", Path("/peers"), ["--no-ws"])
    assert argv == [
        "/peers/granian",
        "--interface",
        "rsgi",
        "--host",
        "127.0.0.1",
        "--port",
        "9001",
        "--workers",
        "1",
        "--no-ws",
        "ws_echo_rsgi:app",
    ]
    assert autobahn.server_argv("ours", "asgi", 1, "/ours", Path("/p"), [])[0] == "/ours"
    with pytest.raises(ValueError):
        autobahn.server_argv("uvicorn", "rsgi", 1, "/ours", Path("/p"), [])


def test_autobahn_interfaces_option() -> None:
    assert autobahn.parse_args([]).interfaces == ["asgi", "rsgi"]
    assert autobahn.parse_args(["--interface", "rsgi"]).interfaces == ["rsgi"]
    assert autobahn.parse_args(["--server", "uvicorn"]).interfaces == ["asgi"]
    with pytest.raises(SystemExit):
        autobahn.parse_args(["--interface", "wsgi"])


# ---------------------------------------------------------------- ws_bench


def test_client_line_is_the_last_json_object() -> None:
    out = 'some warning\n{"msg_s": 1.0}\nnoise\n{"msg_s": 42.5, "messages": 425}\n'
    assert ws_bench.parse_client_line(out) == {"msg_s": 42.5, "messages": 425}
    with pytest.raises(ValueError):
        ws_bench.parse_client_line("Traceback ...\nConnectionRefusedError\n")
    with pytest.raises(ValueError):
        ws_bench.parse_client_line("{not json\n")


def _run(server: str, rate: float, rnd: int, **extra: object) -> dict[str, object]:
    return {"server": server, "round": rnd, "msg_s": rate, "rss_peak": 30 * 2**20, "bad": 0, **extra}


def test_speed_medians_spread_and_both_ratios() -> None:
    names = ["ours-asgi", ws_bench.RUST_ASGI, ws_bench.UVICORN, "granian-rust-rsgi"]
    runs = [_run("ours-asgi", r, i) for i, r in enumerate((60000.0, 66000.0, 54000.0))]
    runs += [_run(ws_bench.RUST_ASGI, r, i) for i, r in enumerate((40000.0, 38000.0, 42000.0))]
    runs += [_run(ws_bench.UVICORN, r, i) for i, r in enumerate((50000.0, 50000.0, 48000.0))]
    runs += [{"server": "granian-rust-rsgi", "round": 0, "error": "start: exited with status 1"}]
    rows = {r["server"]: r for r in ws_bench.summarize_speed(names, runs)}
    ours = rows["ours-asgi"]
    assert ours["msg_s"] == 60000.0 and ours["runs"] == 3
    assert ours["spread"] == pytest.approx(12000 / 60000)
    assert ours[f"vs_{ws_bench.RUST_ASGI}"] == pytest.approx(1.5)
    assert ours[f"vs_{ws_bench.UVICORN}"] == pytest.approx(1.2)
    assert rows[ws_bench.RUST_ASGI][f"vs_{ws_bench.RUST_ASGI}"] == 1.0
    broken = rows["granian-rust-rsgi"]
    assert "msg_s" not in broken and broken["failed"] == 1 and broken["error"].startswith("start")
    assert broken[f"vs_{ws_bench.RUST_ASGI}"] is None
    text = ws_bench.speed_table(ws_bench.SCENARIOS[0], list(rows.values()), 3, 10, True)
    assert "| ours-asgi | 60,000 | 1.50× | 1.20× | 30.0 MiB | 0 | 20% |" in text
    assert "| granian-rust-rsgi | failed: start: exited with status 1 |" in text


def test_speed_without_a_baseline_has_no_ratio() -> None:
    rows = ws_bench.summarize_speed(["ours-asgi"], [_run("ours-asgi", 10.0, 0)])
    assert rows[0][f"vs_{ws_bench.RUST_ASGI}"] is None
    assert rows[0][f"vs_{ws_bench.UVICORN}"] is None


def test_idle_bytes_per_connection_median_and_ratio() -> None:
    def idle(server: str, before: int, per: float) -> dict[str, object]:
        return {
            "server": server,
            "rss_before": before,
            "rss_with": before + int(per * 1000),
            "bytes_per_conn": per,
        }

    runs = [idle(ws_bench.RUST_ASGI, 20_000_000, p) for p in (10_000.0, 12_000.0, 11_000.0)]
    runs += [idle("ours-asgi", 25_000_000, p) for p in (22_000.0, 20_000.0, 30_000.0)]
    rows = {r["server"]: r for r in ws_bench.summarize_idle(["ours-asgi", ws_bench.RUST_ASGI], runs)}
    assert rows["ours-asgi"]["bytes_per_conn"] == 22_000.0
    assert rows["ours-asgi"][f"vs_{ws_bench.RUST_ASGI}"] == pytest.approx(2.0)
    text = ws_bench.idle_table(list(rows.values()), 1000, 3)
    assert "| ours-asgi | 23.8 MiB | 44.8 MiB | 22,000 | 2.00× |" in text


def test_rotation_and_server_argv() -> None:
    assert ws_bench.rotated(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert ws_bench.rotated(["a", "b", "c"], 4) == ["b", "c", "a"]
    servers = {s.name: s for s in ws_bench.SERVERS}
    uv = ws_bench.server_argv(servers[ws_bench.UVICORN], 8000, "/ours", Path("/peers"))
    assert uv == [
        "/peers/uvicorn",
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
        "--workers",
        "1",
        "--no-access-log",
        "--ws",
        "websockets",
        "ws_echo_asgi:app",
    ]
    ours = ws_bench.server_argv(servers["ours-rsgi"], 8000, "/ours", Path("/peers"))
    assert ours[0] == "/ours" and ours[-1] == "ws_echo_rsgi:app" and "rsgi" in ours
    ref = ws_bench.server_argv(servers["picows-ref"], 8000, "/ours", Path("/peers"))
    assert ref == ["/peers/python", "ws_echo_picows.py", "8000"]


def test_bench_options_are_checked() -> None:
    args = ws_bench.parse_args(["--servers", "ours-asgi,uvicorn", "--scenarios", "text16"])
    assert args.server_list == ["ours-asgi", "uvicorn"] and args.scenario_list == ["text16"]
    with pytest.raises(SystemExit):
        ws_bench.parse_args(["--servers", "nginx"])
    with pytest.raises(SystemExit):
        ws_bench.parse_args(["--scenarios", "bin1m"])


def test_whole_suite_runs_in_three_batches_a_selection_in_one() -> None:
    assert autobahn.batches([], []) == [([], ["12.*", "13.*"]), (["12.*"], []), (["13.*"], [])]
    assert autobahn.batches(["9.*"], ["9.1.6"]) == [(["9.*"], ["9.1.6"])]


def test_index_merges_the_batches_and_their_report_paths(tmp_path: Path) -> None:
    for n, cases in ((1, {"1.1.1": "OK", "7.1.6": "INFORMATIONAL"}), (2, {"12.1.1": "FAILED"})):
        part = tmp_path / f"part-{n}"
        part.mkdir()
        entries = {cid: dict(_entry(b), reportfile=f"x_case_{cid}.json") for cid, b in cases.items()}
        (part / "index.json").write_text(json.dumps({"agent": entries}))
    (tmp_path / "part-2" / "x_case_12.1.1.json").write_text(
        json.dumps({"result": "Actual events differ from any expected.", "resultClose": "ok"})
    )
    # part-3 was cut by the time bound: no index, its cases are missing.
    (tmp_path / "part-3").mkdir()
    cases = autobahn.load_index(tmp_path)
    assert sorted(cases) == ["1.1.1", "12.1.1", "7.1.6"]
    assert cases["12.1.1"]["reportfile"] == "part-2/x_case_12.1.1.json"
    s = autobahn.summarize(cases)
    assert autobahn.verdict_ok(s, 517) == (False, ["1 FAILED", "3 cases reported, 517 expected"])
    failed = next(n for n in s["notable"] if n["id"] == "12.1.1")
    assert "differ from any expected" in autobahn.describe_case(tmp_path, failed, verbose=False)
