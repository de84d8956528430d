"""The hostile-input corpus, generated: every field of a rich valid body of each endpoint, broken in turn.

``mutations()``: for each endpoint's valid body, every node (key or array element, at any depth) is
replaced by a few hostile values (wrong types, null, huge and non-finite numbers, lone surrogates,
nesting, long strings, unknown part types) and, once, removed. ``bodies()``: whole-body faults (empty,
not JSON, invalid UTF-8, a BOM, duplicate keys, nesting bombs, codings, a decompression bomb, chunked
uploads). ``routes()``: methods and paths. ``wire()``: raw bytes no HTTP client would send (bad request
lines, header tricks, request smuggling shapes, chunked junk, traversal, other protocols).
"""

from __future__ import annotations

import copy
import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any

import orjson

from tests.edge.conftest import MAX_BODY, Http, Wire

JSON = {"Content-Type": "application/json"}
CHAT_PATH, COMPLETIONS_PATH, EMBEDDINGS_PATH = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"
RESPONSES_PATH, MESSAGES_PATH = "/v1/responses", "/v1/messages"

CHAT: dict[str, Any] = {
    "model": "mock-gpt",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {"name": "look", "description": "Look closer.", "parameters": {"type": "object"}},
        }
    ],
    "tool_choice": "auto",
    "temperature": 0.5,
    "max_tokens": 16,
    "stop": ["\n\n"],
    "logit_bias": {"50256": -100},
    "response_format": {"type": "text"},
    "user": "user-1",
}
COMPLETIONS: dict[str, Any] = {
    "model": "mock-gpt",
    "prompt": ["Say hello", "Say bye"],
    "max_tokens": 8,
    "temperature": 0.2,
    "echo": False,
    "suffix": "!",
}
EMBEDDINGS: dict[str, Any] = {"model": "mock-embed", "input": ["a cat", "a dog"], "encoding_format": "float"}
RESPONSES: dict[str, Any] = {
    "model": "mock-gpt",
    "instructions": "Be brief.",
    "input": [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Describe it."},
                {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"},
            ],
        },
        {"type": "function_call", "call_id": "call_1", "name": "look", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "a cat"},
    ],
    "tools": [{"type": "function", "name": "look", "parameters": {"type": "object"}}],
    "max_output_tokens": 32,
    "temperature": 0.3,
    "text": {"format": {"type": "text"}},
    "metadata": {"app": "edge"},
}
MESSAGES: dict[str, Any] = {
    "model": "mock-gpt",
    "max_tokens": 32,
    "system": "Be brief.",
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Look at it."}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "look", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "a cat"}]},
    ],
    "tools": [{"name": "look", "description": "Look closer.", "input_schema": {"type": "object"}}],
    "temperature": 0.5,
    "stop_sequences": ["END"],
}
VALID: dict[str, dict[str, Any]] = {
    CHAT_PATH: CHAT,
    COMPLETIONS_PATH: COMPLETIONS,
    EMBEDDINGS_PATH: EMBEDDINGS,
    RESPONSES_PATH: RESPONSES,
    MESSAGES_PATH: MESSAGES,
}


class Raw(str):
    """JSON text put into a body literally (what a JSON library would never write)."""

    __slots__ = ()


# Raw tokens no strict JSON parser accepts: the proxy must answer 400 invalid_json, wherever they are.
NOT_JSON = (Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("1" * 400), Raw('"\\ud800"'))
HOSTILE: tuple[tuple[str, Any], ...] = (
    ("null", None),
    ("true", True),
    ("zero", 0),
    ("-1", -1),
    ("1.5", 1.5),
    ("2**64", 2**64),
    ("empty string", ""),
    ("string", "x"),
    ("NUL string", "\x00\x00"),
    ("emoji", "\U0001f600" * 50),
    ("long string", "a" * 20_000),
    ("empty array", []),
    ("empty object", {}),
    ("array of null", [None]),
    ("unknown part", {"type": "bogus", "bogus": 1}),
    ("nested 100", Raw("[" * 100 + "]" * 100)),
    ("nested 300", Raw("[" * 300 + "]" * 300)),
    *((f"raw {token[:12]}", token) for token in NOT_JSON),
)
_SENTINEL = "\x00edge-sentinel\x00"


def render(body: Any) -> bytes:
    """``body`` as JSON bytes, ``Raw`` values spliced in literally."""
    raws: list[str] = []

    def swap(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(str(value))
            return f"{_SENTINEL}{len(raws) - 1}"
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    text = json.dumps(swap(body), ensure_ascii=False)  # json, not orjson: it writes 2**64 as an integer
    for i, raw in enumerate(raws):
        text = text.replace(orjson.dumps(f"{_SENTINEL}{i}").decode(), raw, 1)
    return text.encode()


def nodes(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every path below ``value``: each key of each object, each index of each array, at any depth."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield (*path, key)
        yield from nodes(child, (*path, key))


def replace(body: dict[str, Any], path: tuple[str | int, ...], value: Any, *, remove: bool = False) -> dict[str, Any]:
    out = copy.deepcopy(body)
    holder: Any = out
    for key in path[:-1]:
        holder = holder[key]
    if remove:
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    return out


def show(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def mutations(per_node: int = 3) -> Iterator[Http]:
    """Each node of each valid body replaced by ``per_node`` hostile values (rotating), and removed once."""
    turn = 0
    for endpoint, valid in VALID.items():
        for path in nodes(valid):
            for k in range(per_node):
                label, value = HOSTILE[(turn * 5 + k * 7) % len(HOSTILE)]
                code = "invalid_json" if value in NOT_JSON or label == "nested 300" else None
                yield Http(
                    "POST", endpoint, render(replace(valid, path, value)), JSON,
                    label=f"{endpoint} {show(path)} := {label}", code=code, top=str(path[0]),
                )  # fmt: skip
            turn += 1
            yield Http(
                "POST", endpoint, render(replace(valid, path, None, remove=True)), JSON,
                label=f"{endpoint} {show(path)} removed", top=str(path[0]),
            )  # fmt: skip


def _bomb(decoded_size: int) -> bytes:
    """A gzip body that inflates to ``decoded_size`` bytes of one JSON string (a decompression bomb)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [packer.compress(b'{"model": "mock-gpt", "messages": [{"role": "user", "content": "')]
    block = b"a" * 65536
    out += [packer.compress(block) for _ in range(decoded_size // len(block))]
    out.append(packer.compress(b'"}]}') + packer.flush())
    return b"".join(out)


def bodies() -> Iterator[Http]:
    """Whole-body faults, on every endpoint."""
    for endpoint, valid in VALID.items():
        good = render(valid)
        bad = [
            ("empty body", b"", "invalid_json"),
            ("whitespace", b" \r\n\t ", "invalid_json"),
            ("null", b"null", "invalid_json"),
            ("array", b"[]", "invalid_json"),
            ("string", b'"hello"', "invalid_json"),
            ("number", b"42", "invalid_json"),
            ("truncated", good[: len(good) // 2], "invalid_json"),
            ("trailing garbage", good + b"}}", "invalid_json"),
            ("invalid utf-8", good.replace(b"mock", b"\xff\xfe", 1), "invalid_json"),
            ("utf-16", good.decode().encode("utf-16"), "invalid_json"),
            ("BOM", b"\xef\xbb\xbf" + good, "invalid_json"),
            ("nesting bomb", b'{"model": "mock-gpt", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "invalid_json"),
            ("object bomb", b'{"a":' * 200 + b"1" + b"}" * 200, "invalid_json"),
            ("huge number", good[:-1] + b', "n": ' + b"9" * 5000 + b"}", "invalid_json"),
            ("gzip junk", b"\x1f\x8b\x08\x00junkjunkjunk", "invalid_body"),
            ("truncated gzip", gzip.compress(good)[:-9], "invalid_body"),
            ("deflate junk", b"\xff\xfejunk", "invalid_body"),
        ]
        for label, body, code in bad:
            headers = dict(JSON)
            if "gzip" in label:
                headers["Content-Encoding"] = "gzip"
            elif "deflate" in label:
                headers["Content-Encoding"] = "deflate"
            yield Http("POST", endpoint, body, headers, label=f"{endpoint} {label}", code=code, expect=(400,))
        yield Http("POST", endpoint, good, JSON, label=f"{endpoint} valid", expect=(200,))
        yield Http("POST", endpoint, good[:-1] + b', "model": "mock-gpt"}', JSON, label=f"{endpoint} duplicate key",
                   expect=(200,))  # fmt: skip
        yield Http("POST", endpoint, good[:-1] + b', "model": 7}', JSON, label=f"{endpoint} duplicate key, bad last",
                   expect=(400,), top="model")  # fmt: skip
        yield Http("POST", endpoint, good, {"Content-Type": "text/plain"}, label=f"{endpoint} text/plain")
        yield Http("POST", endpoint, good, {}, label=f"{endpoint} no content-type")
        yield Http(
            "POST", endpoint, good, {"Content-Type": "multipart/form-data; boundary=x"}, label=f"{endpoint} multipart"
        )
        yield Http("POST", endpoint, gzip.compress(good), {**JSON, "Content-Encoding": "gzip"},
                   label=f"{endpoint} gzip", expect=(200,))  # fmt: skip
        yield Http("POST", endpoint, zlib.compress(good), {**JSON, "Content-Encoding": "deflate"},
                   label=f"{endpoint} deflate", expect=(200,))  # fmt: skip
        for coding in ("br", "zstd", "compress", "gzip, gzip", "x-unknown"):
            yield Http("POST", endpoint, good, {**JSON, "Content-Encoding": coding}, label=f"{endpoint} {coding}",
                       code="unsupported_content_encoding", expect=(415,))  # fmt: skip
        yield Http("POST", endpoint, _bomb(64 * MAX_BODY), {**JSON, "Content-Encoding": "gzip"},
                   label=f"{endpoint} gzip bomb", code="payload_too_large", expect=(413,))  # fmt: skip
        yield Http("POST", endpoint, good + b" " * MAX_BODY, JSON, label=f"{endpoint} too large",
                   code="payload_too_large", expect=(413,))  # fmt: skip
        yield Http("POST", endpoint, [good[:10], good[10:]], JSON, label=f"{endpoint} chunked", expect=(200,))
        yield Http("POST", endpoint, [good] + [b" " * 8192] * 9, JSON, label=f"{endpoint} chunked too large",
                   code="payload_too_large", expect=(413,))  # fmt: skip


def routes() -> Iterator[Http]:
    """Every method on every API path, and paths the proxy does not serve."""
    for endpoint in VALID:
        for method in ("GET", "PUT", "PATCH", "DELETE", "OPTIONS"):
            yield Http(method, endpoint, label=f"{method} {endpoint}", expect=(405,))
        yield Http("HEAD", endpoint, label=f"HEAD {endpoint}", expect=(405,))
    for path in ("/", "/v2/chat/completions", "/v1", "/v1/", "/v1/chat", "/admin", "/favicon.ico", "/.env",
                 "/v1/chat/completions/x", "/%7e", "/v1/models/../../etc/passwd", "/healthz/x"):  # fmt: skip
        yield Http("GET", path, label=f"GET {path}")
        yield Http("POST", path, b"{}", JSON, label=f"POST {path}")
    yield Http("GET", "/v1/models/no-such-model", label="unknown model", expect=(404,))
    yield Http("GET", "/chaperone/keys", label="admin, disabled", expect=(403,))
    yield Http("POST", "/chaperone/keys", b"\x1f\x8bjunk", {"Content-Encoding": "gzip"}, label="admin gzip junk")
    yield Http("POST", CHAT_PATH, render(CHAT), {**JSON, "Expect": "tea-time"}, label="unknown Expect",
               expect=(417,))  # fmt: skip
    yield Http("POST", CHAT_PATH, render(CHAT), {**JSON, "Expect": "100-continue"}, label="Expect 100-continue",
               expect=(200,))  # fmt: skip
    yield Http("POST", CHAT_PATH, render(CHAT), {**JSON, "x-request-id": "a b\tc"}, label="odd request id",
               expect=(200,))  # fmt: skip
    yield Http("POST", CHAT_PATH, render(CHAT), {**JSON, "X-Long": "v" * 9000}, label="long header", expect=(400,))
    many = {f"X-H{i}": "1" for i in range(200)}
    yield Http("POST", CHAT_PATH, render(CHAT), {**JSON, **many}, label="200 headers", expect=(400,))


def _request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + body


def wire() -> Iterator[Wire]:
    """Raw bytes: what reaches the port from broken clients, scanners and smugglers."""
    good = render(CHAT)
    n = len(good)
    post = f"POST {CHAT_PATH} HTTP/1.1\nHost: x\nConnection: close\nContent-Type: application/json\n"
    cases: list[tuple[str, bytes, bool]] = [
        ("garbage line", b"GARBAGE\r\n\r\n", False),
        ("TLS hello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 32, False),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", False),
        ("HTTP/9.9", _request("GET /v1/models HTTP/9.9\nHost: x\n\n"), False),
        ("HTTP/1.0 no host", _request("GET /healthz HTTP/1.0\n\n"), False),
        ("no host", _request("GET /v1/models HTTP/1.1\nConnection: close\n\n"), False),
        ("lower-case method", _request("get /v1/models HTTP/1.1\nHost: x\nConnection: close\n\n"), False),
        ("TRACE", _request("TRACE / HTTP/1.1\nHost: x\nConnection: close\n\n"), False),
        ("PROPFIND", _request("PROPFIND /v1/models HTTP/1.1\nHost: x\nConnection: close\n\n"), False),
        ("CONNECT", _request("CONNECT evil.example:443 HTTP/1.1\nHost: evil.example:443\n\n"), False),
        ("OPTIONS *", _request("OPTIONS * HTTP/1.1\nHost: x\nConnection: close\n\n"), False),
        (
            "absolute form",
            _request("GET http://evil.example/v1/models HTTP/1.1\nHost: x\nConnection: close\n\n"),
            False,
        ),
        ("dot segments", _request("GET /v1/../../etc/passwd HTTP/1.1\nHost: x\nConnection: close\n\n"), False),
        ("encoded dots", _request("GET /v1/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\nHost: x\nConnection: close\n\n"), False),
        (
            "encoded slash",
            _request("GET /v1/files/..%2f..%2fchaperone HTTP/1.1\nHost: x\nConnection: close\n\n"),
            False,
        ),
        ("double slash", _request("GET //etc/passwd HTTP/1.1\nHost: x\nConnection: close\n\n"), False),
        ("NUL in path", _request("GET /v1/models%00 HTTP/1.1\nHost: x\nConnection: close\n\n"), False),
        ("raw NUL in path", b"GET /v1/mo\x00dels HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
        ("bad utf-8 path", b"GET /v1/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
        ("bad percent", _request("GET /v1/models?%zz=%%% HTTP/1.1\nHost: x\nConnection: close\n\n"), False),
        ("long URL", _request(f"GET /{'a' * 9000} HTTP/1.1\nHost: x\n\n"), False),
        ("header no colon", _request("GET /healthz HTTP/1.1\nHost: x\nNoColonHere\n\n"), False),
        ("space before colon", _request("GET /healthz HTTP/1.1\nHost : x\n\n"), False),
        ("NUL in header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nConnection: close\r\n\r\n", False),
        (
            "bare CR in header",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rInjected: 1\r\nConnection: close\r\n\r\n",
            False,
        ),
        ("bare LF lines", b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n", True),
        ("obs-fold", _request("GET /healthz HTTP/1.1\nHost: x\nX-A: a\n folded\nConnection: close\n\n"), False),
        ("bad header name", _request("GET /healthz HTTP/1.1\nHost: x\nX(y): 1\nConnection: close\n\n"), False),
        (
            "request id injection",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nx-request-id: a\rSet-Cookie: x=1\r\nConnection: close\r\n\r\n",
            False,
        ),
        ("negative length", _request(post + "Content-Length: -1\n\n", good), False),
        ("non-numeric length", _request(post + "Content-Length: abc\n\n", good), False),
        ("two lengths", _request(post + f"Content-Length: {n}\nContent-Length: {n + 5}\n\n", good), False),
        ("length and chunked", _request(post + f"Content-Length: {n}\nTransfer-Encoding: chunked\n\n", good), False),
        ("gzip, chunked", _request(post + "Transfer-Encoding: gzip, chunked\n\n", b"0\r\n\r\n"), False),
        ("xchunked", _request(post + "Transfer-Encoding: xchunked\n\n", b"0\r\n\r\n"), False),
        (
            "bad chunk size",
            _request(post + "Transfer-Encoding: chunked\n\n", b"zz\r\n" + good + b"\r\n0\r\n\r\n"),
            False,
        ),
        (
            "huge chunk size",
            _request(post + "Transfer-Encoding: chunked\n\n", b"ffffffffffffffffffff\r\nab\r\n"),
            False,
        ),
        ("chunk without CRLF", _request(post + "Transfer-Encoding: chunked\n\n", b"5\r\nabcdefgh0\r\n\r\n"), False),
        (
            "chunk extension",
            _request(post + "Transfer-Encoding: chunked\n\n", f"{n:x};ext=1\r\n".encode() + good + b"\r\n0\r\n\r\n"),
            False,
        ),
        ("chunked junk", _request(post + "Transfer-Encoding: chunked\n\n", b"\x00\x01\x02junk\r\n\r\n"), False),
        ("short body", _request(post + f"Content-Length: {n + 100}\n\n", good), True),  # then the client hangs up
        ("pipelined junk", _request("GET /healthz HTTP/1.1\nHost: x\n\nJUNK / HTTP/1.1\nHost: x\n\n"), False),
        ("empty", b"", True),
        ("only CRLF", b"\r\n\r\n\r\n", True),
    ]
    for label, data, may_close in cases:
        yield Wire(data, label=label, may_close=may_close)
