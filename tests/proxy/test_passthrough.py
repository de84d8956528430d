"""Passthrough rules: what other /v1 paths are forwarded, the 403 that names the setting, check's warnings."""

from __future__ import annotations

import pytest

from proxy.errors import Forbidden
from proxy.passthrough import DEFAULT_ALLOW, Rules, parse_rule, risky_rules


def test_the_default_forwards_only_body_less_methods() -> None:
    rules = Rules.compile(DEFAULT_ALLOW, "passthrough.allow")
    assert rules.allows("GET", "/files/file-1/content")
    assert rules.allows("HEAD", "/files")
    for method, path in (("POST", "/images/generations"), ("DELETE", "/files/f1"), ("WS", "/realtime")):
        assert not rules.allows(method, path)


def test_a_refusal_names_the_path_and_the_setting_to_edit() -> None:
    rules = Rules.compile(["POST /audio/*"], "keys[1].passthrough")
    rules.check("POST", "/audio/transcriptions")
    with pytest.raises(Forbidden) as refused:
        rules.check("POST", "/images/generations")
    assert refused.value.code == "passthrough_refused" and refused.value.http_status == 403
    assert "POST /v1/images/generations" in refused.value.message
    assert "'POST /images/generations' to keys[1].passthrough" in refused.value.message


def test_websocket_rules_must_say_ws() -> None:
    assert not Rules.compile(["/realtime", "* /*"], "p").allows("WS", "/realtime")
    assert Rules.compile(["WS /realtime"], "p").allows("WS", "/realtime")
    assert not Rules.compile(["WS /realtime"], "p").allows("GET", "/realtime")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("images", "not 'METHOD /path'"), ("FETCH /x", "unknown method"), ("POST /v1/files", "below /v1")],
)
def test_bad_rules_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_rule(text)


def test_risky_rules_name_the_prompt_carrying_paths_they_open() -> None:
    lines = risky_rules([Rules.compile([*DEFAULT_ALLOW, "POST /audio/*"], "passthrough.allow")])
    assert lines == [
        "passthrough.allow: 'POST /audio/*' forwards POST /audio/speech, POST /audio/transcriptions, "
        "POST /audio/translations"
    ]
    assert risky_rules([Rules.compile(DEFAULT_ALLOW, "passthrough.allow")]) == []
