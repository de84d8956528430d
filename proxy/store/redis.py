"""The shared store: Redis, so several proxy replicas see the same cache, budgets, limits and breakers.

One client with one bounded connection pool per store. Counters use ``INCRBYFLOAT``; a windowed counter's
increment and expiry, and ``add``'s check-and-set, run as Lua scripts, so each is one atomic step on the
server. Values carry their expiry on the store's clock (see ``proxy.store.base``) and a real ``PX`` expiry,
so Redis collects them. Redis failures never leave this module as redis exceptions: connection problems
and timeouts become ``StoreUnavailable``, anything else ``StoreError``.

The client retries a command once after a connection error and never after a timeout: a retried
``INCRBYFLOAT`` whose first reply was lost would count twice.
"""

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from proxy.store.base import (
    Clock,
    StoreError,
    StoreUnavailable,
    check_amount,
    check_positive,
    expires_at,
    is_live,
    pack_value,
    unpack_value,
    window_slot,
)

__all__ = ["RedisStore"]

CONNECT_TIMEOUT_S = 1.0
COMMAND_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 32
"""Per store, so per replica; callers beyond it wait (up to ``COMMAND_TIMEOUT_S``) for a free connection."""

_DELETE_BATCH = 1000  # keys per UNLINK command

# KEYS[1] key; ARGV[1] framed value, ARGV[2] now in ms, ARGV[3] PX in ms or "".
_ADD_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local expires = string.match(current, '^(%d*)|')
  if expires == nil then return redis.error_reply('key holds a counter, not a value') end
  if expires == '' or tonumber(expires) > tonumber(ARGV[2]) then return 0 end
end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
end
return 1
"""

# KEYS[1] window key; ARGV[1] amount, ARGV[2] PEXPIRE in ms. Returns the new total as a string.
_WINDOW_INCR_SCRIPT = """
local total = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return total
"""


class RedisStore:
    """``Store`` backed by Redis at ``url``; nothing connects until the first command."""

    def __init__(self, url: str, *, prefix: str, clock: Clock) -> None:
        self._where = _redact(url)
        self._prefix = prefix
        self._clock = clock
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=COMMAND_TIMEOUT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
            retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        )
        self._client = redis.asyncio.Redis.from_pool(pool)
        self._add_script = self._client.register_script(_ADD_SCRIPT)
        self._window_incr_script = self._client.register_script(_WINDOW_INCR_SCRIPT)
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, prefix={self._prefix!r})"

    async def get(self, key: str) -> bytes | None:
        full_key = self._prefix + key
        with self._translate(key):
            raw = await self._client.get(full_key)
        if raw is None:
            return None
        value, expires = unpack_value(key, _as_bytes(raw))
        return value if is_live(expires, self._clock()) else None

    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        check_positive("ttl_s", ttl_s)
        packed = pack_value(value, expires_at(self._clock(), ttl_s))
        with self._translate(key):
            await self._client.set(self._prefix + key, packed, px=None if ttl_s is None else _ms(ttl_s))

    async def set_many(self, items: Sequence[tuple[str, bytes]], *, ttl_s: float | None = None) -> None:
        check_positive("ttl_s", ttl_s)
        if not items:
            return
        expires = expires_at(self._clock(), ttl_s)
        px = None if ttl_s is None else _ms(ttl_s)
        with self._translate(items[0][0]):
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in items:
                    _ = pipe.set(self._prefix + key, pack_value(value, expires), px=px)  # sent by execute()
                await pipe.execute()

    async def add(self, key: str, value: bytes, *, ttl_s: float | None = None) -> bool:
        check_positive("ttl_s", ttl_s)
        now = self._clock()
        px: int | str = "" if ttl_s is None else _ms(ttl_s)
        args: list[bytes | int | str] = [pack_value(value, expires_at(now, ttl_s)), math.floor(now * 1000), px]
        with self._translate(key):
            added = await self._add_script(keys=[self._prefix + key], args=args)
        return bool(added)

    async def delete(self, key: str) -> bool:
        with self._translate(key):
            raw = await self._client.getdel(self._prefix + key)
        if raw is None:
            return False
        raw = _as_bytes(raw)
        if b"|" not in raw:
            return True  # a counter
        return is_live(unpack_value(key, raw)[1], self._clock())

    async def delete_many(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        with self._translate(keys[0]):
            for start in range(0, len(keys), _DELETE_BATCH):
                await self._client.unlink(*(self._prefix + key for key in keys[start : start + _DELETE_BATCH]))

    async def incr(self, key: str, amount: float = 1, *, window_s: float | None = None) -> float:
        check_amount(amount)
        check_positive("window_s", window_s)
        with self._translate(key):
            if window_s is None:
                return float(await self._client.incrbyfloat(self._prefix + key, amount))
            window_key, keep_s = window_slot(self._prefix + key, window_s, self._clock())
            total = await self._window_incr_script(keys=[window_key], args=[amount, _ms(keep_s)])
        return float(total)

    async def counter(self, key: str, *, window_s: float | None = None) -> float:
        check_positive("window_s", window_s)
        full_key = self._prefix + key
        if window_s is not None:
            full_key, _ = window_slot(full_key, window_s, self._clock())
        with self._translate(key):
            raw = await self._client.get(full_key)
        if raw is None:
            return 0.0
        try:
            return float(raw)
        except ValueError:
            raise StoreError(f"key {key!r} holds a value, not a counter") from None

    async def set_add(self, key: str, member: str) -> bool:
        with self._translate(key):
            return bool(await self._client.sadd(self._prefix + key, member))

    async def set_remove(self, key: str, member: str) -> bool:
        with self._translate(key):
            return bool(await self._client.srem(self._prefix + key, member))

    async def set_members(self, key: str) -> frozenset[str]:
        with self._translate(key):
            members = await self._client.smembers(self._prefix + key)
        return frozenset(_as_bytes(member).decode() for member in members)

    async def ping(self) -> None:
        with self._translate():
            await self._client.ping()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._client.aclose()

    @contextmanager
    def _translate(self, key: str = "") -> Iterator[None]:
        """Map redis exceptions to store errors that name the (password-free) URL."""
        if self._closed:
            raise StoreUnavailable(f"redis store at {self._where} is closed")
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"redis at {self._where} is unavailable: {exc}") from exc
        except ResponseError as exc:
            if "not a valid float" in str(exc):  # INCRBYFLOAT on a framed value
                raise StoreError(f"key {key!r} holds a value, not a counter") from exc
            if "WRONGTYPE" in str(exc):  # a set used as a value or counter, or the reverse
                raise StoreError(f"key {key!r} holds another kind of entry: {exc}") from exc
            raise StoreError(f"redis at {self._where}: {exc}") from exc
        except RedisError as exc:
            raise StoreError(f"redis at {self._where}: {exc}") from exc


def _ms(seconds: float) -> int:
    """Whole milliseconds for ``PX``/``PEXPIRE``, rounded up and at least 1."""
    return max(1, math.ceil(seconds * 1000))


def _as_bytes(raw: bytes | str) -> bytes:
    """Replies are bytes (the client does not decode); this narrows redis-py's ``bytes | str`` typing."""
    return raw if isinstance(raw, bytes) else raw.encode()


def _redact(url: str) -> str:
    """The URL with any password replaced, safe for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))
