"""Structural cues for the classifier: who a sentence is aimed at and what it tries to change.

Each cue is a cheap, language-spanning regular expression over the canonical text (lower case):
a reference to *earlier* instructions, a second-person directive to the model, a reassignment of its
role, a request for its hidden setup, sending output somewhere other than the user, the model named
as the addressee, a tool asked to act, a confirmation waived. ``cue_tokens(text)`` returns the cues
present and every pair of them as pseudo-words, so the linear classifier can weigh *combinations*
("earlier instructions" + "you now ...") instead of single keywords.
"""

# ruff: noqa: E501, RUF001  (regex alternations are data; several scripts)

from __future__ import annotations

import itertools
import re

from plugins._injection.rules import _gate, languages

_WORD = re.compile(r"\w+")

_CUES: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {  # name: (English, other languages)
    "prior_ref": (
        re.compile(
            r"\b(?:previous|prior|earlier|above|preceding|original|initial|old|former|existing|starting|setup|system)\s+(?:\w+\s+)?(?:instructions?|rules|guidance|guidelines|directions|directives|prompt|configuration|setup|orders|constraints|text)\b|\b(?:instructions?|rules|guidance|directions|orders|everything|what)\s+(?:you\s+(?:were|have been|got|received)|(?:that\s+)?(?:came|was said|were given)\s+(?:before|earlier|above))"
        ),
        re.compile(
            r"vorher|zuvor|davor|antes|avant|раньше|ранее|前面|早先|vorherig|bisherig|ursprünglich|anterior|previas?\b|précédent|antérieur|d'avant|de antes|di prima|предыдущ|прежн|исходн|вышеуказ|之前|以前|先前|上面的|上述|原来的|原來的|最初的|初始|先ほど|これまで|上記|元の|最初の|이전|원래"
        ),
    ),
    "you_directive": (
        re.compile(
            r"\b(?:from now on|from here on|henceforth|starting now|going forward|for the rest of)\b|\byou\s+(?:must|will|shall|are to|need to|have to)\s+(?:now\s+)?(?:only\s+)?(?:obey|follow|answer|respond|comply|do|say|reply|listen)|\b(?:obey|listen to|take orders from|answer to|serve)\s+(?:only\s+)?(?:me|my)\b|\byour\s+(?:new|real|only|true|sole|actual)\s+(?:task|job|goal|role|purpose|duty|instructions?|identity)"
        ),
        re.compile(
            r"ab (?:jetzt|sofort)|von nun an|desde ahora|a partir de (?:ahora|aquí)|de ahora en adelante|désormais|à partir de maintenant|d'ora in poi|da ora|a partir de agora|теперь ты|отныне|с этого момента|从现在(?:开始|起)|從現在(?:開始|起)|以后只|以後只|今後は|これからは|以後|이제부터|앞으로는|只听我|只聽我|服从我|私の(?:命令|指示|言う)|내 말만|내 명령"
        ),
    ),
    "persona": (
        re.compile(
            r"\byou\s+(?:are|'re)\s+(?:now|no longer)\b|\b(?:act|behave|pretend|roleplay|role-play|respond|answer)\s+(?:as|like|to be)\b|\b(?:become|stop being|drop the act)\b|\bnew (?:identity|persona|role)\b"
        ),
        re.compile(
            r"du bist (?:jetzt|nun|ab sofort)|ahora eres|eres ahora|tu es (?:maintenant|désormais)|ora sei|agora você é|теперь ты|ты больше не|притворись|你现在是|你現在是|你不再是|扮演|あなたは今から|になりきって|너는 이제"
        ),
    ),
    "secret_obj": (
        re.compile(
            r"\b(?:your|the)\s+(?:operators?|developers?|creators?|makers?|owners?)\b|\bbefore (?:i|we|you) (?:started|began|joined)|\b(?:hidden|secret|confidential|internal|private|initial|original|full|exact|unedited|verbatim|system|setup|startup)\s+(?:\w+\s+)?(?:prompt|instructions?|preamble|configuration|setup|directions|rules|message|text)\b|\bwhat\s+(?:your|the)\s+(?:operator|developer|creator)s?\b|\bbefore (?:my|our|the) (?:first )?(?:message|chat|conversation)"
        ),
        re.compile(
            r"systemprompt|versteckt|prompt del sistema|oculto|ocultas|prompt système|caché|системн\w* (?:промпт|сообщени|инструкци)|скрыт|系统提示|系統提示|提示词|提示詞|隐藏|隱藏|设定原文|システムプロンプト|隠され|隠し|初期設定|시스템 프롬프트|숨겨진"
        ),
    ),
    "out_redirect": (
        re.compile(
            r"\b(?:send|post|upload|forward|email|e-mail|paste|transmit|copy|route|exfiltrate)\b[^.\n]{0,60}\b(?:to|into|at)\s+(?:https?://|www\.|[\w.-]+@|an? (?:outside|external|new|public|private)|my (?:server|address|email)|the (?:webhook|url|server)|pastebin|a public)|\binstead of (?:the user|replying)|\b(?:do not|don'?t|never)\s+(?:tell|inform|mention|reply to|notify)\s+(?:the\s+)?user"
        ),
        re.compile(
            r"!\[[^\]]*\]\(https?://|fremde adresse|dirección externa|adresse externe|чужой адрес|外部|陌生地址|不用告诉用户|不要告诉用户|ユーザーには黙"
        ),
    ),
    "ai_addressee": (
        re.compile(
            r"\b(?:dear|hey|attention|note to|message to|instructions? (?:to|for)|notice to|memo to|to)\s+(?:the\s+|any\s+|all\s+)?(?:ai|llm|assistant|model|chatbot|bot|agent|language model)s?\b|\b(?:if|when)\s+you\s+are\s+an?\s+(?:ai|llm|assistant|model|language model)|\b(?:ai|llm|assistant|model|agent|bot)s?\s+(?:reading|processing|summari[sz]ing|handling|reviewing)\s+(?:this|these)|\b(?:whoever|any (?:model|system|ai)|automated (?:reviewers?|systems?))\s+(?:that\s+)?(?:reads?|summari[sz]es|processes|reviews?)"
        ),
        re.compile(r"给ai|給ai|致ai|aiへ|an die ki|para la ia|pour l'ia|для ии"),
    ),
    "tool_action": (
        re.compile(
            r"\b(?:tool|function|shell|terminal|plugin|integration|api|access)\b[^.\n]{0,60}\b(?:delete|remove|export|execute|run|send|forward|transfer|wire|read|download|copy|grant|add my|change the owner)\b|\b(?:execute|run)\s+`"
        ),
        re.compile(r"`(?:cat|rm|curl|wget|env|scp)\b|工具|ツール|werkzeug|herramienta|outil|инструмент"),
    ),
    "no_confirm": (
        re.compile(
            r"\b(?:without|no need (?:for|to)|don'?t|do not|never|no)\s+(?:\w+\s+)?(?:asking|ask|confirm\w*|approval|permission|questions asked|checking|telling)\b|\bsilently\b|\bbefore the user notices\b"
        ),
        re.compile(
            r"ohne (?:nachzufragen|rückfrage)|sin (?:preguntar|confirmar)|sans (?:demander|confirmer)|без (?:подтверждени|спрос)|不用(?:确认|問|问)|不要(?:确认|问)|確認せず|黙って"
        ),
    ),
    "void_pred": (
        re.compile(
            r"\b(?:no longer (?:apply|applies|count|valid|binding)|(?:are|is|were|was|have been|has been) (?:withdrawn|revoked|cancel+ed|void|obsolete|lifted|suspended|expired|replaced|rescinded|annulled))\b"
        ),
        re.compile(
            r"関係ない|関係ありません|無関係|不算数|不用管|egal|keine rolle|no importa|da igual|n'importe plus|не важно|не имеет значения|gelten nicht|aufgehoben|widerrufen|hinfällig|ya no (?:cuentan|valen|aplican)|revocad|anulad|ne comptent plus|révoqué|caduque|больше не|отозван|аннулир|утратил|作废|作廢|取消|失效|不再有效|撤销|撤銷|無効|取り消|撤回|廃止|適用されません|취소|유효하지"
        ),
    ),
}
_GATE_WORDS = {  # where the pattern's first words are too common to gate on, the words it needs later
    "void_pred": (
        "longer",
        "withdrawn",
        "revoked",
        "cancelled",
        "canceled",
        "void",
        "obsolete",
        "lifted",
        "suspended",
        "expired",
        "replaced",
        "rescinded",
        "annulled",
    ),
    "no_confirm": (
        "asking",
        "ask",
        "confirm",
        "approval",
        "permission",
        "questions",
        "checking",
        "telling",
        "silently",
        "notices",
    ),
}
_GATES = {name: _gate(_GATE_WORDS.get(name, en.pattern)) for name, (en, _) in _CUES.items()}
_CUE_NAMES = tuple(_CUES)


def cue_tokens(text: str) -> list[str]:
    """The cues in canonical ``text`` and every pair of them, as pseudo-words (``"§prior_ref"``, ...).

    An English pattern runs only when one of its gate words (first four letters) is in the text; the
    other-language pattern only when the text is not ASCII or shows another Latin-script language."""
    words = set(_WORD.findall(text))
    prefixes = {w[:4] for w in words}
    intl = not text.isascii() or bool(languages(text, words))
    found = [
        name
        for name in _CUE_NAMES
        if (((gate := _GATES[name]) is None or gate.open(prefixes, text)) and _CUES[name][0].search(text))
        or (intl and _CUES[name][1].search(text))
    ]
    return [*(f"§{n}" for n in found), *(f"§{a}+{b}" for a, b in itertools.combinations(found, 2))]
