"""The sidecar image and its examples (Dockerfile, docker-compose.yml, deploy/k8s/) agree with each other and the proxy.

No container engine can build or run an image here (podman installs from Debian, but no base image can
be pulled and crun may not set rlimits in this sandbox), so these tests read the files: the Dockerfile's
instructions, the compose and Kubernetes YAML, and the policies they mount, compiled by the proxy. The
image's start command and health check are run against a real ``chaperone serve`` with the image's
environment. ``test_the_image_builds_and_serves`` does the real thing where an engine works (opt in
with CHAPERONE_CONTAINER_TESTS=1).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from proxy.policy import compile_policy_text
from proxy.registry import PluginRegistry
from tests.conftest import serve_process

ROOT = Path(__file__).resolve().parents[2]
Instruction = tuple[str, str]  # (KEYWORD, arguments)


def instructions(text: str) -> list[Instruction]:
    """A Dockerfile's instructions, continuation lines joined, comments and blank lines dropped."""
    out: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = (pending + stripped).strip()
        pending = ""
        keyword, _, args = whole.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "a continuation line runs off the end of the file"
    return out


def stages(parsed: list[Instruction]) -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for keyword, args in parsed:
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, args))
    return found


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return instructions((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def runtime_stage(dockerfile: list[Instruction]) -> list[Instruction]:
    return stages(dockerfile)[-1]


@pytest.fixture(scope="module")
def image_env(runtime_stage: list[Instruction]) -> dict[str, str]:
    return env_of(runtime_stage)


def _first(stage: list[Instruction], keyword: str) -> str:
    found = [args for kw, args in stage if kw == keyword]
    assert found, f"no {keyword} in the stage"
    return found[-1]


# ---- Dockerfile -----------------------------------------------------------------------------------


def test_the_image_is_multi_stage_and_slim(dockerfile: list[Instruction], runtime_stage: list[Instruction]) -> None:
    parsed = stages(dockerfile)
    assert len(parsed) >= 2
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for kw, a in dockerfile if kw == "ARG" and "=" in a}
    base = _first(runtime_stage, "FROM").split()[0]
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], base)
    assert "slim" in base
    copies = [a for kw, a in runtime_stage if kw == "COPY"]
    assert any(a.startswith("--from=builder /opt/venv") for a in copies)
    runs = " ".join(a for kw, a in runtime_stage if kw == "RUN")
    assert "pip install" not in runs and "gcc" not in runs  # building happens in the first stage only


def test_the_image_runs_as_a_non_root_user(runtime_stage: list[Instruction]) -> None:
    user = _first(runtime_stage, "USER").split(":")[0]
    assert user not in ("root", "0") and user.isdigit() and int(user) >= 1000  # numeric: runAsNonRoot can check it


def test_the_policy_and_port_are_where_the_examples_say(
    image_env: dict[str, str], runtime_stage: list[Instruction]
) -> None:
    assert image_env["CHAPERONE_POLICY"] == "/etc/chaperone/policy.yaml"
    assert _first(runtime_stage, "EXPOSE") == image_env["CHAPERONE_PORT"] == "8080"
    assert image_env["CHAPERONE_HOST"] == "0.0.0.0"  # a container is reached through its interface
    assert json.loads(_first(runtime_stage, "ENTRYPOINT")) == ["chaperone"]
    assert 'chaperone = "proxy.cli:main"' in (ROOT / "pyproject.toml").read_text()


def test_every_copied_path_exists_and_is_in_the_build_context(dockerfile: list[Instruction]) -> None:
    allowed = {
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    for keyword, args in dockerfile:
        if keyword != "COPY" or "--from=" in args:
            continue
        sources = [part for part in args.split() if not part.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.split("/")[0] in allowed, f"{source} is excluded by .dockerignore"


def healthcheck_command(runtime_stage: list[Instruction]) -> list[str]:
    check = _first(runtime_stage, "HEALTHCHECK")
    command: list[str] = json.loads(check.split(" CMD ", 1)[1])
    return command


def test_the_healthcheck_asks_healthz(runtime_stage: list[Instruction]) -> None:
    command = healthcheck_command(runtime_stage)
    assert command[0] == "python" and "/healthz" in command[-1]
    assert "--interval=" in _first(runtime_stage, "HEALTHCHECK")


async def test_the_images_command_serves_and_passes_its_healthcheck(
    tmp_path: Path, image_env: dict[str, str], runtime_stage: list[Instruction]
) -> None:
    """``chaperone serve`` with the image's environment (policy path and home in a temp dir, loopback)."""
    policy = tmp_path / "etc" / "policy.yaml"
    policy.parent.mkdir()
    shutil.copy(ROOT / "proxy" / "policies" / "default.yaml", policy)
    env = {**image_env, "CHAPERONE_POLICY": str(policy), "CHAPERONE_HOST": "127.0.0.1"}
    env["CHAPERONE_LOCAL_MODEL"] = "off"  # the image installs no llama.cpp (no `local` extra): as it would fall back
    env.pop("PATH", None)
    env.pop("CHAPERONE_PORT", None)  # serve_process picks a free one
    env.pop("CHAPERONE_HOME", None)  # and a home under tmp_path
    async with serve_process(tmp_path / "home", **env) as (_, url):
        port = str(urlsplit(url).port)
        command = [sys.executable, *healthcheck_command(runtime_stage)[1:]]
        assert await _run(command, port) == 0
    assert await _run(command, port) != 0  # the check can fail: nothing listens any more


async def _run(command: list[str], port: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        *command, env={**os.environ, "CHAPERONE_PORT": port}, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await asyncio.wait_for(proc.wait(), 20)


# ---- docker-compose.yml ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_wires_app_to_chaperone_to_vllm(compose: dict[str, Any], image_env: dict[str, str]) -> None:
    services = compose["services"]
    assert set(services) == {"app", "chaperone", "vllm"}
    base = urlsplit(services["app"]["environment"]["OPENAI_BASE_URL"])
    assert (base.hostname, str(base.port), base.path) == ("chaperone", image_env["CHAPERONE_PORT"], "/v1")
    assert services["app"]["depends_on"]["chaperone"]["condition"] == "service_healthy"
    assert services["chaperone"]["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert services["chaperone"]["build"] == "." and (ROOT / "Dockerfile").exists()
    gpu = services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    assert "ports" not in services["vllm"]  # only the gateway is published


def test_compose_mounts_a_policy_that_routes_to_the_vllm_service(
    compose: dict[str, Any], image_env: dict[str, str], registry: PluginRegistry
) -> None:
    chaperone = compose["services"]["chaperone"]
    mounts = [v.split(":") for v in chaperone["volumes"]]
    source = next(m[0] for m in mounts if m[1] == image_env["CHAPERONE_POLICY"])
    text = (ROOT / source).read_text()
    policy = compile_policy_text(text, registry, source=source, env={})
    upstream = urlsplit(policy.backends["vllm"].url or "")
    vllm_port = next(a.split("=")[1] for a in compose["services"]["vllm"]["command"] if a.startswith("--port="))
    assert (upstream.hostname, str(upstream.port)) == ("vllm", vllm_port)
    served = next(a.split("=")[1] for a in compose["services"]["vllm"]["command"] if a.startswith("--model="))
    assert policy.route_for("llama").upstream_model == served


# ---- deploy/k8s -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "sidecar.yaml").read_text()))
    return {doc["kind"]: doc for doc in docs if doc}


def test_k8s_runs_chaperone_as_a_native_sidecar_on_loopback(
    k8s: dict[str, dict[str, Any]], runtime_stage: list[Instruction]
) -> None:
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    (sidecar,) = [c for c in pod["initContainers"] if c["name"] == "chaperone"]
    assert sidecar["restartPolicy"] == "Always"
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["CHAPERONE_HOST"] == "127.0.0.1"
    port = int(env["CHAPERONE_PORT"])
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port, "host": "127.0.0.1"}
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (app,) = pod["containers"]
    app_env = {e["name"]: e.get("value") for e in app["env"]}
    assert app_env["OPENAI_BASE_URL"] == f"http://127.0.0.1:{port}/v1"
    security = sidecar["securityContext"]
    assert security["runAsUser"] == int(_first(runtime_stage, "USER").split(":")[0])
    assert security["readOnlyRootFilesystem"] and security["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_k8s_mounts_a_policy_the_proxy_accepts_where_the_image_reads_it(
    k8s: dict[str, dict[str, Any]], image_env: dict[str, str], registry: PluginRegistry
) -> None:
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
    policy_path = Path(next(e["value"] for e in sidecar["env"] if e["name"] == "CHAPERONE_POLICY"))
    assert str(policy_path) == image_env["CHAPERONE_POLICY"]
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[str(policy_path.parent)])
    config_map = k8s["ConfigMap"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    text = config_map["data"][policy_path.name]
    compile_policy_text(text, registry, source="deploy/k8s/sidecar.yaml", env={"OPENAI_API_KEY": "sk-x"})
    assert image_env["CHAPERONE_HOME"] in mounts  # writable state on a read-only root filesystem
    secret = next(e for e in sidecar["env"] if e["name"] == "OPENAI_API_KEY")
    assert "secretKeyRef" in secret["valueFrom"]  # the key never sits in the manifest


# ---- a real build, where a container engine works ------------------------------------------------


@pytest.mark.slow
def test_the_image_builds_and_serves(tmp_path: Path) -> None:
    engine = shutil.which("podman") or shutil.which("docker")
    if os.environ.get("CHAPERONE_CONTAINER_TESTS") != "1" or engine is None:
        pytest.skip("set CHAPERONE_CONTAINER_TESTS=1 on a machine with podman or docker that can pull python:3.11-slim")
    tag = "localhost/chaperone-test:latest"
    subprocess.run([engine, "build", "-t", tag, str(ROOT)], check=True, timeout=1800)
    name = f"chaperone-test-{os.getpid()}"
    subprocess.run([engine, "run", "-d", "--rm", "--name", name, "-p", "127.0.0.1::8080", tag], check=True, timeout=60)
    try:
        out = subprocess.run([engine, "port", name, "8080"], check=True, capture_output=True, text=True, timeout=30)
        port = out.stdout.strip().rsplit(":", 1)[1]
        probe = "import urllib.request as u, sys; sys.exit(u.urlopen(sys.argv[1], timeout=2).status != 200)"
        for _ in range(60):
            if subprocess.run([sys.executable, "-c", probe, f"http://127.0.0.1:{port}/healthz"]).returncode == 0:
                break
            subprocess.run([engine, "exec", name, "true"], check=True, timeout=10)  # still running
            time.sleep(1)  # polling the start-up, not measuring it
        else:
            pytest.fail("the container never answered /healthz")
        head = subprocess.run(
            [sys.executable, "-c", "import urllib.request as u, sys; print(dict(u.urlopen(sys.argv[1]).headers))",
             f"http://127.0.0.1:{port}/healthz"], capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert "Server" not in head.stdout
        user = subprocess.run([engine, "exec", name, "id", "-u"], capture_output=True, text=True, check=True)
        assert user.stdout.strip() == "10001"
    finally:
        subprocess.run([engine, "rm", "-f", name], timeout=60)
