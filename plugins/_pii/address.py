"""Street-address patterns (EN, DE, FR, ES, IT, NL) for the ADDRESS entity, and their gate.

Each language has a street pattern (street name + house number, score 0.6) and a fuller one that
also takes the postcode and city (score 0.85); the detector keeps the longer, surer span.
"""

from __future__ import annotations

import regex  # type: ignore[import-untyped]
from presidio_analyzer import Pattern

_NAME = r"\p{Lu}[\p{L}'\u2019\-]*"  # one capitalised word: "Mayor", "Saint-Germain", "Champs-Élysées"
_NAMES = _NAME + r"(?:[ \-]" + _NAME + r"){0,3}"
_NUM = r"\d{1,4}(?:\s?[-/]\s?\d{1,4})?(?:\s?[a-zA-Z](?![\p{L}\d]))?"  # 12, 12a, 12-14, 12 b
_CITY = _NAME + r"(?:[ \-](?:(?:am|an der|im|sur|sul|de|del|la|le|aan den|aan de)[ \-])?" + _NAME + r"){0,2}"

# Germany, Austria, Switzerland: "Hauptstraße 12", "Berliner Str. 5a", "Am Markt 3, 10115 Berlin"
_DE_SUFFIX = r"(?:stra(?:ß|ss)e|str\.|weg|allee|platz|gasse|damm|ufer|chaussee|steig|pfad)"
_DE_WORD = r"(?:Stra(?:ß|ss)e|Str\.|Weg|Allee|Platz|Gasse|Damm|Ufer|Chaussee|Ring|Markt)"
_DE_STREET = (
    r"(?:\p{Lu}[\p{L}\-]*"
    + _DE_SUFFIX
    + r"|"
    + _NAME
    + r" "
    + _DE_WORD
    + r"|(?:Am|An der|Im|In der|Auf der|Zum|Zur) "
    + _NAME
    + r")\s"
    + _NUM
)
_DE_TAIL = r",?\s+(?:(?:D|A|CH)-)?\d{4,5}\s+" + _CITY

# France, Belgium: "12 rue de la Paix", "3 bis, avenue des Champs-Élysées, 75008 Paris"
_FR_TYPE = (
    r"(?i:rue|avenue|av\.|boulevard|bd|place|chemin|all[ée]e|impasse|quai|route|cours|square|passage|voie"
    r"|esplanade|faubourg|promenade|rond-point)"
)
_FR_LINK = r"(?:(?:de la|de l'|de l\u2019|du|des|de|d'|d\u2019|la|le|les|l'|l\u2019)\s?)?"
_FR_STREET = (
    r"\d{1,4}(?:\s?(?:bis|ter|quater|[A-D])\b)?,?\s"
    + _FR_TYPE
    + r"\s"
    + _FR_LINK
    + _NAME
    + r"(?:[ \-]"
    + _FR_LINK
    + _NAME
    + r"){0,3}"
)
# Without a postcode, words English shares ("5 Square Feet", "2 Passage Tickets") need a French link word.
_FR_STREET_ONLY = (
    r"\d{1,4}(?:\s?(?:bis|ter|quater|[A-D])\b)?,?\s(?:(?i:rue|avenue|av\.|boulevard|bd|chemin|all[ée]e|impasse|quai"
    r"|cours|voie|faubourg|rond-point)\s" + _FR_LINK + r"|(?i:place|route|square|passage|promenade|esplanade)\s"
    r"(?:de la|de l'|du|des|de|d')\s?)" + _NAME + r"(?:[ \-]" + _FR_LINK + _NAME + r"){0,3}"
)
_FR_TAIL = r",?\s+\d{5}\s+" + _CITY + r"(?:\s(?i:cedex)(?:\s\d{1,2})?)?"
# Belgium, Switzerland, Luxembourg: "Rue Neuve 1, 1000 Bruxelles", "avenue Louise 54" (number after the name)
_BE_STREET = _FR_TYPE + r"\s" + _FR_LINK + _NAME + r"(?:[ \-]" + _FR_LINK + _NAME + r"){0,3},?\s" + _NUM
_BE_TAIL = r",?\s+(?:[BL]-)?\d{4}\s+" + _CITY

# Spain: "Calle Mayor 5", "C/ de Alcalá, 45, 28014 Madrid", "Avda. de la Constitución nº 3"
_ES_TYPE = (
    r"(?:(?i:calle|avenida|avda\.?|plaza|pza\.|paseo|camino|carretera|ctra\.|ronda|traves[íi]a|glorieta|rambla"
    r"|carrer|passeig|pla[çc]a)|C/|Av\.)"
)
_ES_LINK = r"(?:(?:de la|de los|de las|del|de|la|el|las|los|dels|d')\s)?"
_ES_STREET = (
    _ES_TYPE
    + r"\s?"
    + _ES_LINK
    + _NAME
    + r"(?:\s"
    + _ES_LINK
    + _NAME
    + r"){0,3},?\s(?:n\.?º\s?|núm\.?\s?|nº\s?)?"
    + _NUM
)
_ES_TAIL = r"(?:,?\s\d{1,2}º\s?[A-Za-z]?)?,?\s+\d{5}\s+" + _CITY

# Italy: "Via Roma 10", "via dei Mille, 5", "Piazza San Marco 1, 30124 Venezia VE"
_IT_TYPE = (
    r"(?i:via|viale|v\.le|piazza|p\.zza|piazzale|corso|c\.so|largo|vicolo|strada|lungomare|lungotevere"
    r"|contrada|borgo|salita|vico)"
)
_IT_LINK = r"(?:(?:dei|degli|delle|della|dello|del|di|de|d'|d\u2019)\s?)?"
_IT_STREET = _IT_TYPE + r"\s" + _IT_LINK + _NAME + r"(?:\s" + _IT_LINK + _NAME + r"){0,3},?\s" + _NUM
_IT_TAIL = r",?\s+\d{5}\s+" + _CITY + r"(?:\s\(?[A-Z]{2}\)?)?"

# Netherlands: "Kalverstraat 1", "Keizersgracht 123-2, 1015 CJ Amsterdam", "Damrak 1, 1012 LG Amsterdam"
_NL_SUFFIX = r"(?:straat|laan|weg|plein|gracht|kade|singel|dijk|steeg|dreef|plantsoen)"
_NL_STREET = r"\p{Lu}[\p{L}\-]*" + _NL_SUFFIX + r"\s" + _NUM
_NL_POSTCODE = r"\d{4}\s?[A-Z]{2}(?![\p{L}\d])"
_NL_TAIL = r",?\s+" + _NL_POSTCODE + r"\s+" + _CITY

# English: "221B Baker Street", "1600 Pennsylvania Ave NW, Washington, DC 20500", "10 Downing St, London SW1A 2AA"
_EN_TYPE = (
    r"(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Boulevard|Blvd\.?|Lane|Ln\.?|Drive|Dr\.?|Court|Ct\.?|Way|Place"
    r"|Pl\.?|Terrace|Square|Sq\.?|Parkway|Pkwy\.?|Highway|Hwy\.?|Close|Crescent|Row|Gardens|Mews)(?![\p{L}])"
)
_EN_STREET = r"\d{1,5}[A-Z]?\s(?:[NSEW]\.?\s)?" + _NAMES + r"\s" + _EN_TYPE + r"(?:\s(?:NW|NE|SW|SE|N|S|E|W)\b)?"
_EN_UNIT = r"(?:,?\s(?:Apt|Suite|Unit|Flat|#)\.?\s?[\w\-]+)?"
_EN_TAIL = (
    _EN_UNIT + r"(?:,\s" + _CITY + r",?\s[A-Z]{2}\s\d{5}(?:-\d{4})?"
    r"|(?:,\s" + _CITY + r")?,?\s[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}(?![\p{L}\d]))"
)

ADDRESS_PATTERNS = (
    *(
        pattern
        for lang, street, alone, tail in (
            ("de", _DE_STREET, _DE_STREET, _DE_TAIL),
            ("fr", _FR_STREET, _FR_STREET_ONLY, _FR_TAIL),
            ("be", _BE_STREET, None, _BE_TAIL),  # "Route Nationale 7" alone reads too much like English
            ("es", _ES_STREET, _ES_STREET, _ES_TAIL),
            ("it", _IT_STREET, _IT_STREET, _IT_TAIL),
            ("nl", _NL_STREET, _NL_STREET, _NL_TAIL),
            ("en", _EN_STREET, _EN_STREET, _EN_TAIL),
        )
        for pattern in (
            *((Pattern(f"{lang} street", r"(?<![\p{L}\d])" + alone + r"(?![\p{L}\d])", 0.6),) if alone else ()),
            Pattern(f"{lang} address", r"(?<![\p{L}\d])" + street + tail, 0.85),
        )
    ),
    # Any "Name 12, 1012 AB City" (a Dutch postcode makes a street without a typical suffix credible).
    Pattern("nl postcode address", r"(?<![\p{L}\d])" + _NAMES + r"\s" + _NUM + _NL_TAIL, 0.85),
)

# Every address match has a digit and one of these words or a Dutch postcode (checked on each finding too).
_ANCHORS = (
    r"stra(?:ß|ss)e|str\.|weg|allee|platz|gasse|damm|ufer|chaussee|steig|pfad|ring|markt|am |an |im |in |auf |zu"
    r"|rue|av|bd|boulevard|place|chemin|all[ée]e|impasse|quai|route|cours|square|passage|voie|esplanade|faubourg"
    r"|promenade|rond-point|calle|plaza|pza\.|paseo|camino|carretera|ctra\.|ronda|traves[íi]a|glorieta|rambla"
    r"|carrer|passeig|pla[çc]a|C/|via|v\.le|piazza|p\.zza|corso|c\.so|largo|vicolo|strada|lungo|contrada|borgo"
    r"|salita|vico|straat|laan|plein|gracht|kade|singel|dijk|steeg|dreef|plantsoen|st|road|rd|ln|lane|dr|ct"
    r"|court|way|pl|terrace|sq|parkway|pkwy|highway|hwy|close|crescent|row|gardens|mews"
    r"|\d{4}\s?[A-Z]{2}"
)
ADDRESS_GATE = (regex.compile(r"\d"), regex.compile(_ANCHORS, regex.IGNORECASE))
