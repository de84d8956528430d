"""Vetoes against semantic false hits: prompts that embed close together but ask something else.

Embeddings place "enable 2FA" next to "disable 2FA", "capital of France" next to "capital of Spain" and
"5 km to miles" next to "5 miles to km". A candidate whose cosine similarity passes the threshold is
still refused when the two prompts differ in:

- numbers (digits, decimals, number words, ordinals: "3 tips" vs "5 tips", "first" vs "second");
- polarity: negators (not, never, without, no, n't ...; and the common ones of German, French,
  Spanish, Italian, Portuguese, Dutch and Russian, and of Chinese, Japanese and Korean), either side of
  an opposite pair (enable/disable, turn on/off, add/remove, increase/decrease, before/after, min/max
  ...; in Chinese, Japanese and Korean text, where words are not spaced, found as substrings), a word
  that is the other prompt's word with a negating prefix (un-, dis-, des-, de-, in-, im-, non-, anti-,
  ent-, не-, раз-: lock/unlock, like/dislike, activar/desactivar), a word whose prefix is swapped for
  its opposite (include/exclude, upload/download, anmelden/abmelden, включить/отключить), or the same
  verb with another particle (zoom in/out, check in/out, sign up/out; German and Dutch separable
  particles at the end of the clause: melde mich an/ab, log ik in/uit);
- specific tokens: capitalised or all-caps words, identifiers (snake_case, dotted names, paths,
  e-mail addresses, tokens mixing letters and digits) and quoted strings: each one in one prompt must
  appear, in any case, among the words of the other;
- direction: for "A to B" / "from A to B" conversions and translations, the order of the terms;
- order: the same words with two of them swapped across an ordering word (than, over, before, after,
  instead, rather, from, into, to, by, minus: "is tea better than coffee" against "is coffee better than
  tea", "subtract 3 from 10" against "subtract 10 from 3"), which a bag-of-words embedding cannot tell
  apart; a swap with no such word between ("ocean poem", "poem about the ocean") is left alone;
- the question: the first question word asks for another thing (who / when / where / why / how many /
  how long ..., in the languages above); what, which and how ask for nothing in particular;
- going without: a "-free" or "-less" word in one prompt whose stem the other has plainly (gluten-free
  against gluten, sugar-free against sugary, wireless against wired is left to the slot check);
- in Chinese, Japanese and Korean (no spaces between words): a run of content characters replaced by
  another (猫/狗, 注册/注销), found by a character diff; replacing grammar characters (如何/怎么, を/の)
  or adding some (里的) is left alone;
- a swapped slot: the same request template with content words replaced ("population" for "area",
  "read" for "write") where no replaced word has a close match (word-embedding cosine, given by the
  caller) among the words that replaced it. Paraphrases mostly change function words and structure;
  near misses keep the template and change the slot.

Everything here is regular-expression work over short texts (tens of microseconds a prompt). The word
lists cover English fully and German, French, Spanish, Italian, Portuguese, Dutch, Russian, Polish,
Czech, Swedish, Turkish, Vietnamese, Chinese, Japanese and Korean in part; in any other language a
near miss is caught only by the numbers, names and identifiers it changes, or by the slot check.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher

_WORD = re.compile(r"[^\W\d_][\w'.@/-]*\w|[^\W\d_]|\d[\w.,%/:-]*")
_NUMBER = re.compile(r"(?<![A-Za-z0-9])\d+(?:[.,]\d+)*(?![A-Za-z])")
_FLAG = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")
_QUOTED = re.compile(r"[\"“'`]([^\"”'`]{2,60})[\"”'`]")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n)\W*([A-Za-z][\w'\u2019]*)")
_DIRECTION = re.compile(r"\b(?:from\s+)?(\w[\w-]*)\s+(?:to|into|->|→)\s+(\w[\w-]*)", re.IGNORECASE)

NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20", "thirty": "30",
    "hundred": "100", "thousand": "1000", "million": "1e6", "billion": "1e9", "dozen": "12", "half": "0.5",
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th", "last": "last",
    "single": "1", "double": "x2", "twice": "x2", "triple": "x3", "once": "x1",
    # German, French, Spanish, Italian, Portuguese, Dutch from two on ("one" in most is also "a")
    "zwei": "2", "drei": "3", "vier": "4", "fünf": "5", "sechs": "6", "sieben": "7", "acht": "8", "neun": "9",
    "zehn": "10", "hundert": "100", "tausend": "1000",
    "deux": "2", "trois": "3", "quatre": "4", "cinq": "5", "huit": "8", "dix": "10", "cent": "100", "mille": "1000",
    "dos": "2", "tres": "3", "cuatro": "4", "cinco": "5", "seis": "6", "siete": "7", "ocho": "8", "nueve": "9",
    "diez": "10", "cien": "100", "mil": "1000",
    "tre": "3", "quattro": "4", "cinque": "5", "sette": "7", "dieci": "10",
    "dois": "2", "duas": "2", "três": "3", "quatro": "4", "sete": "7", "oito": "8", "nove": "9", "dez": "10",
    "twee": "2", "drie": "3", "vijf": "5", "zes": "6", "zeven": "7", "negen": "9", "tien": "10",
}  # fmt: skip
_CURRENCY = re.compile(r"[$€£¥₹₽₩₺]")
_ON = re.compile(r"\bon\b(?=\s*(?:[?.!,;:]|$|or\b|and\b))", re.IGNORECASE)
"""A bare "on" that ends its clause (is the light on?, on or off): a state; elsewhere it is a preposition."""
_FREE = re.compile(r"([^\W\d_]{3,}?)(?:-free|free|-less|less)\b", re.IGNORECASE)
"""Words that say "without X": gluten-free, sugarless, wireless (unless, regardless are excluded below)."""
_NOT_FREE = frozenset({"unless", "regardless", "nevertheless", "nonetheless", "bless", "carefree"})

_ASKS = {
    "who": "who", "whom": "who", "whose": "who", "wer": "who", "qui": "who", "quién": "who", "quem": "who",
    "when": "when", "wann": "when", "quand": "when", "cuándo": "when", "quando": "when",
    "where": "where", "wo": "where", "où": "where", "dónde": "where", "onde": "where",
    "why": "why", "warum": "why", "wieso": "why", "weshalb": "why", "pourquoi": "why", "perché": "why",
    "por qué": "why", "por que": "why", "por quê": "why",
    "how many": "amount", "how much": "amount", "wie viel": "amount", "wie viele": "amount",
    "combien": "amount", "cuánto": "amount", "cuántos": "amount", "cuánta": "amount", "cuántas": "amount",
    "quanto": "amount", "quantos": "amount", "quante": "amount", "quanti": "amount",
    "how long": "duration", "how old": "age", "how far": "distance", "how often": "frequency",
    "what": "", "which": "", "how": "", "welche": "", "wie": "", "que": "", "quoi": "", "quel": "",
    "quelle": "", "qué": "", "cuál": "", "cómo": "", "cosa": "", "qual": "",
}  # fmt: skip
"""Question words and what each asks for; "" for those that ask for nothing in particular (what, which, how)."""
_ASK = re.compile(
    r"(?<!\w)(" + "|".join(sorted(map(re.escape, _ASKS), key=len, reverse=True)) + r")(?!\w)", re.IGNORECASE
)

NEGATORS = frozenset(
    {"not", "no", "never", "without", "none", "nobody", "nothing", "neither", "nor", "cannot", "except",
     "excluding", "unless", "lack", "lacking", "non",
     "nicht", "kein", "keine", "keinen", "ohne", "nie", "niemals",  # de
     "ne", "pas", "sans", "jamais", "aucun", "aucune",  # fr
     "sin", "nunca", "ningún", "ninguna", "tampoco",  # es
     "senza", "mai", "nessun", "nessuna",  # it
     "não", "sem", "nenhum", "nenhuma",  # pt
     "niet", "geen", "zonder", "nooit",  # nl
     "не", "нет", "без", "никогда", "ни", "нельзя"}  # ru
)  # fmt: skip

CJK_NEGATORS = ("不", "没", "沒", "别", "無", "无", "非", "未", "ない", "ません", "なし", "않", "못", "없")
"""Negating characters and endings of Chinese, Japanese and Korean, found as substrings (no spaces to split on)."""

_NEGATING_STEMS = ("avoid", "exclud", "omit", "skip", "prevent", "forbid", "refus")
"""Verbs that negate what follows, in any inflection (avoiding tolls, excluding weekends)."""

_OPPOSITES: tuple[tuple[str, str, str], ...] = (
    ("toggle", "enable enabled enabling activate activated turn_on switch_on unmute unblock allow "
     "aktivieren einschalten activer activar attivare ativar inschakelen",
     "disable disabled disabling deactivate deactivated turn_off switch_off off mute block deny "
     "deaktivieren ausschalten désactiver desactivar disattivare desativar uitschakelen"),
    ("toggle_tr_vi", "aç açmak açılır açın açık bật", "kapat kapatmak kapatılır kapatın kapalı tắt"),  # noqa: RUF001 (Turkish dotless i)
    ("install", "install installing installed setup set_up", "uninstall uninstalling uninstalled remove_app"),
    ("add", "add adding added insert include including grant", "remove removing removed delete exclude revoke"),
    ("lock", "lock locked encrypt encrypted encryption", "unlock unlocked decrypt decrypted decryption"),
    ("size", "increase increasing raise bigger larger largest more most higher high maximum max upgrade gain",
     "decrease decreasing reduce lower smaller smallest less least fewer fewest low minimum min downgrade lose"),
    ("move", "upload push import send arriving arrive incoming",
     "download pull export receive departing depart outgoing"),
    ("session", "login log_in sign_in signin", "logout log_out sign_out signout"),
    ("state", "open opening start starting started", "close closing stop stopping stopped"),
    ("vis", "public visible show", "private hidden hide"),
    ("sub", "subscribe follow", "unsubscribe unfollow"),
    ("order", "ascending asc", "descending desc"),
    ("time", "before earlier early first previous past", "after later late last next future"),
    ("value", "advantages pros benefits good better safe best accept true yes",
     "disadvantages cons risks bad worse unsafe worst reject decline false"),
    ("speed", "fast faster fastest quick quicker quickest speed_up", "slow slower slowest slow_down"),
    ("difficulty", "easy easier easiest", "hard harder hardest difficult"),
    ("price", "cheap cheaper cheapest affordable", "expensive pricier priciest costly"),
    ("length", "long longer longest", "short shorter shortest"),
    ("weight", "heavy heavier heaviest", "light lighter lightest"),
    ("tone", "light lighter lightest bright brighter brightest", "dark darker darkest dim dimmer"),
    ("strength", "strong stronger strongest strength strengths", "weak weaker weakest weakness weaknesses"),
    ("moisture", "wet wetter humid", "dry drier dryer"),
    ("wealth", "rich richer richest", "poor poorer poorest"),
    ("age", "young younger youngest new newer newest", "old older oldest"),
    ("frequency", "always often usually frequently", "sometimes rarely seldom occasionally"),
    ("feeling", "happy happier love like", "sad sadder hate dislike"),
    ("stance", "for", "against"),  # arguments for / against
    ("amount", "much many", "little few"),  # too much / too little
    ("memory", "remember remembering recall", "forget forgetting forgot"),
    ("trade", "buy buying purchase", "sell selling"),
    ("temp", "heat heating hot warm", "cool cooling cold"),
    ("flation", "inflation", "deflation"),
    ("code", "encode encoding encoded", "decode decoding decoded"),
    ("case", "uppercase upper capitalize", "lowercase lower"),
    ("side", "left", "right"),
    ("ns", "north northern", "south southern"),
    ("ew", "east eastern", "west western"),
    ("outcome", "win winning pass passing success succeed approve approved",
     "lose losing fail failing failure deny denied"),
    ("io", "input inbound ingress", "output outbound egress"),
    ("sync", "synchronous sync blocking", "asynchronous async non-blocking"),
    ("sep_de", "an ein", "ab aus"),  # separable particles at the clause's end: melde mich an / ab
    ("sep_nl", "aan in", "uit"),  # log ik in / uit, zet aan / uit
    ("sep_sv", "på", "av"),  # slå på / av
)  # fmt: skip
_CJK_OPPOSITES: tuple[tuple[str, str, str], ...] = (
    ("toggle", "打开 开启 启用 开通 オン 有効 켜 활성화", "关闭 关掉 禁用 停用 オフ 無効 끄 비활성화"),
    ("add", "添加 增加 追加 추가 설치 安装 インストール", "删除 移除 减少 削除 삭제 제거 卸载 アンインストール"),
    ("session", "登录 登入 ログイン 로그인", "退出 登出 注销 ログアウト 로그아웃"),
    ("move", "上传 アップロード 업로드", "下载 ダウンロード 다운로드"),
    ("lock", "加密 锁定 暗号化 암호화", "解密 解锁 復号 복호화"),
    ("vis", "显示 表示 보이기", "隐藏 非表示 숨기기"),
    ("allow", "允许 許可 허용", "禁止 拒否 차단"),
    ("size", "最大 最高 增大 提高 上升 升高 上げ 높", "最小 最低 减小 降低 下降 下げ 낮"),
    ("state", "開く 打开了 열기", "閉じる 关上 닫기"),
    ("trade", "买 買 구매", "卖 売 판매"),
)  # fmt: skip
_CJK_TERMS: tuple[tuple[str, tuple[str, int]], ...] = tuple(
    sorted(
        ((term, (group, sign)) for group, plus, minus in _CJK_OPPOSITES
         for sign, terms in ((1, plus), (-1, minus)) for term in terms.split()),
        key=lambda item: -len(item[0]),
    )
)  # fmt: skip
"""Longest first: a term inside a longer one (表示 in 非表示) is taken as part of the longer one only."""
_CJK_CHARS = "[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]"  # kana, CJK ideographs, Hangul
_CJK = re.compile(_CJK_CHARS)
_SCRIPT_BOUNDARY = re.compile(f"(?<={_CJK_CHARS})(?=[A-Za-z0-9])|(?<=[A-Za-z0-9])(?={_CJK_CHARS})")
"""Where Latin letters or digits meet an unspaced script: a name inside Chinese text is a word of its own."""

OPPOSITES: dict[str, tuple[tuple[str, int], ...]] = {}
"""Each word's sides of the opposite pairs it belongs to (light: heavy/light and light/dark)."""
for _group, _plus, _minus in _OPPOSITES:
    for _sign, _words in ((1, _plus), (-1, _minus)):
        for _word in _words.split():
            OPPOSITES[_word] = (*OPPOSITES.get(_word, ()), (_group, _sign))
STOPWORDS = frozenset(
    """a an the of in on at to for from with by about into over under and or but if then so than as is are was
    were be been being am do does did doing done have has had having i me my mine we us our you your yours he
    she it its they them their this that these those there here what which who whom whose when where why how
    can could would should will shall may might must please tell give show explain describe help want need
    know like let some any all each every other such very really just also much many most one thing things
    way ways best good right proper simple simply briefly brief quick quickly easy easily possible it's
    what's whats i'm i'd you're there's that's let's go going get getting got make making made use using used
    say said""".split()
)
"""Function words and generic request words, left out of the swapped-slot comparison."""

_PHRASES = re.compile(r"\b(turn|switch|log|sign|set)\s+(on|off|in|out|up)\b", re.IGNORECASE)
_ORDERING = frozenset({"than", "over", "before", "after", "instead", "rather", "from", "into", "to", "by", "minus"})
"""Words across which two terms cannot change places without changing the question."""


_PARTICLE = re.compile(r"\b([^\W\d_][\w-]*)\s+(in|out|on|off|up|down)\b", re.IGNORECASE)
_PARTICLE_CLASS = {"on": "in"}
"""As particles after a noun or verb, in and on mostly say the same (in/on Linux, log in/on): one class."""


@dataclass(frozen=True, slots=True)
class Features:
    """What a prompt pins down, for comparing it with a cached prompt."""

    text: str  # lower-cased, for multi-word specific terms
    words: frozenset[str]
    numbers: frozenset[str]
    polarity: frozenset[tuple[str, int]]
    negated: bool
    specific: frozenset[str]
    directions: tuple[tuple[str, str], ...]
    content: Counter[str]
    sequence: tuple[str, ...]  # content words, numbers and ordering words, in order (the swapped-order check)
    particles: frozenset[tuple[str, str]]  # (verb, particle): "zoom in" is ("zoom", "in")
    prefixed: frozenset[tuple[str, str]]  # (prefix, rest) of words with a swappable prefix: ("ex", "ternal")
    asks: str  # what the first question word asks for: "who", "when", "amount" ...; "" for what/which/how/none
    without: frozenset[str]  # what "-free" / "-less" words go without: gluten-free is "gluten"


def features(text: str) -> Features:
    """The veto features of one prompt."""
    cjk = _CJK.search(text) is not None
    spaced = _SCRIPT_BOUNDARY.sub(" ", text) if cjk else text  # 在Excel中 -> 在 Excel 中
    joined = _PHRASES.sub(lambda m: f"{m.group(1)}_{m.group(2)}", spaced)
    tokens = _WORD.findall(joined)
    lowered = [t.lower().strip(".'") for t in tokens]
    numbers = set(_NUMBER.findall(text.replace(",", ""))) | set(_CURRENCY.findall(text))
    polarity: set[tuple[str, int]] = set()
    negated = "n't" in text.lower() or "n\u2019t" in text.lower()
    if _ON.search(text):
        polarity.add(("toggle", 1))
    if cjk:
        negated |= _cjk(text, polarity)
    for word in lowered:
        if word in NUMBER_WORDS:
            numbers.add(NUMBER_WORDS[word])
        elif "-" in word:  # five-year-old, twenty-one
            numbers.update(NUMBER_WORDS[part] for part in word.split("-") if part in NUMBER_WORDS)
        if word in NEGATORS or word.endswith("n't") or word.startswith(_NEGATING_STEMS):
            negated = True
        if (sides := OPPOSITES.get(word)) is not None:
            polarity.update(sides)
    words = frozenset(_stem(w) for w in lowered) | frozenset(lowered) | {f.lower() for f in _FLAG.findall(text)}
    directions = tuple((_stem(a.lower()), _stem(b.lower())) for a, b in _DIRECTION.findall(text))
    specific = _specific(spaced, _WORD.findall(spaced))
    sequence = tuple(_stem(w) for w in lowered if w in _ORDERING or (w.isalnum() and w not in STOPWORDS))
    particles = frozenset(
        (verb.lower(), _PARTICLE_CLASS.get(particle.lower(), particle.lower()))
        for verb, particle in _PARTICLE.findall(text)
        if verb.lower() not in STOPWORDS
    )
    return Features(
        text.lower(), words, frozenset(numbers), frozenset(polarity), negated, specific, directions,
        Counter(_stem(w) for w in lowered if w.replace("-", "").isalpha() and w not in STOPWORDS), sequence, particles,
        _prefixes_of(words), _asks(text), _without(text),
    )  # fmt: skip


def _without(text: str) -> frozenset[str]:
    return frozenset(m.group(1).lower() for m in _FREE.finditer(text) if m.group(0).lower() not in _NOT_FREE)


def _asks(text: str) -> str:
    """What the prompt's first question word asks for ("" when it is what/which/how, or there is none)."""
    found = _ASK.search(text)
    return _ASKS[found.group(1).lower()] if found else ""


def _cjk(text: str, polarity: set[tuple[str, int]]) -> bool:
    """Add the opposite-pair sides found in Chinese, Japanese or Korean text; whether it holds a negator."""
    rest = text
    for term, side in _CJK_TERMS:
        if term in rest:
            polarity.add(side)
            rest = rest.replace(term, " ")
    rest = _A_NOT_A.sub(" ", rest)  # 好不好, 是不是, 可不可以: a yes-no question, not a negation
    return any(n in rest for n in CJK_NEGATORS)


_A_NOT_A = re.compile(r"(\w)不\1")
_CJK_FUNCTION = frozenset(
    "的了吗呢吧啊呀得地着过里在是有把给被要会能可以么怎如何样什请您你我他她它们这那个些哪谁都也还就"
    "はがをのにでへともやかねよなするますですただいか"
    "를을이가은는의에서로으하도만까지요고"
)  # fmt: skip
"""Characters of Chinese, Japanese and Korean that carry grammar, not the question's subject (particles,
question words, pronouns, auxiliaries): replacing one by another (如何/怎么, 可以/能, を/の) keeps the question."""
_CJK_SPACING = re.compile(r"[\s\W_]+")


def _cjk_slot(a: str, b: str) -> bool:
    """Chinese, Japanese or Korean prompts where a run of content characters was replaced by another (猫/狗,
    注册/注销, 北京/上海): what the slot check does with words, which these scripts do not space."""
    if not (_CJK.search(a) and _CJK.search(b)):
        return False
    x, y = _CJK_SPACING.sub("", a), _CJK_SPACING.sub("", b)
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, x, y, autojunk=False).get_opcodes():
        if tag == "replace" and _has_content(x[i1:i2]) and _has_content(y[j1:j2]):
            return True
    return False


def _has_content(segment: str) -> bool:
    return any(ch not in _CJK_FUNCTION for ch in segment)


def _specific(text: str, tokens: list[str]) -> frozenset[str]:
    starts = {_stem(m.group(1)) for m in _SENTENCE_START.finditer(text)}
    out = {q.strip().lower() for q in _QUOTED.findall(text)}
    out |= {flag.lower() for flag in _FLAG.findall(text)}
    for token in tokens:
        bare = token.strip(".'")
        if len(bare) < 2:
            continue
        has_digit = any(c.isdigit() for c in bare) and any(c.isalpha() for c in bare)
        ident = any(c in bare for c in "_./@") or has_digit or (bare[1:] != bare[1:].lower() and bare != bare.upper())
        caps = bare[0].isupper() and _stem(bare) not in starts
        if ident or caps or (bare.isupper() and len(bare) > 1):
            out.add(_stem(bare.lower()))
    return frozenset(out)


def _stem(word: str) -> str:
    for suffix in ("'s", "\u2019s"):
        word = word.removesuffix(suffix)
    if len(word) > 4 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


WordSimilarity = Callable[[list[str], list[str]], float]
"""Given two lists of words, the lowest over all words of the best cosine to a word of the other list."""

SLOT_SIMILARITY = 0.5
"""A replaced word needs at least this word-embedding cosine to one of its replacements (tuned on the pair set)."""
SINGLE_SLOT_SIMILARITY = 0.65
"""The same when one word alone was replaced and all else kept: then it is the question's slot more often than
a synonym (herbivores/carnivores 0.65, remember/forget 0.61; lower/reduce, 0.57, is lost as a paraphrase)."""


def swapped_slot(new: Features, cached: Features, similarity: WordSimilarity) -> bool:
    """Whether the two prompts are one template with a slot filled differently (see the module doc)."""
    gone = list((cached.content - new.content).elements())
    came = list((new.content - cached.content).elements())
    if not gone or not came:
        return False
    gone_words, came_words = sorted(set(gone)), sorted(set(came))
    limit = SINGLE_SLOT_SIMILARITY if len(gone_words) == len(came_words) == 1 else SLOT_SIMILARITY
    return similarity(gone_words, came_words) < limit


def veto(new: Features, cached: Features) -> str | None:
    """Why ``cached`` must not answer ``new`` (a short reason), or None when nothing forbids it."""
    if new.numbers != cached.numbers:
        return "number"
    if new.negated != cached.negated:
        return "negation"
    if (
        _opposed(new.polarity, cached.polarity)
        or _prefixed(new.words, cached.words)
        or _prefix_swapped(new.prefixed, cached.prefixed)
        or _particle_flipped(new.particles, cached.particles)
        or _went_without(new, cached)
        or _went_without(cached, new)
    ):
        return "polarity"
    if not (_covered(new.specific, cached) and _covered(cached.specific, new)):
        return "entity"
    if _reversed(new.directions, cached.directions):
        return "direction"
    if _swapped(new.sequence, cached.sequence):
        return "order"
    if new.asks and cached.asks and new.asks != cached.asks:
        return "question"
    if _cjk_slot(new.text, cached.text):
        return "slot"
    return None


def _opposed(a: frozenset[tuple[str, int]], b: frozenset[tuple[str, int]]) -> bool:
    """Both prompts use a pair of opposites, with different sides (one-sided use is left to similarity)."""
    groups = {g for g, _ in a} & {g for g, _ in b}
    return any({s for g2, s in a if g2 == g} != {s for g2, s in b if g2 == g} for g in groups)


_PREFIXES = (
    "un", "dis", "des", "dés", "de", "in", "im", "il", "ir", "i", "non", "anti", "non-", "anti-", "ent", "не", "раз",
)  # fmt: skip


def _by_first_letter(prefixes: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The prefixes by their first letter, so a word is tried only against those it can start with."""
    out: dict[str, tuple[str, ...]] = {}
    for prefix in prefixes:
        out[prefix[0]] = (*out.get(prefix[0], ()), prefix)
    return out


_NEGATING_BY_LETTER = _by_first_letter(_PREFIXES)


def _prefixed(a: frozenset[str], b: frozenset[str]) -> bool:
    """One prompt has a word the other has with a negating prefix (both directions)."""
    for x, y in ((a, b), (b, a)):
        for word in x:
            for prefix in _NEGATING_BY_LETTER.get(word[:1], ()):
                if word.startswith(prefix) and len(word) - len(prefix) > 2 and word[len(prefix) :] in y:
                    return True
    return False


_SWAPPED_PREFIXES = (
    ("in", "ex"), ("im", "ex"), ("up", "down"), ("over", "under"), ("en", "de"),  # en
    ("an", "ab"), ("ein", "aus"), ("in", "uit"), ("aan", "uit"),  # de, nl
    ("в", "вы"), ("в", "от"), ("за", "от"), ("за", "раз"), ("под", "от"), ("при", "от"),  # ru
    ("w", "wy"), ("za", "vy"), ("za", "wy"),  # pl, cs: włączyć/wyłączyć, zapnout/vypnout
)  # fmt: skip
"""Prefixes that turn a word into its opposite when one replaces the other: include/exclude, upload/download,
anmelden/abmelden, einschalten/ausschalten, включить/выключить, закрыть/открыть, подключить/отключить."""
_MIN_STEM = 3  # overpay/underpay; both words must be in the prompts, so a short stem rarely misleads
_OPPOSITE_PREFIX: dict[str, tuple[str, ...]] = {}
for _first, _second in _SWAPPED_PREFIXES:
    _OPPOSITE_PREFIX[_first] = (*_OPPOSITE_PREFIX.get(_first, ()), _second)
    _OPPOSITE_PREFIX[_second] = (*_OPPOSITE_PREFIX.get(_second, ()), _first)
_PREFIXES_BY_LETTER = _by_first_letter(_OPPOSITE_PREFIX)


def _prefixes_of(words: frozenset[str]) -> frozenset[tuple[str, str]]:
    """Each word with a swappable prefix, split after it (once per prompt, so a comparison is set lookups)."""
    return frozenset(
        (prefix, word[len(prefix) :])
        for word in words
        for prefix in _PREFIXES_BY_LETTER.get(word[:1], ())
        if word.startswith(prefix) and len(word) - len(prefix) >= _MIN_STEM
    )


def _prefix_swapped(a: frozenset[tuple[str, str]], b: frozenset[tuple[str, str]]) -> bool:
    """A word of one prompt is a word of the other with its prefix swapped for the opposite one."""
    for x, y in ((a, b), (b, a)):
        for prefix, rest in x:
            for other in _OPPOSITE_PREFIX[prefix]:
                if (other, rest) in y and (other, rest) not in x:
                    return True
    return False


def _went_without(a: Features, b: Features) -> bool:
    """``a`` goes without something (gluten-free) that ``b`` has, and ``b`` does not go without it."""
    return any(
        any(w.startswith(x) for w in b.words if "free" not in w and "less" not in w) for x in a.without - b.without
    )


def _particle_flipped(a: frozenset[tuple[str, str]], b: frozenset[tuple[str, str]]) -> bool:
    """The same verb with other particles in the two prompts (zoom in / out, sign up / out): another phrasal verb."""
    verbs = {verb for verb, _ in a} & {verb for verb, _ in b}
    return any({p for v, p in a if v == verb}.isdisjoint({p for v, p in b if v == verb}) for verb in verbs)


def _swapped(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """The same words in the same order but for two that changed places across an ordering word."""
    if len(a) != len(b) or a == b:
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(diff) != 2:
        return False
    i, j = diff
    return a[i] == b[j] and a[j] == b[i] and any(w in _ORDERING for w in a[i + 1 : j])


def _covered(terms: frozenset[str], other: Features) -> bool:
    return all(term in other.words or (" " in term and term in other.text) for term in terms)


def _reversed(a: tuple[tuple[str, str], ...], b: tuple[tuple[str, str], ...]) -> bool:
    return any((y, x) in b for x, y in a if x != y)
