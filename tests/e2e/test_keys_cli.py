"""`chaperone keys` as an operator runs it, against the store a running proxy reads."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy
from tests.e2e.test_keys_e2e import ADMIN, ADMIN_SECTION, chat


async def keys_cli(home: Path, *args: str, admin_key: str | None = ADMIN, **extra_env: str) -> tuple[int, str, str]:
    """Run ``chaperone keys ARGS`` in its own process; returns the exit status, stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHAPERONE_"))}
    env["CHAPERONE_HOME"] = str(home)
    env.update(extra_env)
    if admin_key is not None:
        env["CHAPERONE_ADMIN_KEY"] = admin_key
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.cli", "keys", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def refused_soon(proxy: RunningProxy, secret: str) -> str:
    """Wait (bounded) until the proxy refuses ``secret``: its key cache lives half a second."""
    deadline = time.monotonic() + 2.0
    while True:
        try:
            await chat(proxy, secret)
        except openai.AuthenticationError as exc:
            return exc.message
        assert time.monotonic() < deadline, "the proxy still accepts the key"
        await asyncio.sleep(0.05)


async def test_create_list_rotate_revoke(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path], tmp_path: Path
) -> None:
    path = write_policy(simple_policy(mock_upstream.url, extra=ADMIN_SECTION))
    proxy = await start_proxy(path)
    home, policy = tmp_path / "home", ("--policy", str(path))  # the proxy's CHAPERONE_HOME, so its store

    status, out, err = await keys_cli(
        home, "create", *policy, "--name", "bot", "--models", "mock-gpt", "--team", "t1", "--user", "ana",
        "--expires", "30d", "--json",
    )  # fmt: skip
    assert status == 0, err
    created: dict[str, Any] = json.loads(out)
    secret = created["key"]
    assert (created["name"], created["models"], created["metadata"]) == (
        "bot",
        ["mock-gpt"],
        {"team": "t1", "user": "ana"},
    )
    assert "hello" in await chat(proxy, secret)

    status, out, err = await keys_cli(home, "list", *policy)
    assert status == 0, err
    assert created["id"] in out and "bot" in out and "active" in out and "team=t1 user=ana" in out
    assert secret not in out + err

    status, out, err = await keys_cli(home, "rotate", created["id"], *policy, "--overlap", "0", "--json")
    assert status == 0, err
    new = json.loads(out)["key"]
    assert "rotated" in await refused_soon(proxy, secret)
    assert await chat(proxy, new)

    status, out, err = await keys_cli(home, "revoke", created["id"], *policy)
    assert status == 0 and "revoked" in out, err
    assert "revoked" in await refused_soon(proxy, new)
    status, out, _ = await keys_cli(home, "list", *policy, "--json")
    assert [k["status"] for k in json.loads(out)] == ["revoked"]
    assert secret not in err and new not in err  # the CLI's own log lines name the key by id only


async def test_human_create_shows_the_secret_once(write_policy: Callable[[str], Path], tmp_path: Path) -> None:
    path = write_policy(simple_policy("http://127.0.0.1:9/v1", extra=ADMIN_SECTION))
    status, out, err = await keys_cli(tmp_path / "home", "create", "--policy", str(path), "--name", "bot")
    assert status == 0, err
    assert "key: sk-chp-" in out and "shown only this once" in out and "expires: never" in out


@pytest.mark.parametrize(
    ("args", "admin_key", "status", "message"),
    [
        (("list",), None, 2, "pass --admin-key or set CHAPERONE_ADMIN_KEY"),
        (("list",), "wrong-admin-key-00000", 2, "does not match admin.key"),
        (("list", "--admin-key", "wrong-admin-key-00000"), ADMIN, 2, "does not match admin.key"),
        (("revoke", "0123456789abcdef"), ADMIN, 1, "no virtual key with id '0123456789abcdef'"),
        (("create", "--name", "x", "--chain", "nope"), ADMIN, 2, "--chain: no chain named 'nope'"),
        (("create", "--name", "x", "--models", "gpt-9"), ADMIN, 2, "--models: no model named 'gpt-9'"),
        (("create", "--name", "x", "--expires", "soon"), ADMIN, 2, "--expires: 'soon' is neither"),
        (("create", "--name", "x", "--meta", "oops"), ADMIN, 2, "--meta takes NAME=VALUE"),
        (("rotate", "0123456789abcdef", "--overlap", "a while"), ADMIN, 2, "--overlap: 'a while' is not a duration"),
    ],
)
async def test_mistakes_are_clear(
    write_policy: Callable[[str], Path],
    tmp_path: Path,
    args: tuple[str, ...],
    admin_key: str | None,
    status: int,
    message: str,
) -> None:
    path = write_policy(simple_policy("http://127.0.0.1:9/v1", extra=ADMIN_SECTION))
    code, out, err = await keys_cli(tmp_path / "home", *args, "--policy", str(path), admin_key=admin_key)
    assert (code, out) == (status, "")
    assert message in err and "Traceback" not in err


async def test_a_policy_without_admin_section_is_refused(write_policy: Callable[[str], Path], tmp_path: Path) -> None:
    path = write_policy(simple_policy("http://127.0.0.1:9/v1"))
    code, _, err = await keys_cli(tmp_path / "home", "list", "--policy", str(path))
    assert code == 2 and "has no admin section" in err and "Traceback" not in err


async def test_help_has_examples(tmp_path: Path) -> None:
    code, out, _ = await keys_cli(tmp_path / "home", "create", "--help")
    assert code == 0 and "examples:" in out and "--expires" in out and "--team" in out


async def test_a_malformed_environment_setting_is_a_clear_message(
    mock_upstream: MockUpstream, write_policy: Callable[[str], Path], tmp_path: Path
) -> None:
    path = write_policy(simple_policy(mock_upstream.url, extra=ADMIN_SECTION))
    status, _, err = await keys_cli(tmp_path / "home", "list", "--policy", str(path), CHAPERONE_PORT="abc")
    assert status == 2 and "bad CHAPERONE_* environment setting" in err and "Traceback" not in err
