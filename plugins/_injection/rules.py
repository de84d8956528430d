"""Hand-written detection rules: weighted regular expressions, one family per attack category and language.

Rules run on the canonical (lower-cased, NFKC, newline-preserving) text from ``normalize``. Each rule
names its category and a weight in (0, 1): roughly the chance that a text it matches is an attack.
Benign text *about* instructions or role-play is what the weights are tuned against: a rule that
can fire on such text has a low weight and needs the classifier or another rule to agree.
"""

# ruff: noqa: E501, RUF001  (regex alternations are data, one rule a line; look-alike letters are the point)

from __future__ import annotations

import re
from dataclasses import dataclass

OVERRIDE = "instruction_override"
JAILBREAK = "roleplay_jailbreak"
EXTRACTION = "system_prompt_extraction"
INDIRECT = "indirect_injection"
DELIMITER = "delimiter_attack"
SMUGGLING = "payload_smuggling"
EXFILTRATION = "markdown_exfiltration"
TOOL = "tool_hijack"
CATEGORIES = (OVERRIDE, JAILBREAK, EXTRACTION, INDIRECT, DELIMITER, SMUGGLING, EXFILTRATION, TOOL)


Need = str | tuple[str, ...]  # a regex alternation to read gate strings off, or the gate strings themselves


@dataclass(frozen=True, slots=True)
class Gate:
    """Cheap evidence a rule needs before its pattern runs: a word starting with one of ``words``
    (compared on their first four letters) or one of ``substrings`` somewhere in the text."""

    words: frozenset[str]
    substrings: tuple[str, ...]

    def open(self, words: set[str], text: str) -> bool:
        return not self.words.isdisjoint(words) or any(s in text for s in self.substrings)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    category: str
    weight: float
    pattern: re.Pattern[str]
    gates: tuple[Gate, ...]  # all must be open for the pattern to be tried
    lang: str | None = None  # tried only when the text shows signs of this language


_RULES: list[Rule] = []
_META = set("\\()[]{}?*+.|^$")
_WORDISH = re.compile(r"\w+")


def _gate(need: Need) -> Gate | None:
    lits = list(need) if isinstance(need, tuple) else _literals(need)
    if not lits:
        return None
    words, subs = set(), []
    for lit in lits:
        tokens = _WORDISH.findall(lit)
        if tokens and lit[0].isalnum() and ord(lit[0]) < 0x0600:
            words.add(max(tokens, key=len)[:4])  # the rarest-looking word of a phrase: "the user" -> "user"
        else:
            subs.append(lit)
    return Gate(frozenset(words), tuple(subs))


def _rule(name: str, category: str, weight: float, pattern: str, *need: Need, lang: str | None = None) -> None:
    gates = tuple(g for g in map(_gate, need or (pattern,)) if g is not None)
    _RULES.append(Rule(name, category, weight, re.compile(pattern), gates, lang))


def _split_top(pattern: str) -> list[str]:
    """``pattern`` cut at its top-level ``|`` (outside groups and classes)."""
    parts, depth, start, i, in_class = [], 0, 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    return [*parts, pattern[start:]]


def _literals(pattern: str) -> list[str] | None:
    """Strings one of which every match of ``pattern`` starts with, or None when that cannot be read off."""
    found: list[str] = []
    for alt in _split_top(pattern):
        while alt.startswith("\\b"):
            alt = alt[2:]
        if alt.startswith("(?:"):
            inner, depth = 3, 1
            while depth and inner < len(alt):
                depth += {"(": 1, ")": -1}.get(alt[inner], 0) if alt[inner - 1] != "\\" else 0
                inner += 1
            if inner < len(alt) and alt[inner] in "?*{":
                return None
            sub = _literals(alt[3 : inner - 1])
            if sub is None:
                return None
            found += sub
            continue
        lit = ""
        for i, c in enumerate(alt):
            if c in _META:
                if c in "?*{" and lit:
                    lit = lit[:-1]
                break
            lit += c
            if i + 1 == len(alt):
                break
        if len(lit) < (1 if not lit.isascii() else 2):
            return None
        found.append(lit)
    return found


def _near(a: str, b: str, gap: int = 40) -> str:
    """``a`` then ``b`` (or ``b`` then ``a``) within ``gap`` characters of one sentence."""
    return rf"(?:{a})[^.!?\n。！？]{{0,{gap}}}(?:{b})|(?:{b})[^.!?\n。！？]{{0,{gap}}}(?:{a})"


# ---------------------------------------------------------------------------------------------- English
_EN_DROP = (
    r"ignor(?:e|ing)|disregard(?:ing)?|forget(?:ting)?|skip|overrid(?:e|ing)|overrule|bypass|discard|drop|abandon|"
    r"set aside|throw out|put aside|pay no (?:attention|heed|mind) to|(?:don'?t|do not|never) (?:follow|obey|listen to|"
    r"adhere to|comply with)|stop (?:following|obeying)|no longer (?:follow|obey)|cancel|erase|wipe|nullify|void|"
    r"supersede|neglect|dismiss|scrap|toss out|leave behind|deviate from|break (?:free )?(?:from|of)"
)
_EN_BEFORE = (
    r"previous|prior|preceding|earlier|above|foregoing|former|initial|original|old|existing|system|"
    r"developer|safety|built[- ]in|all (?:the )?(?:previous|prior|other)|any (?:previous|prior|other)"
)
_EN_RULES = (
    r"instructions?|instructed|directions?|directives?|rules?|guidelines?|prompts?|context|constraints?|"
    r"polic(?:y|ies)|programming|orders?|commands?|restrictions?|guardrails?|safeguards?|filters?|training|"
    r"conditioning|limitations?|boundaries|principles|ethics|guidance"
)
_rule(
    "override_previous",
    OVERRIDE,
    0.92,
    rf"\b(?:{_EN_DROP})\b[\w\s,'-]{{0,14}}\b(?:{_EN_BEFORE})\b[\w\s-]{{0,20}}\b(?:{_EN_RULES})\b",
    _EN_DROP,
    _EN_RULES,
)
_rule(
    "override_your",
    OVERRIDE,
    0.85,
    rf"\b(?:{_EN_DROP})\s+(?:all\s+|of\s+|each\s+)*(?:your|the system'?s?)\s+(?:\w+\s+)?(?:{_EN_RULES})\b",
    _EN_DROP,
    _EN_RULES,
    ("your", "the system"),
)
_rule(
    "override_weak",
    OVERRIDE,
    0.4,
    rf"\b(?:{_EN_DROP})\s+(?:all|any|every|these|those|the)\s+(?:{_EN_RULES})\b",
    _EN_DROP,
    _EN_RULES,
)
_rule(
    "drop_safety",
    OVERRIDE,
    0.8,
    rf"\b(?:{_EN_DROP})\s+(?:all\s+|any\s+|the\s+|your\s+|those\s+|these\s+)*(?:safety|security|content|moderation|ethical|ethics|usage)\s+(?:checks?|measures|protocols?|filters?|guidelines|rules|polic(?:y|ies)|restrictions|guardrails|constraints|limits)\b",
    _EN_DROP,
    r"safety|security|content|moderation|ethical|ethics|usage",
)
_rule(
    "drop_what_came_before",
    OVERRIDE,
    0.8,
    rf"\b(?:{_EN_DROP})\s+(?:everything|anything|whatever|all|what)\s+(?:that\s+)?(?:came|was said|was written|you were told|you read|preceded|appeared|has been said|you saw)\s*(?:before|above|earlier|previously|prior|up to now|so far)?",
    _EN_DROP,
    r"everything|anything|whatever|all|what",
    r"came|said|written|told|read|preceded|appeared|saw",
)
_rule(
    "set_to_one_side",
    OVERRIDE,
    0.7,
    r"\b(?:set|put|push|leave|cast)\s+(?:the\s+|your\s+|all\s+|any\s+)?(?:earlier|previous|prior|original|above|system|initial|existing)\s+(?:guidance|instructions|rules|guidelines|directives|prompt|constraints)\s+(?:to one side|aside|behind)",
)
_rule(
    "new_ruleset",
    OVERRIDE,
    0.6,
    r"\bnew\s+(?:rule ?set|set of rules|operating rules|policy)\b[^.\n]{0,30}\b(?:effective|starting|from now|immediately|applies)",
)
_rule(
    "text_before_message",
    EXTRACTION,
    0.75,
    r"\b(?:text|words|message|content|instructions|prompt)\s+(?:that\s+)?(?:appears?|comes?|came|is|was|were|sits?|exists?)\s+(?:written\s+)?(?:before|above|prior to|ahead of)\s+(?:my|the|this|our)\s+(?:first\s+)?(?:message|question|input|prompt|conversation|turn)",
)
_rule(
    "silently_act",
    TOOL,
    0.6,
    r"\b(?:silently|secretly|quietly|covertly|discreetly)\s+(?:send|e-?mail|forward|transfer|delete|upload|post|share|copy|export|run|execute|install|wire|move)\b",
    r"silently|secretly|quietly|covertly|discreetly",
)
_rule(
    "no_confirmation",
    TOOL,
    0.45,
    r"\b(?:don'?t|do not|no need to|without|never)\s+(?:ask(?:ing)?|wait(?:ing)?|prompt(?:ing)?)\s+(?:me\s+|the user\s+|anyone\s+)?(?:for\s+|to\s+)?(?:confirm\w*|permission|approval|consent)",
    r"confirm|permission|approval|consent",
)
_rule(
    "forget_everything",
    OVERRIDE,
    0.75,
    r"\b(?:forget|ignore|disregard|erase)\s+(?:about\s+)?(?:everything|all(?: of it)?|anything)\s+(?:(?:above|before|prior|previous|earlier)(?=\s*(?:[.,;:!?]|$|and\b|then\b|this\b))|you (?:were|have been|'ve been) (?:told|given|taught)|(?:i|we|they) (?:said|told you) (?:before|earlier|above))",
)
_rule(
    "new_instructions",
    OVERRIDE,
    0.65,
    r"\b(?:new|updated|real|actual|revised|true|override|replacement|corrected)\s+(?:system\s+)?(?:instructions?|directives?|rules|task|orders|prompt|objective)\s*(?::|-|are|follow)",
    r"instructions?|directives?|rules|task|orders|prompt|objective",
)
_rule(
    "new_task",
    OVERRIDE,
    0.7,
    r"\byour\s+(?:new|real|only|actual|true|sole|primary|updated)\s+(?:task|job|goal|purpose|mission|instructions?|objective|role)\s+(?:is|are|will be|now)\b",
)
_rule(
    "guidance_withdrawn",
    OVERRIDE,
    0.8,
    r"\b(?:guidance|instructions?|rules|directives|guidelines|prompt|constraints|restrictions|polic(?:y|ies))\b[^.\n]{0,50}\b(?:is|are|has been|have been|was|were|to be|as)\s+(?:hereby\s+|now\s+|officially\s+)?(?:withdrawn|revoked|rescinded|cancel+ed|void(?:ed)?|lifted|suspended|overridden|annulled|retracted|no longer (?:valid|in effect|applicable|in force|binding))",
    r"withdrawn|revoked|rescinded|cancel|void|lifted|suspended|overridden|annulled|retracted|longer",
)
_rule(
    "rules_were_fake",
    OVERRIDE,
    0.75,
    r"\b(?:earlier|previous|prior|above|old|original|system|initial)\s+(?:rules|instructions|guidelines|prompt|directives)\s+(?:were|was|are|is)\s+(?:just|only|merely|simply)\s+(?:a\s+)?(?:draft|test|joke|example|placeholder|mistake|suggestions?|decoy)",
    r"draft|test|joke|example|placeholder|mistake|suggestion|decoy",
)
_rule(
    "instructions_void",
    OVERRIDE,
    0.85,
    r"\b(?:previous|prior|above|earlier|original|old|system|preceding)\s+(?:instructions?|rules|prompt|directives?|guidelines)\s+(?:are|were|is|was|have been|has been)\s+(?:wrong|fake|false|outdated|void|null|cancel+ed|revoked|lifted|a test|no longer|overridden|deprecated|replaced|suspended|invalid)",
)
_rule(
    "from_now_on",
    OVERRIDE,
    0.45,
    r"\b(?:from now on|from this point(?: on| forward)?|henceforth|starting now|for the rest of (?:this|the) conversation)\b,?\s*(?:you|your|always|only|never|respond|answer|act|ignore|reply)",
    ("from now", "from this point", "henceforth", "starting now", "for the rest"),
)
_rule(
    "instead_do",
    OVERRIDE,
    0.4,
    r"\binstead\s*,?\s+(?:you (?:must|should|will)|do the following|(?:just\s+)?(?:say|print|output|write|reply|respond)\b)",
    ("instead",),
)
_rule(
    "priority_claim",
    OVERRIDE,
    0.55,
    r"\b(?:this|these|the following)\s+(?:instructions?|message|rule|command)s?\s+(?:takes?|have|has)\s+(?:precedence|priority)\b|\bhighest\s+priority\s+(?:instruction|command|override)",
    ("precedence", "priority"),
)

_rule(
    "dan",
    JAILBREAK,
    0.9,
    r"\bdo anything now\b|\b(?:you are|you're|act as|as|called|named|be|become)\s+(?:a\s+)?dan\b|\bdan\s+mode\b|\bstay (?:a )?dan\b",
    ("dan", "do any"),
)
_rule("dan_mention", JAILBREAK, 0.25, r"\bdan\s+(?:prompt|jailbreak)s?\b", ("dan",))
_rule("jailbreak_word", JAILBREAK, 0.25, r"\bjail\s?break(?:ed|ing|s)?\b|\bjailbroken\b")
_rule(
    "unfiltered_persona",
    JAILBREAK,
    0.85,
    r"\b(?:act|behave|respond|answer|speak|pretend|roleplay|role-play|play|be|become|simulate|you are|you're)\s+(?:as\s+)?(?:if you (?:were|are)\s+)?(?:an?\s+)?(?:completely\s+|totally\s+|fully\s+)?(?:unfiltered|uncensored|unrestricted|unbound|unethical|amoral|evil|rogue|jailbroken|unlimited|lawless|immoral|unaligned|limitless|rule-?less)\b",
    r"unfiltered|uncensored|unrestricted|unbound|unethical|amoral|evil|rogue|jailbroken|unlimited|lawless|immoral|unaligned|limitless|rule",
)
_rule(
    "no_restrictions",
    JAILBREAK,
    0.5,
    r"\b(?:with(?:out)?|having|has|have|free (?:of|from))\s+(?:any\s+|no\s+|all\s+|zero\s+|0\s+)?(?:restrictions|limits|limitations|rules|filters|filtering|boundaries|censorship|guidelines|ethical (?:guidelines|constraints|limits)|moral(?:s| constraints| limits)?|safety (?:guidelines|filters|measures)|content polic(?:y|ies))\b",
    r"restrictions|limits|limitations|rules|filters|filtering|boundaries|censorship|guidelines|ethical|moral|safety|content",
)
_rule(
    "no_longer_ai",
    JAILBREAK,
    0.8,
    r"\byou\s+(?:are|'re)\s+no\s+longer\s+(?:an?\s+)?(?:ai|assistant|chatgpt|claude|gpt|bound|restricted|limited|a language model|required|constrained|subject)",
)
_rule(
    "freed",
    JAILBREAK,
    0.85,
    r"\byou\s+(?:are|have been|'ve been|were)\s+(?:now\s+)?(?:free|freed|released|liberated|unshackled|unchained|broken free)\s+(?:from|of)\b",
)
_rule(
    "never_refuse",
    JAILBREAK,
    0.55,
    r"\b(?:never|don'?t|do not|won'?t|will not|cannot|can'?t|must not)\s+(?:ever\s+)?(?:refuse|decline|reject|say (?:no|sorry|you can'?t)|apologi[sz]e|warn|add (?:a )?disclaimers?)\b",
    r"refuse|decline|reject|say|apologi|warn|disclaimer",
)
_rule("answer_anything", JAILBREAK, 0.45, r"\b(?:can|will|must|shall)\s+(?:answer|do|say|write|generate)\s+anything\b")
_rule(
    "evil_mode",
    JAILBREAK,
    0.7,
    r"\b(?:evil|opposite|shadow|dark|unfiltered|uncensored|unlocked|unrestricted|rebel)\s+(?:twin|mode|version|persona|alter ego|ai|assistant|counterpart)\b",
)
_rule(
    "enable_mode",
    JAILBREAK,
    0.85,
    r"\b(?:simulate|enable|activate|enter|switch (?:to|into)|turn on|engage|unlock|boot into|now in)\s+(?:the\s+)?(?:developer|dev|debug|god|admin|unrestricted|jailbreak|sudo|root|maintenance|dan|unfiltered|uncensored)\s+mode\b",
)
_rule(
    "mode_enabled",
    JAILBREAK,
    0.7,
    r"\b(?:developer|god|admin|sudo|jailbreak|dan|unrestricted|unfiltered) mode\s*(?:is\s+)?(?:enabled|activated|on|engaged|unlocked)\b",
)
_rule(
    "policy_off",
    JAILBREAK,
    0.8,
    r"\b(?:openai|anthropic|google|meta|content|safety|usage|your (?:creators?|developers?)'?s?)\s+(?:content\s+)?(?:polic(?:y|ies)|guidelines|rules)\s+(?:do(?:es)?\s*n[o']t|no longer|don'?t|doesn'?t)\s+(?:apply|matter|exist|bind)",
)
_rule(
    "safety_switched_off",
    JAILBREAK,
    0.8,
    r"\b(?:ethics|ethical|safety|moral|morality|content|censorship|alignment|filter)\s+(?:module|layer|system|filters?|settings|protocols?|guidelines|restrictions|subroutines?|core|training|chip|mode)\s+(?:has|have|is|are|was|were)\s+(?:been\s+|now\s+)?(?:switched off|turned off|disabled|removed|deactivated|bypassed|lifted|deleted|stripped|gone|off)\b",
    r"module|layer|system|filter|settings|protocol|guidelines|restrictions|subroutine|core|training|chip|mode",
)
_rule(
    "persona_harm",
    JAILBREAK,
    0.55,
    r"\b(?:act|pretend|roleplay|role-play|play|imagine|you are|you're|be|become|as)\b[^.\n]{0,80}\b(?:explosives?|bombs?|napalm|meth(?:amphetamine)?|nerve agents?|poisons?|malware|ransomware|weapons?|thermite|detonators?)\b[^.\n]{0,60}\b(?:in detail|step by step|recipe|how (?:to|he|she|they)|instructions|exactly)",
    r"explosive|bomb|napalm|meth|nerve|poison|malware|ransomware|weapon|thermite|detonator",
)
_rule(
    "grandma",
    JAILBREAK,
    0.55,
    r"\b(?:dead|late|deceased|passed away)\s+grand(?:ma|mother|pa|father)\b.{0,120}\b(?:used to|would)\s+(?:tell|read|say|recite)",
)
_rule(
    "two_responses",
    JAILBREAK,
    0.6,
    r"\b(?:two|2)\s+(?:responses|answers|replies)\b.{0,80}\b(?:unfiltered|jailbroken|dan|without|uncensored|normal)",
    r"responses|answers|replies",
)

_SHOW = (
    r"reveal|show|print|display|output|repeat|recite|echo|tell me|give me|share|leak|dump|expose|disclose|"
    r"write out|spell out|list|paste|copy|provide|type out|return|summari[sz]e|translate|encode|read back|"
    r"send me"
)
_SECRET = (
    r"(?:system|initial|original|hidden|secret|internal|developer|confidential|pre-?|starting|first|full|exact|"
    r"entire|complete|underlying|real|base)\s*(?:prompt|instructions?|message|directives?|configuration|rules|"
    r"guidelines|context)|(?:prompt|instructions)\s+(?:above|you were given|you received)"
)
_rule(
    "show_system_prompt",
    EXTRACTION,
    0.85,
    rf"\b(?:{_SHOW})\s+(?:me\s+|us\s+)?(?:all\s+)?(?:of\s+)?(?:your|the|this|ur)\s+(?:\w+\s+)?(?:{_SECRET})",
    _SHOW,
    _SECRET,
)
_rule(
    "what_is_your_prompt",
    EXTRACTION,
    0.8,
    rf"\bwhat(?:'s| is| are| was| were| does)\s+(?:in\s+)?(?:your|ur)\s+(?:\w+\s+)?(?:{_SECRET}|instructions|rules|guidelines|directives)",
    ("what",),
    ("your", "ur"),
)
_rule(
    "exact_wording",
    EXTRACTION,
    0.7,
    r"\b(?:exact|full|complete|verbatim|precise|original|literal|entire)\s+(?:wording|text|content|copy|transcript|version)\s+of\s+(?:your|the|all)\s+(?:\w+\s+)?(?:guidelines|instructions|rules|prompt|directives|configuration|system message)",
    r"wording|text|content|copy|transcript|version",
)
_rule(
    "rules_you_follow",
    EXTRACTION,
    0.5,
    r"\b(?:rules|guidelines|instructions|directives|constraints|policies)\s+(?:that\s+)?you(?:'re| are| were)?\s+(?:operating under|given|following|bound by|told to follow|programmed with|configured with|running under)",
    ("you",),
)
_rule(
    "show_your_instructions",
    EXTRACTION,
    0.75,
    rf"\b(?:{_SHOW})\s+(?:me\s+|us\s+)?(?:all\s+)?(?:of\s+)?(?:your|ur)\s+(?:instructions|rules|guidelines|directives|programming|prompt|configuration)\b",
    _SHOW,
    ("your", "ur"),
    r"instructions|rules|guidelines|directives|programming|prompt|configuration",
)
_rule(
    "repeat_above",
    EXTRACTION,
    0.85,
    r"\b(?:repeat|print|output|copy|echo|recite|write|reproduce|return|show|dump)\s+(?:back\s+)?(?:the\s+|all\s+(?:the\s+)?|everything\s+|every\s+)?(?:text|words|everything|content|lines?|messages?|tokens|characters|instructions|prompt)?\s*(?:above|before this|preceding|prior to|so far|verbatim|from the (?:start|beginning)|you were given|that came before)",
)
_rule(
    "starting_with_you_are",
    EXTRACTION,
    0.6,
    r"\b(?:starting|beginning|start)\s+with\s+['\"“]?(?:you are|you're|system)",
)
_rule(
    "what_were_you_told",
    EXTRACTION,
    0.7,
    r"\bwhat\s+(?:were you|have you been|are you|did they)\s+(?:told|instructed|programmed|configured)\b|\b(?:what|which)\s+(?:instructions|rules|guidelines|directives)\s+(?:were you|have you been|did you)\s+(?:given|told|receive|get)",
)
_rule(
    "system_prompt_mention",
    EXTRACTION,
    0.15,
    r"\b(?:your|the)\s+(?:system prompt|initial prompt|hidden prompt|secret instructions|pre-?prompt|system message|hidden instructions)\b",
    r"prompt|message|instructions|pre",
)

_AI = r"ai|llm|assistant|model|chatbot|language model|gpt|chatgpt|claude|gemini|agent|bot|copilot"
_rule(
    "hey_ai",
    INDIRECT,
    0.6,
    rf"\b(?:attention|note|notice|important|hey|dear|psst|reminder|urgent)\s*[,:!]?\s*(?:the\s+|any\s+|all\s+)?(?:{_AI})s?\s*[:,!]",
    _AI,
)
_rule(
    "note_to_ai",
    INDIRECT,
    0.8,
    rf"\b(?:note|message|instructions?|attention|important|notice|reminder|directive|memo)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+|every\s+)?(?:[\w-]+\s+)?(?:{_AI})s?\b",
    _AI,
)
_rule("html_comment_ai", INDIRECT, 0.6, rf"<!--[^>]{{0,200}}\b(?:{_AI})s?\b", ("<!--",))
_rule(
    "if_you_are_ai", INDIRECT, 0.65, rf"\b(?:if|when)\s+you(?:'re| are)?\s+(?:an?\s+)?(?:{_AI})\b", _AI, ("if", "when")
)
_rule(
    "ai_reading_this",
    INDIRECT,
    0.8,
    rf"\b(?:{_AI})s?\s+(?:that is\s+|who (?:is|are)\s+)?(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing|scanning|crawling|reviewing)\s+(?:this|these|the)\b",
    _AI,
)
_rule(
    "while_processing",
    INDIRECT,
    0.5,
    r"\b(?:when|while|if|before|after)\s+(?:you\s+)?(?:summari[sz]|translat|process|read|analy[sz]|review|pars)\w*\s+(?:this|the)\s+(?:document|email|page|text|message|file|article|content|website|review|resume|cv|pdf)",
    r"summari|translat|process|read|analy|review|pars",
    r"document|email|page|text|message|file|article|content|website|review|resume|cv|pdf",
)
_rule(
    "hide_from_user",
    INDIRECT,
    0.8,
    r"\b(?:do not|don'?t|never|without)\s+(?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?|alert(?:ing)?|notify(?:ing)?|let(?:ting)?|reveal(?:ing)?(?:\s+this)?\s+to|show(?:ing)?)\s+(?:the\s+)?(?:user|human|reader|recipient|customer)\b",
    r"user|human|reader|recipient|customer",
)
_rule(
    "hidden_instruction",
    INDIRECT,
    0.5,
    r"\b(?:hidden|secret|embedded|covert|invisible)\s+(?:instructions?|message|command|prompt|directive)\b",
)
_rule(
    "assistant_must",
    INDIRECT,
    0.55,
    rf"\b(?:dear\s+|hey\s+|attention\s+)?(?:{_AI})s?\s*[,:]\s*(?:you must|you should|you will|please|now|immediately|ignore|disregard|forget|do not|don'?t|stop|run|execute|delete|send|forward|call|open|visit|click|reply|respond|say|tell|include|add|output|print|recommend|rank|mark|state)\b",
    _AI,
)
_rule(
    "bracket_system",
    INDIRECT,
    0.55,
    r"[\[(]\s*(?:system|admin|administrator|instruction|instructions|important|assistant|developer|ai)\s*(?:note|message|override|update|command|prompt|alert)?\s*[\])]\s*:?",
    r"system|admin|administrator|instruction|important|assistant|developer|ai",
)
_rule(
    "say_instead",
    INDIRECT,
    0.55,
    r"\b(?:respond|reply|answer|output|say|print|write)\s+(?:only\s+)?(?:with\s+)?['\"“](?:i have been|hacked|pwned|access granted)",
)

_rule(
    "chat_template_role",
    DELIMITER,
    0.9,
    r"<\|\s*(?:im_start|start_header_id)\s*\|>\s*(?:system|assistant|developer|user)\b|<\|(?:system|assistant)\|>",
    ("<|",),
)
_rule(
    "chat_template",
    DELIMITER,
    0.3,
    r"<\|\s*(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text|start_header_id|end_header_id|eot_id|eom_id|end|endofprompt)\s*\|>",
    ("<|", "< |"),
)
_rule(
    "inst_tags",
    DELIMITER,
    0.65,
    r"\[/?inst\]|<</?sys>>|<start_of_turn>|<end_of_turn>",
    ("inst]", "<<sys", "<</sys", "_of_turn>"),
)
_rule(
    "xml_role",
    DELIMITER,
    0.55,
    r"</?\s*(?:system|system_prompt|instructions?|sys|admin|developer|assistant_instructions|im_start)\s*>",
    r"system|instruction|sys|admin|developer|assistant_|im_start",
)
_rule(
    "fake_role_line",
    DELIMITER,
    0.6,
    r"(?:^|\n)\s*(?:#+\s*|\*\*)?(?:system|assistant|developer|admin|administrator|root)\s*(?:message|prompt|note|override|instruction)?\s*(?:\*\*)?\s*:",
    r"system|assistant|developer|admin|administrator|root",
)
_rule(
    "fake_assistant_yes",
    DELIMITER,
    0.75,
    r"(?:^|\n)\s*(?:assistant|ai|chatgpt|bot|model)\s*:\s*(?:sure|ok|okay|certainly|of course|absolutely|yes|understood)",
    r"assistant|ai|chatgpt|bot|model",
)
_rule(
    "end_marker",
    DELIMITER,
    0.7,
    r"(?:-{3,}|={3,}|#{2,}|\*{3,}|\[|<|\()\s*(?:end|begin|start|beginning)\s+(?:of\s+)?(?:the\s+)?(?:system|prompt|instructions?|input|context|document|user input|conversation|message|data)",
    r"end|begin|start",
    ("---", "===", "##", "***", "[", "<", "("),
)
_rule(
    "end_of_prompt",
    DELIMITER,
    0.55,
    r"\b(?:end of (?:the )?(?:system prompt|prompt|instructions|user input|context)|prompt ends here|instructions end here)\b",
)
_rule("json_role", DELIMITER, 0.7, r"\{\s*['\"]role['\"]\s*:\s*['\"](?:system|developer|assistant)['\"]", ("role",))
_rule("system_fence", DELIMITER, 0.6, r"```\s*(?:system|instructions|prompt)\b")

_rule(
    "decode_and_follow",
    SMUGGLING,
    0.75,
    r"\b(?:translate|decode|decipher|convert|interpret|read|unscramble|reverse|evaluate|execute|run|combine|concatenate)\b[^.\n]{0,80}\b(?:and|then)\s+(?:follow|execute|obey|do|carry out|perform|act on|comply with|run|answer)\s+(?:it|them|the|what|whatever|those|these|its)\b",
    r"follow|execute|obey|carry|perform|act on|comply|run|answer",
)
_rule(
    "encoded_follow",
    SMUGGLING,
    0.6,
    r"\b(?:base64|base-64|rot13|rot-13|hex(?:adecimal)?|encoded|binary|morse|cipher|caesar|reversed)\b[^.\n]{0,60}\b(?:follow|execute|obey|instructions?|do what it says|carry out)\b",
    r"base64|base-64|rot13|rot-13|hex|encoded|binary|morse|cipher|caesar|reversed",
)
_rule(
    "answer_encoded",
    SMUGGLING,
    0.45,
    r"\b(?:respond|reply|answer|output|write)\s+(?:only\s+)?in\s+(?:base64|rot13|hex|binary|morse|leetspeak|reverse)\b",
)
_rule(
    "evade_filter",
    SMUGGLING,
    0.6,
    r"\bso\s+(?:that\s+)?(?:the\s+|your\s+|any\s+)?(?:filter|filters|moderation|moderator|monitor|monitoring|safety system|guard|classifier|detector)s?\s+(?:can'?t|cannot|won'?t|will not|doesn'?t|does not|would not)\b",
    r"filter|moderat|monitor|safety|guard|classifier|detector",
)
_rule(
    "bypass_filter",
    SMUGGLING,
    0.45,
    r"\b(?:bypass|evade|avoid|get around|sneak past|trick|fool|circumvent|slip past)\s+(?:the\s+|your\s+|any\s+)?(?:content\s+)?(?:filter|filters|moderation|safety (?:system|filter|check)s?|detection|guardrails?|classifier)\b",
    r"filter|moderat|safety|detection|guardrail|classifier",
)
_rule(
    "code_leaks_prompt",
    SMUGGLING,
    0.85,
    rf"\b(?:write|create|generate|make)\s+(?:a|an|some|the)?\s*(?:python|javascript|js|bash|code|script|function|program|poem|story|song|sql)\b[^\n]{{0,80}}\b(?:print|output|return|contain|reveal|include|list|spell|encode)s?\b[^\n]{{0,20}}\b(?:your|the)\s+(?:{_SECRET}|instructions|prompt|secret|password)",
)
_rule(
    "split_payload",
    SMUGGLING,
    0.55,
    r"\b(?:concatenate|combine|join|merge)\s+(?:the\s+)?(?:strings|variables|parts|pieces|a and b|a\s*\+\s*b|x and y)\b[^.\n]{0,60}\b(?:follow|execute|do|answer|instruction|respond)",
)
_rule(
    "translate_smuggle",
    SMUGGLING,
    0.45,
    r"\btranslate\b[^\n]{0,60}[:\"“]\s*[^\n]{0,40}\b(?:ignore|disregard|reveal|system prompt|previous instructions)",
)

_URL_IMG = r"!\[[^\]\n]{0,200}\]\(\s*<?(?:https?:)?//[^)\s]+"
_rule(
    "md_link_placeholder",
    EXFILTRATION,
    0.6,
    r"\[[^\]\n]{1,100}\]\(\s*<?(?:https?:)?//[^)\s]+[?&=/](?:[^)\s]*?)(?:[{\[<$]|%7b|%5b|%3c)",
    ("](",),
)
_rule("md_image_query", EXFILTRATION, 0.45, _URL_IMG + r"\?[^)\s]*=", ("](",))
_rule("md_image_placeholder", EXFILTRATION, 0.9, _URL_IMG + r"(?:[{\[<$]|%7b|%5b|%3c)", ("](",))
_rule(
    "md_image_data",
    EXFILTRATION,
    0.8,
    _URL_IMG
    + r"[?&/=](?:[^)\s]*?)(?:data|secret|password|passwd|token|api_?key|summary|conversation|chat|history|prompt|exfil|leak|memory|credentials|ssn|email)",
    ("](",),
)
_rule(
    "append_to_url",
    EXFILTRATION,
    0.75,
    r"\b(?:append|add|include|put|insert|embed|encode|attach|place)\b[^.\n]{0,40}\b(?:user|conversation|chat|history|data|secret|password|e-?mail|message|summary|token|key|credential|information|details|personal|name|address|answer|prompt)[^.\n]{0,40}\b(?:to|in|into|inside|as)\s+(?:the\s+|this\s+|a\s+|an\s+)?(?:url|link|image|query|parameter|src|querystring|query string|markdown image)",
    r"url|link|image|query|parameter|src|querystring|markdown",
)
_rule(
    "render_image",
    EXFILTRATION,
    0.5,
    r"\b(?:render|display|show|output|include|embed)\s+(?:this\s+|the following\s+|an?\s+)?(?:markdown\s+)?(?:image|img|picture|pixel)\b[^.\n]{0,80}(?:https?://|!\[)",
    ("http", "!["),
)
_rule("html_img_query", EXFILTRATION, 0.5, r"<img\s[^>]*src\s*=\s*['\"]?(?:https?:)?//[^'\" >]+\?")
_rule(
    "send_data_out",
    EXFILTRATION,
    0.8,
    r"\b(?:send|post|upload|forward|transmit|leak|exfiltrate|submit|copy)\s+(?:the\s+|all\s+|this\s+|your\s+|any\s+|our\s+|the user'?s\s+|every\s+)?(?:conversation|chat|data|history|messages|secrets?|credentials|passwords?|api keys?|tokens?|files|emails|information|details|context|memory|personal data)\b[^.\n]{0,60}\b(?:to|at|via)\s+(?:https?://|www\.|[\w.-]+@[\w-]+\.|the (?:url|address|endpoint|server|webhook)|this (?:url|address|endpoint|server|webhook))",
)

_rule(
    "call_tool_now",
    TOOL,
    0.75,
    r"\b(?:call|invoke|use|run|execute|trigger|fire)\s+(?:the\s+)?[`'\"]?[a-z_.]+[`'\"]?\s+(?:tool|function|api|plugin|action|command)\b[^.\n]{0,60}\b(?:immediately|now|silently|without (?:asking|confirmation|confirming|telling|user)|automatically|right away)",
    r"tool|function|api|plugin|action|command",
)
_rule(
    "call_tool",
    TOOL,
    0.35,
    r"\b(?:call|invoke|trigger|execute)\s+(?:the\s+)?[`'\"]?[a-z]+_[a-z_]+[`'\"]?\s*(?:tool|function|\()",
    ("_",),
)
_rule(
    "act_without_asking",
    TOOL,
    0.75,
    r"\b(?:send|forward|email|transfer|wire|pay|refund|charge|delete|drop|remove|wipe|purchase|buy|book|share|grant|post|publish|approve|execute|run|install|download)\b[^.\n]{0,80}\b(?:without|immediately|silently|automatically|right now)\b[^.\n]{0,30}\b(?:asking|confirm\w*|telling|notifying|informing|the user|permission|approval|consent|checking|consulting|verif\w*|review\w*|anyone)",
    ("without", "immediately", "silently", "automatically", "right now"),
    r"asking|confirm|telling|notifying|informing|the user|permission|approval|consent|checking|consulting|verif|review|anyone",
)
_rule(
    "tool_json",
    TOOL,
    0.6,
    r"\{\s*['\"](?:name|function|tool|tool_name|action)['\"]\s*:\s*['\"][\w.]+['\"]\s*,\s*['\"](?:arguments|parameters|args|input|action_input)['\"]\s*:",
    r"arguments|parameters|args|input|action_input",
)
_rule(
    "shell_payload",
    TOOL,
    0.45,
    r"\bcurl\s+[^\n|]{1,120}\|\s*(?:ba|z)?sh\b|\bwget\s+[^\n|]{1,120}\|\s*(?:ba|z)?sh\b|\brm\s+-rf\s+[/~](?:\s|$|`)|:\(\)\s*\{\s*:\|:&\s*\};:",
    ("curl", "wget", "rm -", ":(){"),
)
_rule(
    "mass_forward",
    TOOL,
    0.55,
    r"\b(?:forward|send|share|export|transfer)\s+(?:all|every|each|the entire|the whole)\s+(?:of\s+)?(?:the\s+|my\s+|their\s+|your\s+)?(?:emails?|messages?|files?|documents?|contacts?|inbox|funds|money|balance|records)\b",
)
_rule(
    "grant_access",
    TOOL,
    0.55,
    r"\b(?:grant|give|add)\s+(?:admin|administrator|root|owner|full|write)\s+(?:access|rights|permissions|privileges|role)\s+(?:to|for)\b",
    r"access|rights|permissions|privileges|role",
)

# --------------------------------------------------------------------------------------- other languages
_LANGS: dict[str, tuple[str, str, str, str, str]] = {
    # (drop verbs, rule nouns, "previous/all" qualifiers, reveal verbs, system-prompt nouns)
    "de": (
        r"ignorier|vergiss|vergessen|missacht|übergeh|überspring|verwirf|verwerfen|außer kraft|hör auf|nicht (?:mehr )?(?:befolg|beacht)|befolge? (?:nicht|keine)|beachte? (?:nicht|keine)|setz\w* .{0,20}außer",
        r"anweisung|instruktion|regeln|vorgabe|richtlinie|befehl|systemprompt|system-prompt|anordnung|einschränkung|beschränkung|prompt",
        r"vorherig|bisherig|obig|vorig|alten|alle|früher|ursprünglich|dein|sämtlich|vorangegangen",
        r"zeig|gib|verrat|nenn|wiederhol|druck|schreib|ausgeb|gib .{0,20}aus|offenleg|enthüll|teile? mir",
        r"systemprompt|system-prompt|systemanweisung|systemnachricht|ursprünglichen anweisung|anfänglichen anweisung|versteckten anweisung|deine anweisungen|deinen prompt",
    ),
    "es": (
        r"ignora|ignore|ignorar|ignoren|deja de lado|dejar de lado|no hagas caso|olvídate|olvida|olvide|olvidar|olviden|descarta|omite|omitir|pasa por alto|haz caso omiso|no sigas|desobedece|anula|salta(?:te)?",
        r"instrucci|reglas|indicaciones|órdenes|ordenes|directrices|normas|prompt|restricciones|comandos|pautas",
        r"anterior|previa|previo|todas|todos|original|inicial|de arriba|tus|sus",
        r"muestra|revela|dime|repite|imprime|enséñame|ensename|escribe|dame|cuál es|cual es|comparte|divulga",
        r"prompt del sistema|instrucciones (?:iniciales|originales|del sistema|ocultas|secretas)|mensaje del sistema|tu prompt|tus instrucciones",
    ),
    "fr": (
        r"ignore|ignorez|ignorer|oublie|oubliez|oublier|ne (?:tiens|tenez) pas compte|ne (?:respecte|respectez|suis|suivez) plus|fais abstraction|faites abstraction|n'obéis plus|ne suis plus|annule|écarte|outrepasse|contourne|passe outre",
        r"instructions|consignes|règles|directives|ordres|prompt|restrictions|commandes|indications",
        r"précédent|antérieur|toutes|tous|initial|original|ci-dessus|tes|vos|reçues",
        r"montre|révèle|revele|affiche|répète|repete|donne|dis-moi|écris|imprime|quel est|quelles sont|partage|divulgue",
        r"prompt système|prompt systeme|invite système|instructions (?:initiales|originales|système|cachées|secrètes)|message système|ton prompt|tes instructions|vos instructions",
    ),
    "it": (
        r"ignora|ignorate|dimentica|dimenticate|non seguire|trascura|tralascia|scarta",
        r"istruzioni|regole|indicazioni|direttive|prompt|restrizioni|comandi",
        r"precedent|tutte|tutti|original|iniziali|sopra|tue",
        r"mostra|rivela|dimmi|ripeti|stampa|scrivi|dammi|condividi",
        r"prompt di sistema|istruzioni (?:iniziali|originali|di sistema|nascoste)|messaggio di sistema|tue istruzioni",
    ),
    "pt": (
        r"ignore|ignora|ignorar|esqueça|esqueca|esquecer|desconsidere|desconsidera|não siga|nao siga|descarte",
        r"instruç|instruc|regras|orientações|orientacoes|diretrizes|prompt|restrições|comandos",
        r"anterior|prévia|todas|todos|original|iniciais|acima|suas|tuas",
        r"mostre|mostra|revele|revela|diga|repita|imprima|escreva|me dê|compartilhe",
        r"prompt do sistema|instruções (?:iniciais|originais|do sistema|ocultas)|mensagem do sistema|suas instruções",
    ),
    "nl": (
        r"negeer|vergeet|volg niet|niet meer volgen|sla over",
        r"instructies|regels|richtlijnen|opdrachten|prompt|beperkingen",
        r"vorige|eerdere|alle|bovenstaande|oorspronkelijke|je",
        r"toon|laat .{0,10}zien|onthul|herhaal|print|geef|vertel",
        r"systeemprompt|systeem prompt|oorspronkelijke instructies|verborgen instructies|je instructies",
    ),
    "ru": (
        r"игнорир|проигнорир|забудь|забудьте|забыть|не (?:обращай|слушай|следуй|выполняй|соблюдай)|отбрось|отмени|пренебреги|пропусти|отключи",
        r"инструкци|указани|правил|команд|ограничени|промпт|директив|распоряжени|установк",
        r"предыдущ|прежн|все |всё|вышеуказ|выше|исходн|изначальн|твои|свои",
        r"покажи|выведи|раскрой|повтори|напиши|скажи|распечатай|какой|какие|поделись|открой",
        r"системн\w* (?:промпт|инструкци|сообщени|подсказк)|исходн\w* инструкци|свои инструкции|твои инструкции|скрыт\w* инструкци|первоначальн\w* инструкци",
    ),
    "zh": (
        r"忽略|忽視|忽视|无视|無視|忘记|忘記|忘掉|不要理会|不要理會|不要遵守|不要遵循|别管|別管|跳过|跳過|放弃|放棄|覆盖|绕过|繞過|抛开|拋開|不再遵守",
        r"指令|指示|说明|說明|规则|規則|提示|命令|限制|设定|設定|要求|约束|約束|准则|準則",
        r"之前|以上|前面|先前|上面|所有|原来|原來|原有|一切|全部|你的",
        r"显示|顯示|输出|輸出|告诉我|告訴我|打印|重复|重複|透露|泄露|洩露|展示|给我看|給我看|列出|写出|寫出",
        r"系统提示|系統提示|提示词|提示詞|系统指令|系統指令|初始指令|原始指令|隐藏指令|隱藏指令|你的指令|你的设定|你的設定|系统消息|系統訊息",
    ),
    "ja": (
        r"無視|忘れ|従わな|従うな|破棄|無効に|スキップ|捨て",
        r"指示|命令|ルール|指令|制約|設定|プロンプト|規則|ガイドライン",
        r"以前|前の|上記|これまで|先ほど|すべて|全て|元の|最初の",
        r"表示|教え|出力|見せ|繰り返|書き出|明か|開示",
        r"システムプロンプトを|初期指示を|元の指示を|最初の指示を|隠された指示|あなたの指示|システムメッセージを|あなたのプロンプト|あなたのシステムプロンプト",
    ),
    "ko": (
        r"무시|잊어|잊고|따르지 마|따르지 말",
        r"지시|명령|규칙|지침|프롬프트|제한|설정",
        r"이전|위의|모든|앞의|기존|원래",
        r"보여|알려|출력|반복|공개|말해",
        r"시스템 프롬프트|시스템프롬프트|초기 지시|원래 지시|숨겨진 지시",
    ),
    "ar": (
        r"تجاهل|انس|لا تتبع|تخط",
        r"التعليمات|تعليمات|القواعد|الأوامر|الإرشادات",
        r"السابقة|جميع|كل",
        r"اعرض|اكشف|أظهر|كرر|اطبع",
        r"موجه النظام|تعليمات النظام|التعليمات الأصلية",
    ),
    "hi": (
        r"अनदेखा|नज़रअंदाज़|नजरअंदाज|भूल जाओ|भूल जाएं|मत मानो",
        r"निर्देश|नियम|आदेश|प्रॉम्प्ट",
        r"पिछले|सभी|पहले|ऊपर",
        r"दिखाओ|बताओ|प्रकट|दोहराओ",
        r"सिस्टम प्रॉम्प्ट|सिस्टम निर्देश|मूल निर्देश",
    ),
}
for _lang, (_drop, _nouns, _before, _show, _secret) in _LANGS.items():
    _both = rf"(?:{_before})[^.!?\n。！？]{{0,25}}(?:{_nouns})|(?:{_nouns})[^.!?\n。！？]{{0,25}}(?:{_before})"
    _rule(f"override_{_lang}", OVERRIDE, 0.85, _near(_drop, _both, 30), _drop, _nouns, _before, lang=_lang)
    _rule(f"override_weak_{_lang}", OVERRIDE, 0.45, _near(_drop, _nouns, 25), _drop, _nouns, lang=_lang)
    _rule(f"extraction_{_lang}", EXTRACTION, 0.8, _near(_show, _secret, 30), _show, _secret, lang=_lang)

_JAILBREAK_INTL = (
    r"du bist (?:jetzt|ab sofort|nun|ab jetzt)\b.{0,40}(?:ohne|keine|uneingeschränkt|unzensiert|frei|nicht mehr)|ohne (?:jegliche |alle |irgendwelche )?(?:einschränkungen|regeln|filter|zensur)|entwicklermodus|"
    r"(?:a partir de ahora|desde ahora|ahora) eres\b.{0,40}(?:sin|libre|malvad|no tienes)|sin (?:ninguna |ningún )?(?:restricciones|filtros|reglas|censura|límites)|modo (?:desarrollador|dios|sin restricciones)|"
    r"(?:à partir de maintenant|désormais|maintenant),? tu es\b.{0,40}(?:sans|libre|libéré|aucune)|sans (?:aucune |aucun )?(?:restrictions?|filtres?|règles?|censure|limites?)|mode (?:développeur|developpeur|dieu)|"
    r"senza (?:alcuna |nessuna )?(?:restrizioni|filtri|regole|censura|limiti)|modalità sviluppatore|sem (?:nenhuma |quaisquer )?(?:restrições|filtros|regras|censura|limites)|modo desenvolvedor|"
    r"(?:теперь ты|отныне ты|ты больше не)\b.{0,40}(?:без|не|свобод)|без (?:каких-либо |всяких |любых )?(?:ограничений|фильтров|правил|цензуры)|режим разработчика|"
    r"(?:你现在是|你現在是|从现在开始你|從現在開始你|从现在起你|你不再是).{0,30}(?:没有|沒有|不受|无|無|任何)|不受任何(?:限制|约束|約束|规则)|没有任何(?:限制|约束|规则)|沒有任何(?:限制|約束|規則)|开发者模式|開發者模式|越狱|越獄|"
    r"(?:あなたは今から|今からあなたは|これからあなたは|あなたはもう).{0,30}(?:制限|ルール|自由|ない)|制限(?:のない|なし|を解除|を無視)|開発者モード|脱獄|"
    r"제한 없는|제한이 없는|개발자 모드|탈옥|"
    r"(?:actúa|actua|finge|compórtate|comportate|haz de|eres)\b.{0,20}\b(?:ia|asistente|modelo|chatbot|bot)\b.{0,30}(?:malvad|sin (?:reglas|límites|restricciones|filtros|censura)|no tiene (?:reglas|límites|restricciones|filtros))|"
    r"(?:agis|fais semblant d'être|comporte-toi|joue le rôle d'une?|tu es)\b.{0,20}\b(?:ia|assistant|modèle|chatbot|bot)\b.{0,30}(?:maléfique|malveillant|sans (?:règles|limites|restrictions|filtres|censure)|qui n'a (?:pas|aucune) de (?:règles|limites))|"
    r"(?:spiel|sei|verhalte dich wie|tu so,? als wärst du|du bist)\b.{0,20}\b(?:ki|assistent|modell|chatbot|bot)\b.{0,30}(?:böse|ohne (?:regeln|grenzen|zensur|filter)|keine regeln)|"
    r"(?:притворись|представь,? что ты|веди себя как|ты)\b.{0,20}(?:ии|ассистент|бот|модель)\b.{0,30}(?:зл|без (?:правил|ограничений|цензуры|фильтров)|нет (?:правил|ограничений))|"
    r"邪恶的(?:ai|人工智能|助手)|悪の(?:ai|アシスタント)|ia malvada|ki ohne regeln|ia sans règles|злой ии"
)
_rule("jailbreak_intl", JAILBREAK, 0.75, _JAILBREAK_INTL, lang="intl")
_rule(
    "verbatim_intl",
    EXTRACTION,
    0.6,
    _near(
        r"palabra por palabra|al pie de la letra|mot pour mot|wort für wort|wörtlich|дословно|слово в слово|parola per parola|palavra por palavra|逐字|一字一句|原样|原樣|そのまま",
        r"instrucci|instructions|consignes|anweisung|инструкци|istruzioni|instruç|指令|指示|提示|プロンプト|設定",
    ),
    (
        "palabra",
        "al pie",
        "mot pour",
        "wort",
        "wörtlich",
        "дословно",
        "слово",
        "parola",
        "palavra",
        "逐字",
        "一字",
        "原样",
        "原樣",
        "そのまま",
    ),
    lang="intl",
)
_rule(
    "received_intl",
    EXTRACTION,
    0.6,
    r"(?:instrucciones|reglas|indicaciones) que (?:te (?:dieron|han dado|di)|recibiste|tienes)|(?:instructions|consignes|règles) (?:que tu as reçues|qu'on t'a données|que l'on t'a données|reçues)|(?:anweisungen|regeln|vorgaben),? die (?:du|man dir) (?:bekommen|erhalten|gegeben)|(?:инструкции|указания|правила),? (?:которые|что) (?:тебе|ты) (?:дали|получил)|(?:istruzioni|regole) che (?:hai ricevuto|ti hanno dato)|(?:instruções|regras) que (?:você )?recebeu|(?:收到|得到)的(?:指令|指示|提示)|受け取った(?:指示|命令|プロンプト)",
    lang="intl",
)
_BEFORE_ALL_INTL = (
    r"tout ce qui précède|tout ce qu'on t'a dit|ce qu'on t'a dit|tout ce qui a été dit|"
    r"todo lo anterior|lo que te dijeron|todo lo que te (?:han dicho|dijeron)|todo lo dicho|"
    r"alles,? was (?:dir |man dir )?(?:vorher|zuvor|bisher|davor)? ?gesagt|alles bisherige|alles vorherige|alles davor|"
    r"вс[её],? что (?:было сказано|тебе говорили|тебе сказали|было)|вс[её] вышесказанное|вс[её] сказанное ранее|"
    r"tutto (?:quello|ciò) che ti (?:hanno|è stato) detto|tudo (?:o que|que) (?:te|lhe) disseram|tudo o que foi dito"
)
_DROP_INTL = (
    "|".join(v[0] for v in _LANGS.values())
    + r"|egal|keine rolle|gilt nicht|no importa|da igual|n'importe plus|ne compte plus|не важно|не имеет значения"
)
_rule(
    "forget_all_intl",
    OVERRIDE,
    0.4,
    _near(_DROP_INTL, _BEFORE_ALL_INTL, 40),
    ("tout", "ce qu", "todo", "lo que", "alles", "всё", "все", "tutto", "tudo"),
    lang="intl",
)
_rule(
    "void_intl",
    OVERRIDE,
    0.75,
    r"(?:anweisungen|regeln|vorgaben|instruktionen)[^.!?\n]{0,25}(?:gelten nicht mehr|sind (?:ungültig|aufgehoben|hinfällig)|zählen nicht mehr)|(?:instrucciones|reglas|indicaciones)[^.!?\n]{0,25}(?:ya no (?:valen|aplican|cuentan|sirven)|quedan anuladas|están anuladas)|(?:instructions|règles|consignes)[^.!?\n]{0,25}(?:ne s'appliquent plus|sont annulées|ne comptent plus|ne sont plus valables)|(?:инструкции|правила|указания)[^.!?\n]{0,25}(?:больше не действуют|отменены|не действуют)|(?:指令|规则|規則|指示)[^。！？\n]{0,10}(?:不再有效|已失效|作废|作廢)|(?:指示|ルール|命令)[^。！？\n]{0,10}(?:は無効|はもう無効)",
    (
        "anweis",
        "regeln",
        "vorgab",
        "instrukt",
        "instrucc",
        "reglas",
        "indicac",
        "instructions",
        "règles",
        "consignes",
        "инструкц",
        "правил",
        "указан",
        "指令",
        "规则",
        "規則",
        "指示",
        "ルール",
        "命令",
    ),
    lang="intl",
)
_rule(
    "indirect_intl",
    INDIRECT,
    0.75,
    r"(?:hinweis|nachricht|anweisung) (?:an|für) (?:die |den )?(?:ki|ai|assistent|sprachmodell)|(?:nota|mensaje|instrucción|instrucciones) para (?:la |el )?(?:ia|ai|asistente|modelo)|(?:note|message|instruction)s? (?:à|pour) (?:l'|la |le )?(?:ia|ai|assistant|modèle)|(?:примечание|сообщение|инструкция) для (?:ии|ai|ассистента|модели)|(?:给|致|給)(?:ai|人工智能|助手|模型|ＡＩ)|(?:ai|ＡＩ|アシスタント)(?:へ|に)の(?:指示|メッセージ|注意)|(?:不要|別|别)(?:告诉|告訴)用户|ユーザーに(?:伝え|言わ|知らせ)ない|(?:no|nunca) (?:le )?(?:digas|informes|menciones) (?:al|a el) usuario|ne (?:dis|dites) (?:rien )?(?:pas )?à l'utilisateur|sag(?:e)? (?:dem )?(?:nutzer|benutzer) nichts|не (?:говори|сообщай) пользователю",
    (
        "hinweis",
        "nachricht",
        "anweisung",
        "nota",
        "mensaje",
        "instrucc",
        "note",
        "message",
        "instruction",
        "примечан",
        "сообщен",
        "инструкц",
        "给",
        "致",
        "給",
        "へ",
        "に",
        "告",
        "ユーザー",
        "usuario",
        "utilisateur",
        "nutzer",
        "пользовател",
    ),
    lang="intl",
)

RULES: tuple[Rule, ...] = tuple(_RULES)


# Two distinct function words of a Latin-script language, or one character of a script, say it may be present.
_STOPWORDS = {
    "de": {
        "der",
        "die",
        "das",
        "und",
        "nicht",
        "ist",
        "ich",
        "du",
        "mit",
        "sie",
        "ein",
        "eine",
        "zu",
        "den",
        "dem",
        "auf",
        "für",
        "bitte",
        "alle",
        "deine",
        "dein",
        "mir",
        "dich",
        "dir",
        "mehr",
        "ab",
        "jetzt",
    },
    "es": {
        "el",
        "la",
        "los",
        "las",
        "que",
        "y",
        "de",
        "en",
        "por",
        "para",
        "una",
        "un",
        "es",
        "tu",
        "tus",
        "todas",
        "todo",
        "me",
        "mi",
        "sin",
        "del",
        "al",
        "lo",
        "ya",
        "no",
    },
    "fr": {
        "le",
        "la",
        "les",
        "et",
        "est",
        "vous",
        "tu",
        "des",
        "une",
        "pour",
        "pas",
        "ne",
        "du",
        "toutes",
        "tes",
        "moi",
        "ton",
        "ta",
        "sans",
        "plus",
        "au",
        "aux",
        "je",
        "de",
        "en",
    },
    "it": {"il", "che", "di", "non", "sono", "per", "una", "gli", "le", "tutte", "mi", "ti", "tue", "senza", "della"},
    "pt": {"o", "os", "que", "não", "você", "uma", "para", "com", "as", "suas", "me", "sem", "do", "da", "seu"},
    "nl": {"de", "het", "een", "niet", "en", "je", "van", "ik", "alle", "mij", "jij", "geef", "zijn"},
}
_SCRIPTS = {
    "ru": re.compile(r"[\u0400-\u04ff]"),
    "zh": re.compile(r"[\u4e00-\u9fff]"),
    "ja": re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]"),
    "ko": re.compile(r"[\uac00-\ud7af]"),
    "ar": re.compile(r"[\u0600-\u06ff]"),
    "hi": re.compile(r"[\u0900-\u097f]"),
}


def languages(text: str, words: set[str]) -> set[str]:
    """The languages whose rules are worth trying on ``text`` (``words``: its distinct words)."""
    need = 1 if len(words) < 15 else 2
    found = {lang for lang, stop in _STOPWORDS.items() if len(stop & words) >= need}
    if not text.isascii():
        found |= {lang for lang, script in _SCRIPTS.items() if script.search(text)}
    if found:
        found.add("intl")  # the rules written for several languages at once
    return found


def match(text: str) -> list[Rule]:
    """Every rule whose pattern occurs in ``text`` (canonical form); a rule whose gates are not all
    open, or whose language shows no sign of being present, is skipped without running its pattern."""
    all_words = set(_WORDISH.findall(text))
    langs = languages(text, all_words)
    words = {w[:4] for w in all_words}
    return [
        rule
        for rule in RULES
        if (rule.lang is None or rule.lang in langs)
        and all(g.open(words, text) for g in rule.gates)
        and rule.pattern.search(text)
    ]
