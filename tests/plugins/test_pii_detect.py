"""The PII detection engine: every entity type in realistic sentences, validators, policy lists, overlaps, pre-check."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from plugins._pii.config import PATTERN_ENTITIES
from plugins._pii.detect import DetectorConfig, Finding, PiiDetector

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ==\n"
    "-----END OPENSSH PRIVATE KEY-----"
)
OPENAI = "sk-proj-4fG7hJ2kL9mN3pQ8rS1tU6vW0xYz"
ANTHROPIC = "sk-ant-api03-Zx81Qw92Er73Ty64Ui55Op46As37Df28"


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    return PiiDetector(DetectorConfig())


@pytest.fixture(scope="module")
def ner_detector() -> PiiDetector:
    d = PiiDetector(DetectorConfig(ner=True))
    d.analyze("warm up")  # loads spaCy once for the module
    return d


def found(d: PiiDetector, text: str) -> set[tuple[str, str]]:
    return {(f.entity, text[f.start : f.end]) for f in d.analyze(text)}


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("Please reply to maria.rossi@example.it by Friday.", "EMAIL_ADDRESS", "maria.rossi@example.it"),
        ("You can reach me on +49 30 1234567 after six.", "PHONE_NUMBER", "+49 30 1234567"),
        ("Ruf mich an: 030 1234567.", "PHONE_NUMBER", "030 1234567"),
        ("Mon numéro : 06 12 34 56 78, merci.", "PHONE_NUMBER", "06 12 34 56 78"),
        ("Llámame al +34 612 345 678 mañana.", "PHONE_NUMBER", "+34 612 345 678"),
        ("L'ufficio risponde al +39 06 1234 5678.", "PHONE_NUMBER", "+39 06 1234 5678"),
        ("Bel me op 06-12345678 of +31 20 123 4567.", "PHONE_NUMBER", "06-12345678"),
        ("Charge it to my Visa 4111 1111 1111 1111 please.", "CREDIT_CARD", "4111 1111 1111 1111"),
        ("Überweisung an DE89 3704 0044 0532 0130 00 bis Montag.", "IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
        ("The database at 10.20.30.40 refuses connections.", "IP_ADDRESS", "10.20.30.40"),
        ("Ping 2001:db8:85a3::8a2e:370:7334 from the bastion.", "IP_ADDRESS", "2001:db8:85a3::8a2e:370:7334"),
        ("Docs: https://intranet.example.com/wiki/Onboarding today.", "URL", "https://intranet.example.com/wiki/Onboarding"),
        ("My SSN is 536-22-8745, do not share it.", "US_SSN", "536-22-8745"),
        (f"Use OPENAI_API_KEY={OPENAI} in .env", "API_KEY", OPENAI),
        (f"key: {ANTHROPIC}", "API_KEY", ANTHROPIC),
        ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "API_KEY", "AKIAIOSFODNN7EXAMPLE"),
        ("export GITHUB_TOKEN=ghp_16C7e42F292c6912E7710c838347Ae178B4a", "API_KEY",
         "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
        ("token github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789", "API_KEY",
         "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789"),
        ("SLACK_BOT_TOKEN=xoxb-2048-1234567890-AbCdEfGhIjKl", "API_KEY", "xoxb-2048-1234567890-AbCdEfGhIjKl"),
        (f"Authorization: Bearer {JWT}", "JWT", JWT),
        (f"my key:\n{PEM}\nthanks", "PRIVATE_KEY", PEM),
        ("Lieferung an Hauptstraße 12, 10115 Berlin bitte.", "ADDRESS", "Hauptstraße 12, 10115 Berlin"),
        ("Envoyez-le au 12 rue de la Paix, 75002 Paris.", "ADDRESS", "12 rue de la Paix, 75002 Paris"),
        ("Vivo en Calle Mayor 5, 28013 Madrid desde 2019.", "ADDRESS", "Calle Mayor 5, 28013 Madrid"),
        ("Abito in Via Roma 10, 00184 Roma.", "ADDRESS", "Via Roma 10, 00184 Roma"),
        ("Het kantoor is op Kalverstraat 1, 1012 NX Amsterdam.", "ADDRESS", "Kalverstraat 1, 1012 NX Amsterdam"),
        ("Notre siège : Rue Neuve 1, 1000 Bruxelles.", "ADDRESS", "Rue Neuve 1, 1000 Bruxelles"),
        ("Ship it to 1600 Pennsylvania Avenue NW, Washington, DC 20500.", "ADDRESS",
         "1600 Pennsylvania Avenue NW, Washington, DC 20500"),
    ],
)  # fmt: skip
def test_each_entity_type_is_found_in_a_sentence(detector: PiiDetector, text: str, entity: str, value: str) -> None:
    assert (entity, value) in found(detector, text)


def test_every_pattern_entity_is_covered_above() -> None:
    assert set(PATTERN_ENTITIES) == {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "URL",
                                     "US_SSN", "API_KEY", "JWT", "PRIVATE_KEY", "ADDRESS"}  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "The card 4111 1111 1111 1112 fails Luhn.",  # 16 digits, wrong check digit
        "Send it to DE89 3704 0044 0532 0130 01 please.",  # IBAN with a wrong checksum
        "In 2024 we shipped 3 releases and closed 1200 tickets; order 12345678 is late.",
        "Run main.py and read README.md, said Mr.Smith.",
        "The header eyJub3QiOiJhIGp3dCJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl has no alg.",
        "Use sk-learn-compatible-estimators-everywhere here.",
        "version 1.2 of the library, see section 3.4.",
        "We need 5 Square Feet of space; invoice INV-2024-000123 is overdue.",
        "Tracking 1Z999AA10123456784, UUID 123e4567-e89b-12d3-a456-426614174000, ISBN 978-3-16-148410-0.",
    ],
)
def test_near_misses_are_not_reported(detector: PiiDetector, text: str) -> None:
    assert detector.analyze(text) == []


def test_url_inside_an_email_is_not_a_second_finding(detector: PiiDetector) -> None:
    text = "write to john.smith@mail.example.com today"
    assert found(detector, text) == {("EMAIL_ADDRESS", "john.smith@mail.example.com")}


def test_overlapping_spans_keep_the_surer_and_longer_one(detector: PiiDetector) -> None:
    text = "Wohnt Hauptstraße 12, 10115 Berlin"
    findings = detector.analyze(text)
    assert [text[f.start : f.end] for f in findings] == ["Hauptstraße 12, 10115 Berlin"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(findings))


def test_allow_list_values_are_never_reported() -> None:
    d = PiiDetector(DetectorConfig(allow=("support@example.com",)))
    text = "Mail SUPPORT@example.com or jane@example.com"
    assert found(d, text) == {("EMAIL_ADDRESS", "jane@example.com")}


def test_deny_list_words_are_reported_as_their_type() -> None:
    d = PiiDetector(DetectorConfig(deny={"PROJECT": ("Project Nightingale", "Bluebird")}))
    text = "Status of project nightingale and bluebird? Not bluebirds."
    assert found(d, text) == {("PROJECT", "project nightingale"), ("PROJECT", "bluebird")}
    assert "PROJECT" in d.entities


def test_custom_regex_with_luhn_validator_and_context() -> None:
    spec = {"entity": "IMEI", "regex": r"\b\d{15}\b", "validator": "luhn", "score": 0.4, "context": ["imei"]}
    d = PiiDetector(DetectorConfig.model_validate({"recognizers": [spec], "entities": ["EMAIL_ADDRESS"]}))
    assert found(d, "device IMEI 490154203237518 registered") == {("IMEI", "490154203237518")}
    assert d.analyze("device IMEI 490154203237519 registered") == []  # fails Luhn
    assert d.analyze("serial 490154203237518 registered") == []  # no context word: 0.4 < 0.5


def test_thresholds_per_entity_and_default() -> None:
    text = "see example.com or call +49 30 1234567"
    strict = PiiDetector(DetectorConfig(thresholds={"URL": 0.9}))
    assert {e for e, _ in found(strict, text)} == {"PHONE_NUMBER"}
    loose = PiiDetector(DetectorConfig(default_threshold=0.0, entities=("US_SSN",)))
    assert found(loose, "id 536228745") == {("US_SSN", "536228745")}  # a very weak pattern, kept at 0


def test_entities_select_what_is_detected() -> None:
    d = PiiDetector(DetectorConfig(entities=("EMAIL_ADDRESS",)))
    assert d.entities == {"EMAIL_ADDRESS"}
    assert found(d, "a@example.com, +49 30 1234567") == {("EMAIL_ADDRESS", "a@example.com")}


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"recognizers": [{"entity": "X", "regex": "(unclosed"}]}, "recognizers.0.regex", "does not compile"),
        ({"recognizers": [{"entity": "lower", "regex": "x"}]}, "recognizers.0.entity", "not an entity name"),
        ({"entities": ["PASSPORT"]}, "entities", "unknown entity 'PASSPORT'"),
        ({"entities": ["PERSON"]}, "entities", "needs ner: true"),
        ({"thresholds": {"URL": 1.5}}, "thresholds", "outside 0..1"),
        ({"thresholds": {"NOPE": 0.5}}, "thresholds", "unknown entity 'NOPE'"),
        ({"default_threshold": -0.1}, "default_threshold", "greater than or equal to 0"),
        ({"phone_regions": ["XX"]}, "phone_regions", "not a phone region"),
        ({"deny": {"NAME": []}}, "deny", "non-empty"),
        ({"colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_config_errors_name_the_field(config: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        DetectorConfig.model_validate(config)
    error = info.value.errors()[0]
    assert ".".join(map(str, error["loc"])) == field
    assert message in error["msg"]


def test_every_config_field_is_described() -> None:
    assert all(f.description for f in DetectorConfig.model_fields.values())


_PLANTS = st.sampled_from(
    ["john@example.com", "+49 30 1234567", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00", "10.0.0.1",
     "https://example.org/x", "536-22-8745", "AKIAIOSFODNN7EXAMPLE", JWT, PEM, "Via Roma 10, 00184 Roma",
     "06 12 34 56 78", "fe80::1", "www.example.de", "2024", "12345-6789"]
)  # fmt: skip
_FILLER = st.text(alphabet=st.sampled_from(list("abc XYZ019.-:@/+()\n,äé")), max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.tuples(_FILLER, _PLANTS), max_size=4), tail=_FILLER)
def test_precheck_never_changes_the_result(detector: PiiDetector, parts: list[tuple[str, str]], tail: str) -> None:
    text = "".join(a + b for a, b in parts) + tail
    assert detector.analyze(text) == detector.analyze(text, precheck=False)


async def test_analyze_many_matches_analyze_and_skips_clean_batches() -> None:
    d = PiiDetector(DetectorConfig())
    await d.start()
    await d.start()  # idempotent
    texts = ["nothing here", "mail a@example.com", ""]
    assert await d.analyze_many(texts) == [d.analyze(t) for t in texts]
    assert await d.analyze_many(["just words", "more words"]) == [[], []]


async def test_analyze_many_builds_lazily() -> None:
    d = PiiDetector(DetectorConfig())
    results = await asyncio.wait_for(d.analyze_many(["call +33 1 23 45 67 89"]), timeout=30)
    assert results == [[Finding("PHONE_NUMBER", 5, 22, 0.95)]]


def test_ner_tier_finds_people_places_and_organisations(ner_detector: PiiDetector) -> None:
    text = "Yesterday John Smith flew from Berlin to meet the Google team in Paris."
    result = found(ner_detector, text)
    assert {("PERSON", "John Smith"), ("LOCATION", "Berlin"), ("LOCATION", "Paris")} <= result
    assert ("ORGANIZATION", "Google") in result


def test_ner_tier_keeps_patterns_and_drops_dates(ner_detector: PiiDetector) -> None:
    text = "On 3 March 2024 Maria Garcia wrote from maria@example.es"
    entities = {e for e, _ in found(ner_detector, text)}
    assert "EMAIL_ADDRESS" in entities and "PERSON" in entities
    assert not entities & {"DATE_TIME", "NRP"}


def test_ner_spans_never_hide_pattern_findings(ner_detector: PiiDetector) -> None:
    text = "Llama al 912 345 678 o escribe a Pedro Sánchez."
    assert ("PHONE_NUMBER", "912 345 678") in found(ner_detector, text)


@pytest.mark.parametrize(
    ("text", "span", "expected"),
    [
        ("Hallo, ich bin Hans Müller.", "bin Hans Müller", "Hans Müller"),
        ("Riassumi questo testo.", "Riassumi", None),  # one word opening a sentence
        ("Fassen Sie bitte zusammen.", "Fassen Sie", None),
        ("Wie viele im Jahr 2020?", "Jahr 2020", None),  # digits
        ("La réunion aura lieu à Lyon le 14 mars.", "Lyon le", "Lyon"),
    ],
)
def test_ner_span_clean_up(text: str, span: str, expected: str | None) -> None:
    from plugins._pii.ner import clean_span

    start = text.index(span)
    result = clean_span(text, start, start + len(span))
    assert (text[result[0] : result[1]] if result else None) == expected


def test_detection_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the detector tried to reach the network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    d = PiiDetector(DetectorConfig())  # a fresh detector: tldextract's suffix list is loaded now
    assert found(d, "mail ops@example.co.uk") == {("EMAIL_ADDRESS", "ops@example.co.uk")}


def test_ner_chunks_long_texts_and_keeps_offsets(ner_detector: PiiDetector) -> None:
    from plugins._pii.ner import CHUNK_CHARS, chunks

    text = "filler words here. " * (CHUNK_CHARS // 10) + "Yesterday John Smith flew to Berlin."
    pieces = chunks(text)
    assert len(pieces) > 1 and "".join(p for _, p in pieces) == text
    assert all(text[o : o + len(p)] == p for o, p in pieces)
    assert ("PERSON", "John Smith") in found(ner_detector, text)


async def test_clean_batches_make_no_thread_hop_and_dirty_ones_make_one(monkeypatch: pytest.MonkeyPatch) -> None:
    d = PiiDetector(DetectorConfig())
    await d.start()
    hops: list[object] = []
    real = asyncio.to_thread

    async def counting(fn: object, *args: object) -> object:
        hops.append(fn)
        return await real(fn, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "to_thread", counting)
    assert await d.analyze_many(["Summarise this report in three bullet points.", "Thanks!"]) == [[], []]
    assert hops == []
    result = await d.analyze_many(["a@example.com", "b@example.com", "clean text"])
    assert len(hops) == 1 and [len(r) for r in result] == [1, 1, 0]
