"""presidio recognizers for the PII detector, each paired with the cheap gate that must match before it runs.

A gate is a tuple of regexes that every finding of its recognizer contains (the detector also checks
that on each finding). So a text where a gate finds nothing cannot yield a finding of that recognizer,
and skipping it there changes no result; the pre-check is an optimisation, never a filter.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers
import regex  # type: ignore[import-untyped]
import tldextract
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UrlRecognizer,
    UsSsnRecognizer,
)

from plugins._pii.address import ADDRESS_GATE, ADDRESS_PATTERNS
from plugins._pii.config import CustomRecognizer, DetectorConfig

_CASE = regex.DOTALL | regex.MULTILINE  # presidio's default flags, without IGNORECASE


@dataclass(frozen=True, slots=True)
class Entry:
    """A recognizer, the gate regexes its findings all contain, and its context words (lower case)."""

    recognizer: EntityRecognizer
    gates: tuple[regex.Pattern[str], ...]
    context: tuple[str, ...]

    def may_match(self, text: str) -> bool:
        return all(g.search(text) for g in self.gates)


def _gate(*patterns: str, flags: int = 0) -> tuple[regex.Pattern[str], ...]:
    return tuple(regex.compile(p, flags) for p in patterns)


# ---- built-in recognizers ------------------------------------------------------------------------------------


class OfflineEmailRecognizer(EmailRecognizer):
    """presidio's email recognizer, checking suffixes against tldextract's bundled list (never the network)."""

    def __init__(self) -> None:
        super().__init__()
        self._tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    def validate_result(self, pattern_text: str) -> bool:
        return bool(self._tld(pattern_text).fqdn)


# presidio's URL regex with a boundary after the TLD (so "Mr.Smith" is no "Mr.Sm" link) and an optional port.
_URL_BASE = UrlRecognizer.BASE_URL_REGEX
_URL_TAIL = "(?:/[^\\s()<>\\\"']*)?)"
assert _URL_BASE.endswith(_URL_TAIL), "presidio's URL regex changed shape"
_URL = _URL_BASE[: -len(_URL_TAIL)] + "(?![a-z0-9\\-])(?::\\d{1,5})?" + _URL_TAIL
# ccTLDs that are also common file extensions: "main.py", "README.md" are not links.
_FILE_LIKE = frozenset({"py", "md", "sh", "rs", "pm", "cc", "so", "mk", "ml", "tf", "mov", "sc", "st", "ps"})


class LinkRecognizer(UrlRecognizer):
    """URLs with or without a scheme; a bare ``name.ext`` whose suffix is a file extension scores low."""

    def __init__(self) -> None:
        super().__init__(
            patterns=[
                Pattern("url with scheme", "(?i)(?:https?|ftp)://" + _URL, 0.6),
                Pattern("bare url", "(?i)" + _URL, 0.5),
            ]
        )

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None, regex_flags: int | None = None
    ) -> list[Any]:
        results: list[RecognizerResult] = super().analyze(text, entities, nlp_artifacts)
        for r in results:
            value = text[r.start : r.end].lower()
            if "/" not in value and not value.startswith("www") and value.rsplit(".", 1)[-1] in _FILE_LIKE:
                r.score = 0.3
        return results


_PHONE_GATE = r"\d(?:\D{0,4}\d){6}"  # 7+ digits, at most 4 separators apart (phonenumbers allows no more)
_PHONE_CONTEXT = (
    "phone", "telephone", "tel", "cell", "mobile", "call", "fax", "whatsapp", "contact",
    "telefon", "handy", "mobil", "rufnummer", "anrufen", "erreichbar", "téléphone", "portable", "appeler",
    "joindre", "teléfono", "telefono", "móvil", "movil", "llamar", "cellulare", "chiamare", "mobiel", "bellen",
)  # fmt: skip


_PHONE_RUN = regex.compile(r"\d(?:\D{0,4}\d){6,}")
_PHONE_MARGIN = 8  # room for a leading "+", "00" or "(" and the characters phonenumbers checks around a number


def _phone_windows(text: str) -> list[tuple[int, int]]:
    """Merged stretches around each run of 7+ digits: the matcher scans these, not the whole text, per region."""
    windows: list[tuple[int, int]] = []
    for m in _PHONE_RUN.finditer(text):
        start, end = max(0, m.start() - _PHONE_MARGIN), min(len(text), m.end() + _PHONE_MARGIN)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    return windows


def _inside_identifier(text: str, start: int, end: int) -> bool:
    """ "INV-2024-000123", "build_20240315_1234": digits glued to a word by '-', '_' or '/' are an identifier."""
    before = text[max(0, start - 2) : start]
    after = text[end : end + 2]
    glued_before = len(before) == 2 and before[1] in "-_/" and before[0].isalnum()
    glued_after = len(after) == 2 and after[0] in "-_/" and after[1].isalnum()
    return glued_before or glued_after


class RegionPhoneRecognizer(PhoneRecognizer):
    """Numbers valid in the configured regions (phonenumbers, VALID leniency) with 7 or more digits.

    A bare digit run (no '+', leading 0, brackets or separators) scores below the default threshold
    unless a context word such as "phone" or "Telefon" is near: order and ticket numbers look like that.
    """

    def __init__(self, regions: Sequence[str]) -> None:
        super().__init__(context=list(_PHONE_CONTEXT), supported_regions=tuple(regions), leniency=1)

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None, regex_flags: int | None = None
    ) -> list[Any]:
        results: list[RecognizerResult] = []
        seen: set[tuple[int, int]] = set()
        for window_start, window_end in _phone_windows(text):
            window = text[window_start:window_end]
            for region in self.supported_regions:
                for match in phonenumbers.PhoneNumberMatcher(window, region, leniency=1):
                    start, end = window_start + match.start, window_start + match.end
                    if (start, end) in seen or _inside_identifier(text, start, end):
                        continue
                    seen.add((start, end))
                    raw = match.raw_string
                    formatted = raw[0] in "+(0" or not raw.isdigit()
                    results.append(self._result(start, end, 0.6 if formatted else 0.4))
        return results

    def _result(self, start: int, end: int, score: float) -> RecognizerResult:
        return RecognizerResult(
            self.supported_entities[0],
            start,
            end,
            score,
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: type(self).__name__,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


# ---- secrets ---------------------------------------------------------------------------------------------------

_TOKEN_EDGE_L = r"(?<![A-Za-z0-9_\-])"
_TOKEN_EDGE_R = r"(?![A-Za-z0-9_\-])"
API_KEY_PATTERNS = (
    # OpenAI (sk-, sk-proj-, sk-svcacct-) and Anthropic (sk-ant-api03-…): 20+ token chars including a digit.
    Pattern("openai/anthropic key", _TOKEN_EDGE_L + r"sk-(?=[\w\-]*\d)[A-Za-z0-9_\-]{20,}" + _TOKEN_EDGE_R, 0.95),
    Pattern("aws access key id", r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])", 0.95),
    Pattern("github token", _TOKEN_EDGE_L + r"gh[pousr]_[A-Za-z0-9]{36,255}" + _TOKEN_EDGE_R, 0.95),
    Pattern("github fine-grained token", _TOKEN_EDGE_L + r"github_pat_[A-Za-z0-9_]{22,255}" + _TOKEN_EDGE_R, 0.95),
    Pattern("slack token", _TOKEN_EDGE_L + r"xox[abposr]-[A-Za-z0-9\-]{10,250}" + _TOKEN_EDGE_R, 0.95),
    Pattern("stripe key", _TOKEN_EDGE_L + r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,247}" + _TOKEN_EDGE_R, 0.95),
    Pattern("google api key", _TOKEN_EDGE_L + r"AIza[A-Za-z0-9_\-]{35}" + _TOKEN_EDGE_R, 0.95),
)
_API_KEY_GATE = r"sk-|[sr]k_|AKIA|ASIA|ABIA|ACCA|gh[pousr]_|github_pat_|xox[abposr]-|AIza"
_B64 = r"[A-Za-z0-9_\-]"
_JWT_GATE = r"e[w-z0-9_\-]" + _B64 + r"{6,}\." + _B64 + r"{4,}\."
JWT_PATTERN = Pattern(
    "jwt", _TOKEN_EDGE_L + r"e[w-z0-9_\-]" + _B64 + r"{6,}\." + _B64 + r"{4,}\." + _B64 + r"*(?![A-Za-z0-9_\-.])", 0.5
)
_PEM_BEGIN = r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----"
PEM_PATTERNS = (
    Pattern("pem private key", _PEM_BEGIN + r".*?-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----", 1.0),
    # A pasted key cut short before its END line: everything that still looks like key material.
    Pattern("pem private key (truncated)", _PEM_BEGIN + r"[A-Za-z0-9+/=:,\-\s]*", 0.9),
)


class JwtRecognizer(PatternRecognizer):
    """JSON Web Tokens: the first part must decode to a JSON object that names an ``alg``."""

    def __init__(self) -> None:
        super().__init__("JWT", patterns=[JWT_PATTERN], global_regex_flags=_CASE)

    def validate_result(self, pattern_text: str) -> bool:
        header = pattern_text.split(".", 1)[0]
        try:
            decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        except (binascii.Error, ValueError):
            return False
        return isinstance(decoded, dict) and "alg" in decoded


# ---- policy-defined recognizers ----------------------------------------------------------------------------------


def luhn_ok(value: str) -> bool:
    digits = [int(c) for c in value if c.isdigit()]
    if len(digits) < 2:
        return False
    total = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    compact = "".join(c for c in value if c.isalnum()).upper()
    if len(compact) < 5 or not compact[:2].isalpha() or not compact[2:4].isdigit() or not compact.isascii():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_VALIDATORS = {"luhn": luhn_ok, "iban": iban_ok}


class CustomPatternRecognizer(PatternRecognizer):
    """A regex from the policy, with an optional checksum the match must pass."""

    def __init__(self, spec: CustomRecognizer, index: int) -> None:
        flags = _CASE | (regex.IGNORECASE if spec.ignore_case else 0)
        super().__init__(
            spec.entity,
            name=f"custom[{index}]",
            patterns=[Pattern(f"custom[{index}]", spec.regex, spec.score)],
            context=list(spec.context),
            global_regex_flags=flags,
        )
        self._check = _VALIDATORS.get(spec.validator)
        self._score = spec.score

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None, regex_flags: int | None = None
    ) -> list[Any]:
        results: list[RecognizerResult] = super().analyze(text, entities, nlp_artifacts)
        if self._check is None:
            return results
        return [r for r in results if self._check(text[r.start : r.end])]


def _pattern(entity: str, patterns: Sequence[Pattern], flags: int = _CASE) -> PatternRecognizer:
    return PatternRecognizer(entity, name=entity.lower(), patterns=list(patterns), global_regex_flags=flags)


def _context(recognizer: EntityRecognizer) -> tuple[str, ...]:
    return tuple(w.strip().lower() for w in (recognizer.context or ()) if w.strip())


def builtin_entries(config: DetectorConfig) -> list[Entry]:
    """The pattern recognizers for the built-in entity types the config selects, each with its gate."""
    ci = regex.IGNORECASE
    makers: dict[str, tuple[Any, tuple[regex.Pattern[str], ...]]] = {
        "EMAIL_ADDRESS": (OfflineEmailRecognizer, _gate("@")),
        "PHONE_NUMBER": (lambda: RegionPhoneRecognizer(config.phone_regions), _gate(_PHONE_GATE)),
        "CREDIT_CARD": (CreditCardRecognizer, _gate(r"\d(?:[- ]?\d){12}")),
        "IBAN_CODE": (IbanRecognizer, _gate(r"[a-z]{2}\d\d", flags=ci)),
        "IP_ADDRESS": (IpRecognizer, _gate(r"\d\.\d|:[0-9a-f]{0,4}:", flags=ci)),
        "URL": (LinkRecognizer, _gate(r"[a-z0-9.\-]\.[a-z]{2}", flags=ci)),
        "US_SSN": (UsSsnRecognizer, _gate(r"\d(?:[- .]?\d){8}")),
        "API_KEY": (lambda: _pattern("API_KEY", API_KEY_PATTERNS), _gate(_API_KEY_GATE)),
        "JWT": (JwtRecognizer, _gate(_JWT_GATE)),
        "PRIVATE_KEY": (lambda: _pattern("PRIVATE_KEY", PEM_PATTERNS), _gate("-----BEGIN")),
        "ADDRESS": (lambda: _pattern("ADDRESS", ADDRESS_PATTERNS), ADDRESS_GATE),
    }
    entries = []
    for entity in config.selected():
        if entity in makers:
            make, gates = makers[entity]
            recognizer = make()
            entries.append(Entry(recognizer, gates, _context(recognizer)))
    return entries


def policy_entries(config: DetectorConfig) -> list[Entry]:
    """The policy's own recognizers and deny-lists; they have no gate and always run."""
    entries: list[Entry] = []
    for index, spec in enumerate(config.recognizers):
        recognizer = CustomPatternRecognizer(spec, index)
        entries.append(Entry(recognizer, (), spec.context))
    for entity, values in config.deny.items():
        deny = PatternRecognizer(entity, name=f"deny[{entity}]", deny_list=list(values), deny_list_score=1.0)
        entries.append(Entry(deny, (), ()))
    return entries
