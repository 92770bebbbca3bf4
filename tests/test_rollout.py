"""The simulated rolling update (loadtests/rollout.py --short): two granian "pods" behind nginx,
a third one surged in, the old one drained by SIGTERM, then a SIGHUP worker roll, all under a
keep-alive client load. Marker `deploy` (nginx-light is installed by the script when missing;
.ci/run runs it with the other deploy checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.deploy
@pytest.mark.timeout(300)
def test_short_rollout_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "rollout.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "loadtests" / "rollout.py"), "--short", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    assert out.exists(), proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert proc.returncode == 0, result
    assert result["failures"] == 0 and result["resets"] == 0, result["errors"]
    assert result["requests"] == result["ok"] > 500
    # Every pod served, each pod stopped cleanly (SIGTERM drain: exit 0), pod-b really rolled.
    assert set(result["per_pod"]) == {"pod-a", "pod-b", "pod-c"}
    assert result["exit_codes"] == {"pod-a": 0, "pod-b": 0, "pod-c": 0}
    assert result["pod_b_rolled"] == 2
    phases = result["per_phase"]
    # The new pod took traffic once in the upstream; the old one none after its removal.
    assert phases["drain-a"].get("pod-c", 0) > 0
    for phase in ("sighup-b", "after"):
        assert "pod-a" not in phases[phase], phases
        assert phases[phase].get("pod-b", 0) > 0, phases
