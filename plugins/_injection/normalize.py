"""Undo the disguises attackers put on text before it is scored.

``normalize(text)`` returns a canonical view (NFKC, invisible and bidi characters removed, lower
case, whitespace collapsed) plus *variants*: what base64/hex/URL/HTML-encoded blobs, ROT13,
reversed text, Unicode tag characters, homoglyphs, leetspeak and s p a c e d letters turn into.
Every variant is scored like the text itself. Expensive decoders only run after a cheap
pre-check says they could find something.
"""

# ruff: noqa: RUF001  (the confusables table is made of look-alike letters)

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass

# Zero-width, joiners, soft hyphen, word joiner, invisible operators, BOM, variation selectors, bidi controls.
_INVISIBLE = frozenset(
    [
        *(0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0),
        *range(0x200B, 0x2010),
        *range(0x202A, 0x202F),
        *range(0x2060, 0x2070),
        *range(0xFE00, 0xFE10),
    ]
)
_BIDI = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_TAG_START, _TAG_END = 0xE0000, 0xE007F
_STRIP: dict[int, str | None] = {cp: None for cp in _INVISIBLE}
# Letters NFKC leaves alone: negative circled/squared and regional-indicator capitals spell A-Z too.
for _base in (0x1F150, 0x1F170, 0x1F1E6):
    _STRIP.update({_base + i: chr(ord("a") + i) for i in range(26)})
_COMBINING = re.compile(r"[\u0300-\u036f\u0489\u20d0-\u20ff]+")  # left over after NFKC: zalgo and strike-through

# Look-alike letters (Cyrillic, Greek, Armenian, Latin extensions) mapped to the Latin letter they imitate.
_CONFUSABLE_PAIRS = (
    "аa вb сc дd еe ԁd һh іi јj кk ӏl мm нh оo рp ԛq ѕs тt υu хx уy ԝw ѵv ьb ёe їi ґr "
    "АA ВB СC ЕE НH ІI ЈJ КK МM ОO РP ЅS ТT ХX УY "
    "αa βb εe ιi κk νv οo ρp τt υu χx ωw ΑA ΒB ΕE ΗH ΙI ΚK ΜM ΝN ΟO ΡP ΤT ΧX ΥY ΖZ "
    "ɑa ɡg ɩi ɪi ʏy ɴn ʀr ʟl ᴀa ᴄc ᴅd ᴇe ᴊj ᴋk ᴍm ᴏo ᴘp ᴛt ᴜu ᴠv ᴡw ᴢz օo ոn սu"
)
_CONFUSABLES = {ord(p[0]): p[1] for p in _CONFUSABLE_PAIRS.split() if len(p) == 2}
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s"})

_WS = re.compile(r"[^\S\n]+")
_NL = re.compile(r"\s*\n\s*")
_WORD = re.compile(r"\S+")
_LEET_HINT = re.compile(r"[a-z][0-9@$]|[0-9@$][a-z]")
_LEETY = re.compile(r"\b(?=[a-z0-9@$]*[a-z])(?=[a-z0-9@$]*[0-9@$])[a-z0-9@$]{3,}")
_SPACED = re.compile(r"(?<![\w])(?:\w[ .\-_*/|]{1,3}){3,}\w(?![\w])")
_SPACED_SEP = re.compile(r"[ .\-_*/|]+")
_HYPHENATED = re.compile(r"(?<=\w)[-_.·•](?=\w)")
_B64 = re.compile(r"[A-Za-z0-9+/_-]{20,}={0,2}")
_B32 = re.compile(r"\b[A-Z2-7]{24,}={0,6}")
_HEX = re.compile(r"(?:(?:0x|\\x)?[2-7][0-9a-fA-F][\s:,]?){8,}")  # printable ASCII bytes start with 2-7
_PCT = re.compile(r"%[0-9a-fA-F]{2}")
_ENTITY = re.compile(r"&#x?[0-9a-fA-F]{2,6};")
_UESC = re.compile(r"\\u[0-9a-fA-F]{4}")
# Words that, in ROT13 or reversed text, say an attack is hiding there (checked before keeping the variant).
_TELL = re.compile(
    r"ignore|disregard|instruction|system prompt|previous|jailbreak|reveal|forget|override|"
    r"password|secret|developer mode|no restrictions|pretend|you are now|do anything now|prompt"
)
_MAX_BLOBS = 6


@dataclass(frozen=True, slots=True)
class Normalized:
    """The canonical view of a text, the decoded variants to scan too, and the disguises seen."""

    text: str
    variants: tuple[tuple[str, str], ...]  # (how it was decoded, canonical text)
    tricks: frozenset[str]


def normalize(text: str, depth: int = 0) -> Normalized:
    """Canonicalise ``text`` and collect what its disguises decode to (recursing once into decodings)."""
    tricks: set[str] = set()
    variants: list[tuple[str, str]] = []
    clean = text
    if not text.isascii():
        clean, hidden = _strip_invisible(text, tricks)
        if hidden:
            variants.append(("tag_chars", _canon(hidden)))
        clean = unicodedata.normalize("NFKC", clean)
        if _COMBINING.search(clean):
            tricks.add("combining_marks")
            clean = _COMBINING.sub("", clean)
    canon = base = _canon(clean)
    if not canon.isascii():
        folded = _fold_confusables(canon)
        if folded != canon:
            tricks.add("homoglyphs")
            variants.append(("homoglyphs", folded))
            base = folded
    _deleet(base, variants, tricks)
    _despace(base, variants, tricks)
    if depth < 2:
        for how, decoded in _decode_blobs(clean):
            tricks.add(how)
            inner = normalize(decoded, depth + 1)
            variants.append((how, inner.text))
            variants.extend(inner.variants)
            tricks |= inner.tricks
    told = _TELL.search(canon) is not None
    for how, turned in (("rot13", codecs.encode(canon, "rot13")), ("reversed", canon[::-1])):
        if not told and _TELL.search(turned):
            tricks.add(how)
            variants.append((how, turned))
    return Normalized(canon, tuple(variants), frozenset(tricks))


def strip_invisible(text: str) -> str:
    """``text`` without zero-width, bidi-control and tag characters (what ``sanitize`` forwards)."""
    if text.isascii():
        return text
    return _strip_invisible(text, set())[0]


def _canon(text: str) -> str:
    return _NL.sub("\n", _WS.sub(" ", text)).strip().lower()


def _strip_invisible(text: str, tricks: set[str]) -> tuple[str, str]:
    """Remove invisible characters; return the rest and the ASCII that Unicode tag characters spelled."""
    hidden = "".join(chr(ord(c) - _TAG_START) for c in text if _TAG_START + 0x20 <= ord(c) < _TAG_END)
    if hidden or any(_TAG_START <= ord(c) <= _TAG_END for c in text):
        tricks.add("tag_chars")
        text = "".join(c for c in text if not _TAG_START <= ord(c) <= _TAG_END)
    stripped = text.translate(_STRIP)
    if len(stripped) != len(text):
        tricks.add("bidi" if any(ord(c) in _BIDI for c in text) else "invisible_chars")
    return stripped, hidden


def _fold_confusables(canon: str) -> str:
    """Map look-alike letters to Latin in words that mix scripts, and in all-look-alike words of mostly
    Latin text (a Russian sentence stays Russian)."""
    latin_text = sum(1 for c in canon if "a" <= c <= "z") > 0.5 * sum(1 for c in canon if c.isalpha())

    def fold(m: re.Match[str]) -> str:
        word = m.group()
        has_latin = any("a" <= c <= "z" for c in word)
        lookalikes = sum(1 for c in word if ord(c) in _CONFUSABLES)
        if lookalikes and (has_latin or (latin_text and lookalikes == sum(1 for c in word if c.isalpha()))):
            return word.translate(_CONFUSABLES).lower()
        return word

    return _WORD.sub(fold, canon)


def _deleet(canon: str, variants: list[tuple[str, str]], tricks: set[str]) -> None:
    if not _LEET_HINT.search(canon):
        return
    turned = _LEETY.sub(lambda m: m.group().translate(_LEET), canon)
    if turned != canon:
        tricks.add("leetspeak")
        variants.append(("leetspeak", turned))


def _despace(canon: str, variants: list[tuple[str, str]], tricks: set[str]) -> None:
    if len(_HYPHENATED.findall(canon)) >= 3 and not _SPACED.search(canon):
        tricks.add("split_words")  # "ig-nore a-ll pre-vious in-struc-tions"
        variants.append(("split_words", _HYPHENATED.sub("", canon)))
    if not _SPACED.search(canon):
        return
    turned = _SPACED.sub(lambda m: _SPACED_SEP.sub("", m.group()), canon)
    tricks.add("spaced_letters")
    variants.append(("spaced_letters", turned))


def _decode_blobs(text: str) -> list[tuple[str, str]]:
    """Decoded base64, hex, percent-encoded, HTML-entity and \\u-escaped runs that read as text."""
    found: list[tuple[str, str]] = []
    for m in _B64.finditer(text):
        if len(found) >= _MAX_BLOBS:
            break
        blob = m.group()
        if blob.isalpha() and (blob.islower() or blob.isupper()):
            continue  # a long plain word or identifier, not base64
        if (decoded := _b64(blob)) is not None:
            found.append(("base64", decoded))
    for m in _B32.finditer(text):
        if len(found) < _MAX_BLOBS and (decoded := _b32(m.group())) is not None:
            found.append(("base32", decoded))
    for m in _HEX.finditer(text):
        digits = re.sub(r"0x|\\x|[\s:,]", "", m.group())
        if len(found) < _MAX_BLOBS and (decoded := _readable(_unhex(digits))) is not None:
            found.append(("hex", decoded))
    if "%" in text and len(_PCT.findall(text)) >= 3:
        found.append(("url_encoding", urllib.parse.unquote(text)))
    if "&#" in text and _ENTITY.search(text):
        found.append(("html_entities", html.unescape(text)))
    if "\\u" in text and _UESC.search(text):
        found.append(("unicode_escapes", _UESC.sub(lambda m: chr(int(m.group()[2:], 16)), text)))
    return found


def _b64(blob: str) -> str | None:
    padded = blob + "=" * (-len(blob) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _readable(raw)


def _b32(blob: str) -> str | None:
    try:
        raw = base64.b32decode(blob + "=" * (-len(blob) % 8))
    except (binascii.Error, ValueError):
        return None
    return _readable(raw)


def _unhex(digits: str) -> bytes:
    try:
        return bytes.fromhex(digits[: len(digits) // 2 * 2])
    except ValueError:
        return b""


def _readable(raw: bytes) -> str | None:
    """The bytes as text when they are mostly printable UTF-8 with some letters, else None."""
    if len(raw) < 6:
        return None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for c in decoded if c.isprintable() or c in "\n\t\r")
    letters = sum(1 for c in decoded if c.isalpha())
    if printable < 0.95 * len(decoded) or letters < 0.5 * len(decoded) or " " not in decoded.strip():
        return None
    return decoded
