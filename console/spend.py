"""The Spend page's figures that are not in the request log: teams, and what each key has left of its limits.

Teams come from virtual keys' ``team`` metadata, mapped onto the log's per-key spend when the page is
drawn (a static key, or a key without that label, counts under "(no team)"). Remaining budgets are read
from the budget plugin's own counters in the store (``Budget.key_levels``, read-only) for at most
``KEYS_MAX`` keys, all at once under a deadline; quota a process has leased counts as used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from proxy.chain import Chain
from proxy.keys import KeyRecord
from proxy.limits import KeyLimits
from proxy.policy import Policy

KEYS_MAX = 50  # keys whose remaining budget one page reads
NO_TEAM = "(no team)"


def by_team(by_key: Iterable[dict[str, Any]], records: Sequence[KeyRecord]) -> list[dict[str, Any]]:
    """The per-key spend rows summed per team (the key name's virtual key ``team`` label), most cost first."""
    team_of = {r.name: r.metadata.get("team") or NO_TEAM for r in records}
    teams: dict[str, dict[str, Any]] = {}
    for row in by_key:
        team = team_of.get(row["name"] or "", NO_TEAM)
        into = teams.setdefault(team, {"name": team, "keys": 0, "n": 0, "errors": 0, "tokens_in": 0,
                                       "tokens_out": 0, "cost": 0.0})  # fmt: skip
        into["keys"] += 1
        for field in ("n", "errors", "tokens_in", "tokens_out", "cost"):
            into[field] += row[field] or 0
    return sorted(teams.values(), key=lambda t: (-t["cost"], -t["n"], t["name"]))


def _meters_of(chain: Chain) -> list[Any]:
    return [s.plugin for s in chain.steps if callable(getattr(s.plugin, "key_levels", None))]


def _keys(policy: Policy, records: Sequence[KeyRecord]) -> list[tuple[str, str, Chain, KeyLimits | None, str]]:
    """(label, who, chain, own limits, team) of the static keys, then the live virtual keys, at most KEYS_MAX."""
    out: list[tuple[str, str, Chain, KeyLimits | None, str]] = []
    for name, chain, _models, _rules, limits in (policy.keys or {}).values():
        out.append((name, name, chain, limits, NO_TEAM))
    for r in records:
        uses = policy.chains.get(r.chain or policy.default_chain.name)
        if uses is not None and r.revoked_at is None:
            out.append((r.name, r.id, uses, r.limits, r.metadata.get("team") or NO_TEAM))
    return out[:KEYS_MAX]


async def remaining(
    policy: Policy, records: Sequence[KeyRecord], now: float, timeout_s: float = 2.0
) -> list[dict[str, Any]]:
    """One row per (key, limit) that a budget step of the key's chain enforces: limit, used, remaining."""
    jobs: list[tuple[str, str, Any]] = []
    for label, who, chain, limits, team in _keys(policy, records):
        for plugin in _meters_of(chain):
            jobs.append((label, team, plugin.key_levels(who, limits, now)))
    async with asyncio.timeout(timeout_s):
        levels = await asyncio.gather(*(job for _, _, job in jobs))
    rows = []
    for (label, team, _), found in zip(jobs, levels, strict=True):
        for level in found:
            rows.append({"key": label, "team": team, **level, "share": level["used"] / level["limit"]})
    return rows
