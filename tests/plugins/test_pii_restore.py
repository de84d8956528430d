"""Reversible PII placeholders: masking then restoring gives the original back, whole or streamed in any pieces."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins._pii.restore import REDACTED, PlaceholderMap, Span, StreamRestorer

PROPERTY = settings(deadline=None, max_examples=300)
ENTITIES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN")
# Pieces that stress the placeholder grammar: literals that look like placeholders, brackets, digits, case-folding
# traps (the long s and the Kelvin sign fold to "s" and "k"), JSON-special characters and astral unicode.
TRICKY = (
    "<", ">", "_", "1", "0", "<PERSON_1>", "<person_1>", "<PERSON_10>", "<PERSON_2", "<PERSON_", "<PERS",
    "<EMAIL_ADDRESS_1>", "<PERSON>", REDACTED, "<<", "<PER\u017fON_1>", "<\u212a_1>", "é", "😀", "\n", '"', "\\",
)  # fmt: skip

fragments = st.one_of(st.text(max_size=6), st.sampled_from(TRICKY))
texts = st.lists(fragments, max_size=10).map("".join)
values = st.one_of(st.text(min_size=1, max_size=8), st.sampled_from(['Ann "Q" Lee', "C:\\x", "a\nb", "<PERSON_1>"]))


def issue(placeholders: PlaceholderMap, entity: str, value: str) -> str:
    """Pseudonymize a text that is exactly ``value`` and return the placeholder it got."""
    return placeholders.apply(value, [Span(entity, 0, len(value), "pseudonymize")])


def streamed(restorer: StreamRestorer, pieces: list[str]) -> str:
    out = "".join(restorer.feed(piece) for piece in pieces) + restorer.flush()
    assert not restorer.pending
    return out


def split(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted({min(cut, len(text)) for cut in cuts}), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@st.composite
def text_with_spans(draw: st.DrawFn) -> tuple[str, list[Span]]:
    """Any text, any (possibly overlapping, empty, unsorted) pseudonymize spans."""
    text = draw(texts)
    bounds = st.integers(0, len(text))
    raw = draw(st.lists(st.tuples(bounds, bounds, st.sampled_from(ENTITIES)), max_size=6))
    return text, [Span(entity, min(a, b), max(a, b), "pseudonymize") for a, b, entity in raw]


@st.composite
def request_texts(draw: st.DrawFn) -> list[tuple[str, list[Span], list[tuple[str, str]]]]:
    """Several texts sharing a few PII values, as (text, spans, [(entity, value) per span])."""
    pool = draw(st.lists(values, min_size=1, max_size=4))
    result = []
    for _ in range(draw(st.integers(1, 3))):
        parts: list[str] = []
        spans: list[Span] = []
        found: list[tuple[str, str]] = []
        for _ in range(draw(st.integers(0, 6))):
            parts.append(draw(texts))
            entity, value = draw(st.sampled_from(ENTITIES)), draw(st.sampled_from(pool))
            start = len("".join(parts))
            spans.append(Span(entity, start, start + len(value), "pseudonymize"))
            found.append((entity, value))
            parts.append(value)
        result.append(("".join(parts), spans, found))
    return result


@st.composite
def answers(draw: st.DrawFn) -> tuple[PlaceholderMap, list[str], str]:
    """A map with placeholders issued, and a model answer echoing them in any case, whole or cut short."""
    placeholders = PlaceholderMap()
    pairs = draw(st.lists(st.tuples(st.sampled_from(ENTITIES), values), min_size=1, max_size=12))
    issued = [issue(placeholders, entity, value) for entity, value in pairs]
    parts = []
    for _ in range(draw(st.integers(0, 8))):
        placeholder = draw(st.sampled_from(issued))
        upper = draw(st.lists(st.booleans(), min_size=len(placeholder), max_size=len(placeholder)))
        echoed = "".join(c.upper() if u else c.lower() for c, u in zip(placeholder, upper, strict=True))
        parts.append(draw(st.sampled_from([echoed, echoed[: draw(st.integers(1, len(echoed)))], draw(texts)])))
    return placeholders, issued, "".join(parts)


@PROPERTY
@given(text_with_spans())
def test_masking_any_spans_then_restoring_gives_the_text_back(case: tuple[str, list[Span]]) -> None:
    text, spans = case
    placeholders = PlaceholderMap([text])
    masked = placeholders.apply(text, spans)
    assert placeholders.restore(masked) == text
    assert placeholders.restore(masked, json_escape=False) == text


@PROPERTY
@given(request_texts())
def test_every_text_of_a_request_restores_and_placeholders_are_consistent(
    request: list[tuple[str, list[Span], list[tuple[str, str]]]],
) -> None:
    placeholders = PlaceholderMap(text for text, _, _ in request)
    masked = [placeholders.apply(text, spans) for text, spans, _ in request]
    assert [placeholders.restore(text) for text in masked] == [text for text, _, _ in request]
    pairs = {pair for _, _, found in request for pair in found}
    assert len(placeholders) == len(pairs)  # one placeholder per (entity, value), whatever the number of texts
    given_to = {pair: issue(placeholders, *pair) for pair in pairs}  # asking again returns the issued one
    assert len(placeholders) == len(pairs)
    assert len(set(given_to.values())) == len(pairs)  # same value, other entity: another placeholder
    for (_, _, found), text in zip(request, masked, strict=True):
        for pair in found:
            assert given_to[pair] in text


@PROPERTY
@given(texts, st.lists(st.integers(0, 200), max_size=8), st.lists(st.sampled_from(("mask", "redact", "pseudonymize"))))
def test_mask_and_redact_stay_masked_while_pseudonyms_restore(text: str, cuts: list[int], modes: list[str]) -> None:
    pieces = split(text, cuts)
    spans, expected, position = [], [], 0
    for index, piece in enumerate(pieces):
        mode = modes[index % len(modes)] if modes and index % 2 and piece else None
        if mode is not None:
            spans.append(Span("PERSON", position, position + len(piece), mode))
        expected.append({None: piece, "pseudonymize": piece, "mask": "<PERSON>", "redact": REDACTED}[mode])
        position += len(piece)
    placeholders = PlaceholderMap([text])
    assert placeholders.restore(placeholders.apply(text, spans)) == "".join(expected)


@PROPERTY
@given(text_with_spans(), st.lists(st.integers(0, 200), max_size=12), st.booleans())
def test_any_split_of_a_masked_text_streams_to_the_whole_restore(
    case: tuple[str, list[Span]], cuts: list[int], json_escape: bool
) -> None:
    text, spans = case
    placeholders = PlaceholderMap([text])
    masked = placeholders.apply(text, spans)
    pieces = split(masked, cuts)
    assert streamed(placeholders.restorer(json_escape=json_escape), pieces) == placeholders.restore(
        masked, json_escape=json_escape
    )


@PROPERTY
@given(answers(), st.lists(st.integers(0, 300), max_size=20))
def test_streaming_holds_back_only_a_tail_that_can_still_become_a_placeholder(
    case: tuple[PlaceholderMap, list[str], str], cuts: list[int]
) -> None:
    placeholders, issued, answer = case
    prefixes = {p.lower()[:end] for p in issued for end in range(1, len(p))}
    restorer = placeholders.restorer()
    emitted, fed = "", ""
    for piece in split(answer, cuts):
        emitted += restorer.feed(piece)
        fed += piece
        tail = fed[fed.rfind("<") :] if "<" in fed else ""
        held = tail if tail.isascii() and tail.lower() in prefixes else ""
        assert restorer.pending == bool(held)
        assert emitted == placeholders.restore(fed[: len(fed) - len(held)])
    assert emitted + restorer.flush() == placeholders.restore(answer)
    assert not restorer.pending


def ten_people() -> tuple[PlaceholderMap, list[str]]:
    placeholders = PlaceholderMap()
    issued = [issue(placeholders, "PERSON", f"Person {n}") for n in range(1, 12)]
    assert issued[0] == "<PERSON_1>" and issued[9] == "<PERSON_10>"
    return placeholders, issued


def test_a_placeholder_split_at_every_position_restores() -> None:
    placeholders, _ = ten_people()
    answer = "Hi <PERSON_1>, meet <PERSON_10><PERSON_11>."
    expected = "Hi Person 1, meet Person 10Person 11."
    assert placeholders.restore(answer) == expected
    for cut in range(len(answer) + 1):
        assert streamed(placeholders.restorer(), [answer[:cut], answer[cut:]]) == expected
    assert streamed(placeholders.restorer(), list(answer)) == expected


def test_person_1_waits_for_the_next_character_when_person_10_exists() -> None:
    placeholders, _ = ten_people()
    restorer = placeholders.restorer()
    assert restorer.feed("x <PERSON_1") == "x "
    assert restorer.pending
    assert restorer.feed(">") == "Person 1"
    assert restorer.feed("<PERSON_1") == ""
    assert restorer.feed("0> y") == "Person 10 y"
    assert restorer.feed("<PERSON_1") == ""
    assert restorer.flush() == "<PERSON_1"
    assert not restorer.pending


def test_held_tail_is_released_as_soon_as_it_cannot_become_a_placeholder() -> None:
    placeholders = PlaceholderMap()
    issue(placeholders, "PERSON", "Ann")
    restorer = placeholders.restorer()
    assert (restorer.feed("<PERS"), restorer.pending) == ("", True)
    assert (restorer.feed("x"), restorer.pending) == ("<PERSx", False)
    assert (restorer.feed("a <"), restorer.pending) == ("a ", True)
    assert (restorer.feed(" b"), restorer.pending) == ("< b", False)
    assert (restorer.feed("<PERSON_1"), restorer.feed("0")) == ("", "<PERSON_10")  # no <PERSON_10> was issued
    assert (restorer.feed("<PERSON_"), restorer.feed("1>")) == ("", "Ann")
    assert (restorer.feed("<person_1"), restorer.feed(">!")) == ("", "Ann!")
    assert not restorer.pending


def test_adjacent_placeholders_restore() -> None:
    placeholders = PlaceholderMap()
    text = "AnnBob"
    masked = placeholders.apply(text, [Span("PERSON", 3, 6, "pseudonymize"), Span("PERSON", 0, 3, "pseudonymize")])
    assert masked == "<PERSON_1><PERSON_2>"
    assert placeholders.restore(masked) == text
    assert streamed(placeholders.restorer(), ["<PERSON_1><", "PERSON_2>"]) == text


def test_a_model_echoing_placeholders_in_another_case_gets_the_originals() -> None:
    placeholders = PlaceholderMap()
    issue(placeholders, "EMAIL_ADDRESS", "ann@example.com")
    for echoed in ("<email_address_1>", "<Email_Address_1>", "<EMAIL_address_1>"):
        assert placeholders.restore(f"write to {echoed}") == "write to ann@example.com"
        assert streamed(placeholders.restorer(), list(echoed)) == "ann@example.com"
    # Strict grammar: no whitespace, no missing brackets, no leading zeros.
    for near_miss in ("< EMAIL_ADDRESS_1>", "<EMAIL_ADDRESS_1 >", "EMAIL_ADDRESS_1", "<EMAIL_ADDRESS_01>", "<EMAIL_1>"):
        assert placeholders.restore(near_miss) == near_miss
        assert streamed(placeholders.restorer(), list(near_miss)) == near_miss
    issue(placeholders, "K", "Kay")
    assert placeholders.restore("<k_1> \u212a <\u212a_1>") == "Kay \u212a <\u212a_1>"  # the Kelvin sign is no k


@PROPERTY
@given(st.lists(st.text(max_size=10), min_size=1, max_size=4), st.lists(st.integers(0, 200), max_size=10))
def test_json_escape_keeps_the_json_valid_whatever_the_originals(originals: list[str], cuts: list[int]) -> None:
    originals = [*originals, 'say "hi"\\n\n\t\\', "\u2028é😀\x00"]
    placeholders = PlaceholderMap()
    names = [issue(placeholders, "PERSON", value) if value else "" for value in originals]
    answer = json.dumps({"names": names, "greeting": "Dear " + " and ".join(names)})
    expected = {"names": originals, "greeting": "Dear " + " and ".join(originals)}
    assert json.loads(placeholders.restore(answer, json_escape=True)) == expected
    assert json.loads(streamed(placeholders.restorer(json_escape=True), split(answer, cuts))) == expected
    assert placeholders.restore(names[-1]) == originals[-1]  # the plain restore does not escape


def test_a_placeholder_typed_literally_by_the_user_is_never_issued_nor_restored() -> None:
    texts = ["My name is Ann; the template says <person_1> and <PERSON_3>.", "Ann again"]
    placeholders = PlaceholderMap(texts)
    masked = [placeholders.apply(texts[0], [Span("PERSON", 11, 14, "pseudonymize")])]
    masked.append(placeholders.apply(texts[1], [Span("PERSON", 0, 3, "pseudonymize")]))
    assert masked == ["My name is <PERSON_2>; the template says <person_1> and <PERSON_3>.", "<PERSON_2> again"]
    assert issue(placeholders, "PERSON", "Bob") == "<PERSON_4>"
    assert placeholders.restore("<PERSON_1>, <PERSON_2>, <PERSON_3>, <PERSON_4>") == "<PERSON_1>, Ann, <PERSON_3>, Bob"


def test_apply_reserves_the_literals_of_its_own_text_too() -> None:
    placeholders = PlaceholderMap()
    masked = placeholders.apply("Ann wrote <PERSON_1>", [Span("PERSON", 0, 3, "pseudonymize")])
    assert masked == "<PERSON_2> wrote <PERSON_1>"
    assert placeholders.restore(masked) == "Ann wrote <PERSON_1>"


def test_unknown_placeholders_and_mask_tokens_are_left_as_they_are() -> None:
    placeholders = PlaceholderMap()
    text = "Ann, Bob and Cy"
    spans = [Span("PERSON", 0, 3, "pseudonymize"), Span("PERSON", 5, 8, "mask"), Span("PERSON", 13, 15, "redact")]
    assert placeholders.apply(text, spans) == "<PERSON_1>, <PERSON> and [REDACTED]"
    answer = "<PERSON_1> <PERSON_99> <PHONE_NUMBER_1> <PERSON> [REDACTED] <PERSON_2>"
    assert placeholders.restore(answer) == "Ann <PERSON_99> <PHONE_NUMBER_1> <PERSON> [REDACTED] <PERSON_2>"
    assert len(placeholders) == 1  # masked and redacted values are not kept
    assert placeholders.entity_counts() == {"PERSON": 3}


def test_same_value_same_placeholder_other_entity_other_placeholder() -> None:
    placeholders = PlaceholderMap()
    text = "Jordan called Jordan from Jordan"
    spans = [Span("PERSON", 0, 6, "pseudonymize"), Span("PERSON", 14, 20, "pseudonymize")]
    spans.append(Span("LOCATION", 26, 32, "pseudonymize"))
    assert placeholders.apply(text, spans) == "<PERSON_1> called <PERSON_1> from <LOCATION_1>"
    assert placeholders.apply("Jordan", [Span("person", 0, 6, "pseudonymize")]) == "<PERSON_1>"  # type names fold
    assert len(placeholders) == 2
    assert placeholders.entity_counts() == {"PERSON": 3, "LOCATION": 1}


def test_overlapping_spans_merge_with_the_stricter_mode() -> None:
    placeholders = PlaceholderMap()
    text = "call Ann Lee-Smith now"
    spans = [Span("PERSON", 5, 12, "pseudonymize"), Span("PERSON", 9, 18, "pseudonymize"), Span("X", 9, 12, "redact")]
    assert placeholders.apply(text, spans) == "call [REDACTED] now"
    spans = [Span("PERSON", 9, 18, "pseudonymize"), Span("PERSON", 5, 12, "pseudonymize"), Span("PERSON", 7, 7, "mask")]
    masked = placeholders.apply(text, spans)
    assert masked == "call <PERSON_1> now"
    assert placeholders.restore(masked) == text


def test_without_placeholders_feed_is_the_identity() -> None:
    placeholders = PlaceholderMap()
    placeholders.apply("Ann", [Span("PERSON", 0, 3, "mask")])
    restorer = placeholders.restorer(json_escape=True)
    for piece in ("plain", "<PERSON_1", ">", "<", ""):
        assert restorer.feed(piece) == piece
        assert not restorer.pending
    assert restorer.flush() == ""
    assert placeholders.restore("<PERSON_1>") == "<PERSON_1>"


@pytest.mark.parametrize(
    ("entity", "start", "end", "mode", "words"),
    [
        ("PERSON", 0, 1, "hash", "span mode 'hash' is not one of"),
        ("PERSON_2", 0, 1, "mask", "not end in _<digits>"),
        ("PER SON", 0, 1, "mask", "must be ASCII letters"),
        ("", 0, 1, "mask", "must be ASCII letters"),
        ("PERSON", 2, 1, "mask", "span 2:1 is not a valid range"),
        ("PERSON", -1, 1, "mask", "span -1:1 is not a valid range"),
    ],
)
def test_invalid_spans_are_refused_clearly(entity: str, start: int, end: int, mode: str, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        Span(entity, start, end, mode)


def test_a_span_past_the_end_of_the_text_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("span 2:9 is outside a text of 3 characters")):
        PlaceholderMap().apply("Ann", [Span("PERSON", 2, 9, "mask")])
