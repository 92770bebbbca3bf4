"""Autobahn TestSuite (all 517 cases) against a WebSocket echo app, through kosoku.

    .venv/bin/python loadtests/autobahn.py                      # ours, ASGI then RSGI
    .venv/bin/python loadtests/autobahn.py --server rust --interface rsgi
    .venv/bin/python loadtests/autobahn.py --cases '12.*' --cases '13.*' -v

kosoku (PyPI) runs the Autobahn TestSuite's own case files with a native runner; it is
installed on first use into its own virtualenv loadtests/.autobahn/ (never the project's
.venv). For each interface the script starts one worker on 127.0.0.1 serving
apps/ws_echo_<iface>.py, runs `kosoku` (fuzzingclient mode) against it with a wall-clock
bound, reads the report kosoku writes (Autobahn's index.json layout), prints the counts
per verdict and the cases that are not OK, and exits 1 if any case is FAILED or
UNIMPLEMENTED (or has another non-passing verdict), if fewer cases ran than selected, if
the run timed out or if the server died. Reports (JSON + HTML per case) stay in
loadtests/.autobahn/reports/<server>-<iface>/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as harness  # noqa: E402  (loadtests/run.py: Running, free_port, lock, wait_ready)

VENV = HERE / ".autobahn"
REPORTS = VENV / "reports"
KOSOKU_SPEC = "kosoku"
# The whole suite: Autobahn's 517 server cases (1.* to 13.*), which kosoku runs by default.
ALL_CASES = 517

# Autobahn's verdict labels (the `behavior` field of its index.json). A case passes with
# OK, NON-STRICT (a SHOULD not followed, still conformant) or INFORMATIONAL; everything
# else (FAILED, UNIMPLEMENTED, and kosoku's ERROR / NO CLOSE) counts against the server.
VERDICTS = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED")
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
# Close verdicts that still pass (Autobahn's report colours the rest as failures; a
# WRONG CODE close already makes the case NON-STRICT in its `behavior`).
CLOSE_PASSING = {"OK", "INFORMATIONAL", "WRONG CODE", "FAILED BY CLIENT"}


# ---------------------------------------------------------------- kosoku install


def kosoku_exe() -> Path:
    return VENV / "bin" / "kosoku"


def ensure_kosoku(python: str) -> Path:
    """Create loadtests/.autobahn and pip-install kosoku into it, once."""
    exe = kosoku_exe()
    if exe.exists():
        return exe
    print(f"autobahn: installing {KOSOKU_SPEC} into {VENV}", file=sys.stderr, flush=True)
    subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", KOSOKU_SPEC], check=True
    )
    if not exe.exists():
        sys.exit(f"autobahn: {KOSOKU_SPEC} installed but {exe} is missing")
    return exe


# ---------------------------------------------------------------- servers


def server_argv(
    server: str, iface: str, port: int, ours: str, peers_bin: Path, extra: list[str]
) -> list[str]:
    """One worker, 127.0.0.1, defaults otherwise (WebSockets and, for ours,
    permessage-deflate are on by default), like run.py's servers."""
    module = f"ws_echo_{iface}:app"
    if server in ("ours", "rust"):
        exe = ours if server == "ours" else str(peers_bin / "granian")
        return [
            exe,
            "--interface",
            iface,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            *extra,
            module,
        ]
    if server == "uvicorn":
        if iface != "asgi":
            raise ValueError("uvicorn serves ASGI only")
        return [
            str(peers_bin / "uvicorn"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            *extra,
            module,
        ]
    raise ValueError(f"unknown server {server!r}")


# ---------------------------------------------------------------- report parsing


def load_index(outdir: Path) -> dict[str, dict[str, Any]]:
    """Case id -> index entry, from kosoku's Autobahn-style index.json
    ({agent: {case_id: {behavior, behaviorClose, remoteCloseCode, duration, reportfile}}})
    in outdir and in each of its part-N/ folders (one per kosoku batch); a part's
    reportfile becomes relative to outdir."""
    cases: dict[str, dict[str, Any]] = {}
    for index in [outdir / "index.json", *sorted(outdir.glob("part-*/index.json"))]:
        if not index.is_file():
            continue
        sub = index.parent.relative_to(outdir)
        for entries in json.loads(index.read_text()).values():
            for cid, entry in entries.items():
                entry = dict(entry)
                if entry.get("reportfile") and str(sub) != ".":
                    entry["reportfile"] = f"{sub}/{entry['reportfile']}"
                cases[cid] = entry
    return cases


def batches(cases: list[str], exclude: list[str]) -> list[tuple[list[str], list[str]]]:
    """(include, exclude) per kosoku call. The whole suite runs as three calls, 1-11, then
    12.* and 13.* (216 permessage-deflate cases, most of the time): kosoku writes its report
    only when a call ends, so a call cut by the time bound loses only its own cases."""
    if cases or exclude:
        return [(list(cases), list(exclude))]
    return [([], ["12.*", "13.*"]), (["12.*"], []), (["13.*"], [])]


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in case_id.split("."))


def summarize(cases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Counts per verdict plus the cases that are not plainly OK, sorted by id."""
    counts: Counter[str] = Counter()
    notable: list[dict[str, Any]] = []
    bad_close: list[str] = []
    for cid in sorted(cases, key=case_key):
        entry = cases[cid]
        behavior = str(entry.get("behavior"))
        close = str(entry.get("behaviorClose"))
        counts[behavior if behavior in VERDICTS else "OTHER"] += 1
        if behavior in PASSING and close not in CLOSE_PASSING:
            bad_close.append(cid)
        if behavior != "OK" or close not in CLOSE_PASSING:
            notable.append(
                {
                    "id": cid,
                    "behavior": behavior,
                    "behaviorClose": close,
                    "remoteCloseCode": entry.get("remoteCloseCode"),
                    "reportfile": entry.get("reportfile"),
                }
            )
    out = {v: counts.get(v, 0) for v in VERDICTS}
    out["OTHER"] = counts.get("OTHER", 0)
    out["total"] = len(cases)
    out["bad_close"] = bad_close
    out["notable"] = notable
    return out


def verdict_ok(summary: dict[str, Any], expected_total: int | None) -> tuple[bool, list[str]]:
    """The run passes with 0 FAILED, 0 UNIMPLEMENTED, no other non-passing verdict, no
    failed close, and (for the whole suite) all cases present."""
    why = []
    for key in ("FAILED", "UNIMPLEMENTED", "OTHER"):
        if summary[key]:
            why.append(f"{summary[key]} {key}")
    if summary["bad_close"]:
        why.append(f"{len(summary['bad_close'])} with a failed close")
    if expected_total is not None and summary["total"] != expected_total:
        why.append(f"{summary['total']} cases reported, {expected_total} expected")
    return not why, why


def group_ids(ids: list[str]) -> str:
    """`12.1.1, 12.1.2, 13.1.1` -> `12.* (2), 13.* (1)`: hundreds of UNIMPLEMENTED
    compression cases in one line."""
    groups: Counter[str] = Counter(cid.split(".")[0] for cid in ids)
    return ", ".join(f"{g}.* ({n})" for g, n in sorted(groups.items(), key=lambda kv: int(kv[0])))


def format_summary(label: str, summary: dict[str, Any]) -> str:
    counts = " / ".join(f"{summary[v]} {v}" for v in VERDICTS)
    if summary["OTHER"]:
        counts += f" / {summary['OTHER']} OTHER"
    return f"{label}: {summary['total']} cases: {counts}"


def describe_case(outdir: Path, item: dict[str, Any], verbose: bool) -> str:
    """One line per notable case, with the report's own explanation when present."""
    line = (
        f"  {item['id']}: {item['behavior']} (close {item['behaviorClose']}, "
        f"remote code {item['remoteCloseCode']})"
    )
    report = outdir / str(item.get("reportfile") or "")
    if item.get("reportfile") and report.is_file():
        try:
            detail = json.loads(report.read_text())
        except (OSError, ValueError):
            return line
        line += f" — {detail.get('result', '')} / {detail.get('resultClose', '')}"
        if verbose:
            line += (
                f"\n      description: {detail.get('description', '')}"
                f"\n      expectation: {detail.get('expectation', '')}"
                f"\n      received: {str(detail.get('received'))[:300]}"
                f"\n      report: {report}"
            )
    return line


# ---------------------------------------------------------------- one run


def run_kosoku(
    exe: Path,
    port: int,
    outdir: Path,
    cases: list[str],
    exclude: list[str],
    parallelism: int,
    timeout: float,
    log_path: Path,
) -> tuple[int | None, float]:
    """kosoku in its own process group, killed with it when the bound runs out.
    Returns (exit status or None on timeout, seconds taken)."""
    argv = [str(exe), "-p", str(parallelism), "-o", str(outdir)]
    for c in cases:
        argv += ["-i", c]
    for c in exclude:
        argv += ["-x", c]
    argv.append(f"ws://127.0.0.1:{port}")
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            status: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = None
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
    return status, time.monotonic() - t0


def run_interface(args: argparse.Namespace, exe: Path, iface: str) -> dict[str, Any]:
    label = f"{args.server} {iface.upper()}"
    outdir = args.reports / f"{args.server}-{iface}"
    shutil.rmtree(outdir, ignore_errors=True)  # never read a stale index
    outdir.mkdir(parents=True)
    port = harness.free_port()
    argv = server_argv(args.server, iface, port, args.ours, args.peers_bin, args.server_arg)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    env["PYTHONUNBUFFERED"] = "1"
    result: dict[str, Any] = {"label": label, "argv": argv, "outdir": str(outdir)}
    srv = harness.Running(argv, env, outdir / "server.log")
    try:
        harness.wait_ready(srv, port, "/", b"", args.startup_timeout)
        deadline = time.monotonic() + args.timeout
        took_all = 0.0
        parts = batches(args.cases, args.exclude)
        for n, (inc, exc_) in enumerate(parts, 1):
            what = " ".join(inc) if inc else "all" + "".join(f" -x {x}" for x in exc_)
            left = deadline - time.monotonic()
            if left <= 0:
                result.setdefault("error", f"no time left for part {n} ({what})")
                break
            print(
                f"{label}: port {port}, kosoku -p {args.parallelism} part {n}/{len(parts)} "
                f"({what}), {left:.0f} s left ...",
                flush=True,
            )
            part = outdir / f"part-{n}"
            part.mkdir()
            status, took = run_kosoku(exe, port, part, inc, exc_, args.parallelism, left, part / "kosoku.log")
            took_all += took
            result.setdefault("parts", []).append(
                {"cases": what, "status": status, "seconds": round(took, 1)}
            )
            if status is None:
                result.setdefault("error", f"part {n} ({what}) cut by the {args.timeout:.0f} s bound")
            if srv.proc.poll() is not None:
                result["error"] = f"server exited during the run (status {srv.proc.returncode})"
                break
        result["seconds"] = round(took_all, 1)
    except Exception as exc:  # reported, the next interface still runs
        result["error"] = f"{exc}"
    finally:
        srv.stop()
    found = load_index(outdir)
    if found:
        result["summary"] = summarize(found)
    elif "error" not in result:
        result["error"] = "kosoku wrote no index.json (see kosoku.log)"
    return result


def report(args: argparse.Namespace, result: dict[str, Any]) -> bool:
    expected = None if (args.cases or args.exclude) else ALL_CASES
    outdir = Path(result["outdir"])
    ok = "error" not in result
    if "summary" in result:
        s = result["summary"]
        print(format_summary(result["label"], s) + f" ({result.get('seconds', '?')} s)")
        passed, why = verdict_ok(s, expected)
        ok = ok and passed
        unimpl = [n["id"] for n in s["notable"] if n["behavior"] == "UNIMPLEMENTED"]
        listed = [n for n in s["notable"] if n["behavior"] != "UNIMPLEMENTED"]
        for item in listed[: args.max_listed]:
            print(describe_case(outdir, item, args.verbose))
        if len(listed) > args.max_listed:
            print(f"  ... and {len(listed) - args.max_listed} more (see {outdir})")
        if unimpl:
            print(f"  UNIMPLEMENTED: {group_ids(unimpl)}")
        if why:
            print(f"{result['label']}: NOT passing: {', '.join(why)}")
    if "error" in result:
        print(f"{result['label']}: error: {result['error']}")
        tail = outdir / "server.log"
        if tail.is_file():
            for ln in tail.read_text(errors="replace").splitlines()[-8:]:
                print(f"    | {ln}")
    print(f"{result['label']}: reports in {outdir}/ (index.html)")
    return ok


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--server",
        choices=("ours", "rust", "uvicorn"),
        default="ours",
        help="server under test (default ours; rust = loadtests/.peers' granian)",
    )
    p.add_argument(
        "--interface", default="asgi,rsgi", help="asgi, rsgi or both comma-separated (default asgi,rsgi)"
    )
    p.add_argument(
        "--cases",
        "-i",
        action="append",
        default=[],
        help="kosoku case id or glob (repeatable; default the whole suite)",
    )
    p.add_argument(
        "--exclude",
        "-x",
        action="append",
        default=[],
        help="kosoku case id or glob to leave out (repeatable)",
    )
    p.add_argument(
        "--parallelism",
        "-p",
        type=int,
        default=4,
        help="cases kosoku runs at once (default 4). The cases share one worker, so each "
        "case's wall time grows with this, and kosoku fails a case that takes over 60 s: "
        "with 8 on a loaded 2-core machine four 12.3/12.4 cases (1000 deflated round trips "
        "each) did; one at a time, 12.* and 13.* take ~15 min",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=1500.0,
        help="wall-clock bound for kosoku per interface, seconds (default 1500)",
    )
    p.add_argument("--startup-timeout", type=float, default=30.0)
    p.add_argument("--ours", default=str(harness.REPO / ".venv" / "bin" / "granian"))
    p.add_argument("--peers-bin", type=Path, default=harness.PEERS / "bin")
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra flag for the server (repeatable), e.g. --server-arg=--no-ws",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter for creating loadtests/.autobahn (default this one)",
    )
    p.add_argument("--no-lock", action="store_true", help="do not take the machine-wide loadtests lock")
    p.add_argument("--max-listed", type=int, default=40, help="notable cases printed per run")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument(
        "--reports",
        type=Path,
        default=REPORTS,
        help="where <server>-<iface>/ report folders go (default loadtests/.autobahn/reports; emptied first)",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print each notable case's description, expectation and events",
    )
    args = p.parse_args(argv)
    ifaces = [s.strip() for s in args.interface.split(",") if s.strip()]
    if not ifaces or any(i not in ("asgi", "rsgi") for i in ifaces):
        p.error("--interface takes asgi, rsgi or asgi,rsgi")
    if args.server == "uvicorn" and ifaces != ["asgi"]:
        if "--interface" in (argv if argv is not None else sys.argv):
            p.error("uvicorn serves ASGI only")
        ifaces = ["asgi"]
    args.interfaces = ifaces
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def _term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    exe = ensure_kosoku(args.python)
    # The 9.* cases push up to 16 MiB messages as fast as they can: a load run pinned
    # on the same CPUs at the same time would measure this, so share run.py's lock.
    lock = None if args.no_lock else harness.acquire_machine_lock()
    results = []
    ok = True
    try:
        for iface in args.interfaces:
            res = run_interface(args, exe, iface)
            results.append(res)
            ok = report(args, res) and ok
    except KeyboardInterrupt:
        print("interrupted: the server and kosoku were stopped", file=sys.stderr)
        return 130
    finally:
        if lock is not None:
            lock.close()
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    print("autobahn: PASS" if ok else "autobahn: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
