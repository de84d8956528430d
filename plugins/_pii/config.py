"""What the PII detector looks for: the entity catalogue and the validated ``DetectorConfig``.

Built-in entity types (``entities`` selects among them; custom recognizers and deny-lists always run):

=============== ============================================================================
EMAIL_ADDRESS   ``name@domain.tld`` (the suffix is checked against the bundled public suffix list)
PHONE_NUMBER    numbers valid for ``phone_regions`` (national formats) or any region (``+CC …``)
CREDIT_CARD     13-19 digit card numbers passing the Luhn checksum
IBAN_CODE       IBANs passing the mod-97 checksum and the country's format
IP_ADDRESS      IPv4 and IPv6 addresses
URL             ``https://…``, ``www.…`` and bare ``domain.tld`` links
US_SSN          ``123-45-6789`` style US social security numbers
API_KEY         secret tokens: OpenAI ``sk-…``, Anthropic ``sk-ant-…``, AWS ``AKIA…``/``ASIA…``,
                GitHub ``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``/``github_pat_``, Slack ``xox[abposr]-``,
                Stripe ``sk_live_``/``rk_live_``, Google ``AIza…``
JWT             three base64url parts whose header decodes to a JSON object with ``"alg"``
PRIVATE_KEY     PEM blocks ``-----BEGIN … PRIVATE KEY----- … -----END … PRIVATE KEY-----``
ADDRESS         street addresses in English, German, French, Spanish, Italian and Dutch formats
PERSON, LOCATION, ORGANIZATION   names from the spaCy small English model (``ner: true`` only)
=============== ============================================================================
"""

from __future__ import annotations

from typing import Literal

import phonenumbers
import regex  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

PATTERN_ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "URL",
    "US_SSN",
    "API_KEY",
    "JWT",
    "PRIVATE_KEY",
    "ADDRESS",
)
NER_ENTITIES = ("PERSON", "LOCATION", "ORGANIZATION")
DEFAULT_PHONE_REGIONS = ("DE", "FR", "ES", "IT", "NL", "GB", "US")

_ENTITY_NAME = regex.compile(r"[A-Z][A-Z0-9_]{0,63}")


def _check_entity_name(name: str) -> str:
    if not _ENTITY_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not an entity name (upper case letters, digits and '_', like EMPLOYEE_ID)")
    return name


class CustomRecognizer(BaseModel):
    """A policy-defined regular expression that reports matches as ``entity``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    entity: str = Field(description="Entity type reported for matches, e.g. EMPLOYEE_ID (upper case, digits, '_').")
    regex: str = Field(description="Regular expression (Python 'regex' syntax) matching the value.")
    score: float = Field(default=0.8, ge=0.0, le=1.0, description="Confidence given to a match (0..1).")
    validator: Literal["none", "luhn", "iban"] = Field(
        default="none", description="Checksum the digits of a match must pass: 'luhn' (cards, IMEI) or 'iban' (mod 97)."
    )
    context: tuple[str, ...] = Field(
        default=(),
        description="Words that, seen just before or after a match, raise its score by 0.35 (case-insensitive).",
    )
    ignore_case: bool = Field(default=False, description="Match the regex case-insensitively.")

    @field_validator("entity")
    @classmethod
    def _entity_name(cls, entity: str) -> str:
        return _check_entity_name(entity)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            compiled = regex.compile(pattern)
        except regex.error as exc:
            raise ValueError(f"the regular expression does not compile: {exc}") from None
        if compiled.fullmatch(""):
            raise ValueError("the regular expression matches the empty string")
        return pattern

    @field_validator("context")
    @classmethod
    def _words(cls, words: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(w.strip().lower() for w in words)
        if any(not w for w in cleaned):
            raise ValueError("context words must not be empty")
        return cleaned


class DetectorConfig(BaseModel):
    """Which PII the detector finds, and how sure it must be. The pii plugin embeds these fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    # Field order matters: later validators read earlier fields (and their errors name their own field).
    ner: bool = Field(
        default=False,
        description="Also find PERSON, LOCATION and ORGANIZATION with the spaCy small English model (~20 ms a text).",
    )
    recognizers: tuple[CustomRecognizer, ...] = Field(
        default=(), description="Extra regular-expression recognizers; they always run."
    )
    deny: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Entity type -> words or phrases always reported as that type (whole words, case-insensitive).",
    )
    entities: tuple[str, ...] | None = Field(
        default=None,
        description="Built-in entity types to detect; default: every pattern type, plus the NER types when ner is on.",
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Entity type -> minimum score (0..1) for a finding of that type to count."
    )
    default_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Minimum score for entity types not listed in thresholds."
    )
    allow: tuple[str, ...] = Field(
        default=(), description="Values never reported, whatever matched them (exact text, case-insensitive)."
    )
    phone_regions: tuple[str, ...] = Field(
        default=DEFAULT_PHONE_REGIONS,
        description="Regions (ISO 3166 codes) whose national phone formats are recognised; '+CC' numbers always are.",
    )

    @field_validator("deny")
    @classmethod
    def _deny(cls, deny: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for entity, values in deny.items():
            _check_entity_name(entity)
            if not values or any(not v.strip() for v in values):
                raise ValueError(f"{entity}: give one or more non-empty values")
        return deny

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, entities: tuple[str, ...] | None, info: ValidationInfo) -> tuple[str, ...] | None:
        if entities is None:
            return None
        ner = info.data.get("ner", False)
        for entity in entities:
            if entity in NER_ENTITIES and not ner:
                raise ValueError(f"{entity!r} needs ner: true")
            if entity not in PATTERN_ENTITIES and entity not in NER_ENTITIES:
                raise ValueError(f"unknown entity {entity!r} (known: {', '.join(PATTERN_ENTITIES + NER_ENTITIES)})")
        return tuple(dict.fromkeys(entities))

    @field_validator("thresholds")
    @classmethod
    def _threshold_entities(cls, thresholds: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        known = set(PATTERN_ENTITIES) | set(NER_ENTITIES) | set(info.data.get("deny", {}))
        known |= {r.entity for r in info.data.get("recognizers", ())}
        for entity, value in thresholds.items():
            if entity not in known:
                raise ValueError(f"unknown entity {entity!r}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{entity}: {value} is outside 0..1")
        return thresholds

    @field_validator("allow")
    @classmethod
    def _allow(cls, allow: tuple[str, ...]) -> tuple[str, ...]:
        if any(not v.strip() for v in allow):
            raise ValueError("allow-list values must not be empty")
        return allow

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(regions) - phonenumbers.SUPPORTED_REGIONS)
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a phone region (ISO 3166 code such as DE or FR)")
        return tuple(dict.fromkeys(regions))

    def selected(self) -> tuple[str, ...]:
        """The built-in entity types this config turns on."""
        if self.entities is not None:
            return self.entities
        return PATTERN_ENTITIES + (NER_ENTITIES if self.ner else ())
