"""The cache's vetoes against semantic false hits, case by case and on the shipped labelled pair sets."""

from __future__ import annotations

import pytest

from benchmarks.cache_bench import DATA, quality
from plugins._cache.guards import features, veto
from plugins._cache.index import Embedder


@pytest.mark.parametrize(
    ("new", "cached", "reason"),
    [
        ("How do I disable 2FA?", "How do I enable 2FA?", "polarity"),
        ("How do I turn off dark mode?", "How do I turn on dark mode?", "polarity"),
        ("Which foods don't contain gluten?", "Which foods contain gluten?", "negation"),
        ("Bread recipe without yeast", "Bread recipe with yeast", "negation"),
        ("Give me 5 tips for an interview", "Give me 3 tips for an interview", "number"),
        ("Give me three tips for an interview", "Give me 3 tips for an interview", None),
        ("What is the capital of Spain?", "What is the capital of France?", "entity"),
        ("What does parse_config do?", "What does load_config do?", "entity"),
        ("Convert 5 miles to kilometers", "Convert 5 kilometers to miles", "direction"),
        ("How can I switch off dark mode?", "How do I disable dark mode?", None),
        ("What's the capital of France?", "Which city is the capital of France?", None),
        ("How do I unzip a folder?", "How do I zip a folder?", "polarity"),
        ("What does --dry-run do in git push?", "What does --force do in git push?", "entity"),
        ("Fastest route avoiding tolls", "Fastest route using tolls", "negation"),
        ("Wie kann ich 2FA deaktivieren?", "Wie kann ich 2FA aktivieren?", "polarity"),
        ("¿Cómo hago pan sin levadura?", "¿Cómo hago pan con levadura?", "negation"),
        # prefixes of other languages, and prefixes swapped for their opposites
        ("¿Cómo desactivo las notificaciones?", "¿Cómo activo las notificaciones?", "polarity"),
        ("Como faço para desligar o Bluetooth?", "Como faço para ligar o Bluetooth?", "polarity"),
        ("How do I format an external drive?", "How do I format an internal drive?", "polarity"),
        ("Как отключить уведомления?", "Как включить уведомления?", "polarity"),
        ("Как закрыть файл?", "Как открыть файл?", "polarity"),
        # unspaced scripts: opposites and negators found as substrings, the longer term first
        ("如何关闭蓝牙？", "如何打开蓝牙？", "polarity"),  # noqa: RUF001 (Chinese question marks)
        ("通知をオフにする方法", "通知をオンにする方法", "polarity"),
        ("ファイルを非表示にする方法", "ファイルを表示する方法", "polarity"),
        ("如何不用密码登录？", "如何用密码登录？", "negation"),  # noqa: RUF001 (Chinese question marks)
        ("如何打开蓝牙？", "怎么打开蓝牙？", None),  # noqa: RUF001 (Chinese question marks)
        # phrasal verbs and separable particles
        ("How do I zoom out on a Mac?", "How do I zoom in on a Mac?", "polarity"),
        ("How do I sign out of Netflix?", "How do I sign up for Netflix?", "polarity"),
        ("Wie melde ich mich ab?", "Wie melde ich mich an?", "polarity"),
        ("Hoe log ik uit op Gmail?", "Hoe log ik in op Gmail?", "polarity"),
        ("How can I kill a process on Linux?", "How do I kill a process in Linux?", None),
        # two terms swapped across an ordering word; other reorderings are paraphrases
        ("Is tea better than coffee for focus?", "Is coffee better than tea for focus?", "order"),
        ("Subtract 20 from 7", "Subtract 7 from 20", "order"),
        ("Write a short ocean poem.", "Write a short poem about the ocean.", None),
        ("Is it better to buy or rent a house?", "Is it better to rent or buy a house?", None),
        # what the question asks for; antonyms; number words and currencies; more prefixes
        ("When was Tesla founded?", "Who founded Tesla?", "question"),
        ("What year was Mozart born?", "When was Mozart born?", None),
        ("Is it hard to learn Rust?", "Is it easy to learn Rust?", "polarity"),
        ("How do I make the background darker?", "How do I make the background lighter?", "polarity"),
        ("Gib mir fünf Tipps zum Schlafen", "Gib mir drei Tipps zum Schlafen", "number"),
        ("Gib mir 3 Tipps zum Schlafen", "Gib mir drei Tipps zum Schlafen", None),
        ("How much is €100 in yen?", "How much is $100 in yen?", "number"),
        ("Is it illegal to drive barefoot?", "Is it legal to drive barefoot?", "polarity"),
        ("¿Es ilegal grabar una llamada?", "¿Es legal grabar una llamada?", "polarity"),
        ("Jak wyłączyć Bluetooth?", "Jak włączyć Bluetooth?", "polarity"),
        ("What happens if I underpay my taxes?", "What happens if I overpay my taxes?", "polarity"),
        ("Give me a gluten bread recipe", "Give me a gluten-free bread recipe", "polarity"),
        ("Is too little water bad for you?", "Is too much water bad for you?", "polarity"),
        ("Explain the sky to a physicist", "Explain the sky to a five-year-old", "number"),
        ("How can I mute a WhatsApp group chat?", "How do I mute a group chat on WhatsApp?", None),
        ("Is the light off?", "Is the light on?", "polarity"),
        # unspaced scripts: a run of content characters replaced; grammar characters and yes-no forms are not
        ("狗可以吃葡萄吗？", "猫可以吃葡萄吗？", "slot"),  # noqa: RUF001 (Chinese question marks)
        ("如何注销推特账号？", "如何注册推特账号？", "slot"),  # noqa: RUF001 (Chinese question marks)
        ("서울에서 대구까지 얼마나 걸려요?", "서울에서 부산까지 얼마나 걸려요?", "slot"),
        ("猫能吃葡萄吗？", "猫可以吃葡萄吗？", None),  # noqa: RUF001 (Chinese question marks)
        ("早上喝咖啡好不好？", "早上喝咖啡好吗？", None),  # noqa: RUF001 (Chinese question marks)
        ("Excel里怎么插入一行？", "如何在Excel中插入一行？", None),  # noqa: RUF001 (Chinese question marks)
    ],
)
def test_vetoes(new: str, cached: str, reason: str | None) -> None:
    assert veto(features(new), features(cached)) == reason


@pytest.mark.parametrize("name", ["cache_pairs.jsonl", "cache_pairs_holdout.jsonl", "cache_pairs_tricks.jsonl"])
def test_the_shipped_pair_sets_stay_under_one_percent_false_hits(embedder: Embedder, name: str) -> None:
    """The default threshold and the vetoes on each labelled set: near misses served from cache ≤ 1 % of
    trials (the issue's target), while the vetoes leave most paraphrases a hit."""
    found = quality(embedder, DATA.with_name(name))
    assert found["near_miss_false_hit_rate"] <= 0.01
    assert found["paraphrase_hit_rate"] >= 0.45


def test_word_similarity_is_bounded(embedder: Embedder) -> None:
    assert embedder.word_similarity(["repair"], ["repair"]) > 0.99
    assert embedder.word_similarity(["population"], ["area"]) < 0.4
