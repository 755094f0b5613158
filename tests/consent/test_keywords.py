from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guestlist.consent.keywords import (
    DEFAULT,
    DEFAULT_HELP,
    DEFAULT_OPT_IN,
    DEFAULT_OPT_OUT,
    PLAIN_LANGUAGE_RULES,
    KeywordConfig,
    KeywordKind,
    classify,
)


def _fullwidth(word: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in word)


def _variants(word: str) -> list[str]:
    """How people (and their phones) send one word."""
    return [
        word,
        word.lower(),
        word.title(),
        f" {word.lower()}. ",
        f"{word.title()}!",
        f"{word}\n",
        f"\t{word}!!! ",
        f"\u201c{word}\u201d",  # smart quotes
        f"{word}\u200b",  # zero-width space from a copy-paste
        f"{word} \U0001f621",  # trailing emoji
        _fullwidth(word),
    ]


def _cases(words: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(word, variant) for word in words for variant in _variants(word)]


@pytest.mark.parametrize(("word", "body"), _cases(DEFAULT_OPT_OUT))
def test_stop_keywords_withdraw(word: str, body: str) -> None:  # SMS-2
    match = classify(body)
    assert match.kind is KeywordKind.OPT_OUT
    assert match.keyword == word
    assert match.body == body
    assert match.withdraws and not match.needs_review


@pytest.mark.parametrize(("word", "body"), _cases(DEFAULT_OPT_IN))
def test_start_keywords_grant(word: str, body: str) -> None:  # SMS-3
    match = classify(body)
    assert (match.kind, match.keyword) == (KeywordKind.OPT_IN, word)
    assert match.grants and not match.withdraws


@pytest.mark.parametrize(("word", "body"), _cases(DEFAULT_HELP))
def test_help_keywords_change_no_consent(word: str, body: str) -> None:  # SMS-4
    match = classify(body)
    assert (match.kind, match.keyword) == (KeywordKind.HELP, word)
    assert not match.grants and not match.withdraws


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("opt out", "OPTOUT"),
        ("Opt-Out", "OPT-OUT"),
        ("OPT\u2013OUT", "OPT-OUT"),  # en dash
        ("stop all", "STOPALL"),
        ("S T O P", "STOP"),
        ("Arr\u00eat", "ARRET"),  # accent
        ("\U0001d412\U0001d413\U0001d40e\U0001d40f", "STOP"),  # mathematical bold
        ("\u24c8\u24c9\u24c4\u24c5", "STOP"),  # circled letters
        ("...stop...", "STOP"),
        ("\u00bfstop?", "STOP"),
    ],
)
def test_keyword_spelling_variants_withdraw(body: str, keyword: str) -> None:  # SMS-2
    match = classify(body)
    assert (match.kind, match.keyword) == (KeywordKind.OPT_OUT, keyword)


@pytest.mark.parametrize("body", ["stop it now", "STOP PLEASE", "please stop"])
def test_keyword_with_more_words_is_not_bare(body: str) -> None:  # SMS-2, SMS-2a
    match = classify(body)
    assert match.kind is KeywordKind.OPT_OUT_PLAIN_LANGUAGE
    assert match.keyword is None


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ("stop texting me", "keyword_with_filler"),
        ("Stop it now", "keyword_with_filler"),
        ("STOP STOP STOP", "keyword_with_filler"),
        ("unsubscribe me", "keyword_with_filler"),
        ("cancel please", "keyword_with_filler"),
        ("I said stop", "keyword_with_filler"),
        ("Stop. I never signed up for this", "keyword_sentence"),
        ("wrong store - STOP", "keyword_sentence"),
        ("could you stop sending me these messages", "stop_contacting"),
        ("Can you quit messaging me", "stop_contacting"),
        ("why don't you stop texting me", "stop_contacting"),
        ("you never stop texting me", "stop_contacting"),
        ("please opt me out", "opt_out"),
        ("How do I opt out?", "opt_out"),
        ("I opted out last week and you still text me", "opt_out"),
        ("I want to unsubscribe", "unsubscribe"),
        ("how do i unsuscribe from this", "unsubscribe"),
        ("remove me from your list", "remove_me"),
        ("Please delete my number", "remove_me"),
        ("take me off the mailing list", "remove_me"),
        ("don't text me", "dont_contact"),
        ("Do not contact me ever again", "dont_contact"),
        ("no more texts", "no_more"),
        ("No more of your messages!!", "no_more"),
        ("I don\u2019t want these texts", "dont_want"),
        ("I no longer wish to receive these", "dont_want"),
        ("I revoke my consent", "revoke_consent"),
        ("cancel my subscription", "cancel_subscription"),
        ("I never signed up for this", "never_signed_up"),
        ("Wrong number", "wrong_number"),
        ("who gave you my number?", "wrong_number"),
        ("leave me alone", "wrong_number"),
        ("Not interested", "not_interested"),
        ("I'm not interested, thanks", "not_interested"),
    ],
)
def test_plain_language_opt_out_withdraws_and_is_flagged(body: str, rule: str) -> None:  # SMS-2a
    match = classify(body)
    assert match.kind is KeywordKind.OPT_OUT_PLAIN_LANGUAGE
    assert match.rule == rule
    assert match.phrase
    assert match.withdraws and match.needs_review


@pytest.mark.parametrize(
    "body",
    [
        "when do you stop serving?",
        "don't stop",
        "Please don\u2019t stop texting me, I love the deals",
        "never stop sending me deals",
        "I don't want to be unsubscribed",
        "I didn't mean to unsubscribe",
        "please don't remove me from the list",
        "cancel my order",
        "can you cancel it",
        "I want to quit smoking, what do you recommend?",
        "remove the gin from my order",
        "is this the end of the sale?",
        "the link at the end of the message is broken",
        "no more stock?",
        "I'm not interested in the gin but love the rum",
        "stop by tomorrow?",
        "bus stop",
        "nonstop deals!",
        "unstoppable",
        "drop me a line",
        "take me to the store",
        "Yes please",
        "thanks!",
        "",
        "!!!",
        "\U0001f6d1",
    ],
)
def test_ordinary_messages_change_nothing(body: str) -> None:  # SMS-2a
    assert classify(body).kind is KeywordKind.NONE


@pytest.mark.parametrize(
    "body",
    [
        "Stop, that's amazing!",  # a sentence that is only "stop"
        "stop sending me the wrong flavour",
        "did I unsubscribe by accident? I want the deals",
    ],
)
def test_doubtful_messages_withdraw(body: str) -> None:  # SMS-2a: when in doubt, withdraw
    match = classify(body)
    assert match.withdraws and match.needs_review


def test_shop_adds_and_removes_words() -> None:  # SMS-2, SMS-3
    shop = DEFAULT.with_words(
        add_opt_out=["baja", "Alto"], remove_opt_out=["TD"], add_opt_in=["JOIN"]
    )
    assert classify("Baja", config=shop).keyword == "BAJA"
    assert classify("ALTO!", config=shop).kind is KeywordKind.OPT_OUT
    assert classify("td", config=shop).kind is KeywordKind.NONE
    assert classify("td").kind is KeywordKind.OPT_OUT
    assert (classify("join", config=shop).kind, classify("join").kind) == (
        KeywordKind.OPT_IN,
        KeywordKind.NONE,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"remove_opt_out": ["STOP"]},
        {"remove_opt_out": ["END"]},
        {"remove_opt_out": ["UNSUBSCRIBE"]},
        {"remove_opt_in": ["START"]},
        {"remove_help": ["HELP"]},
    ],
)
def test_words_the_law_names_cannot_be_removed(change: dict[str, list[str]]) -> None:  # SMS-2
    with pytest.raises(ValueError, match="cannot lose"):
        DEFAULT.with_words(**change)


def test_optout_spellings_cover_each_other() -> None:  # SMS-2
    shop = DEFAULT.with_words(remove_opt_out=["OPTOUT"])
    assert classify("optout", config=shop).keyword == "OPT-OUT"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"add_opt_in": ["STOP"]}, "both"),
        ({"add_opt_in": ["stop all"]}, "both"),
        ({"remove_opt_out": ["PAUSE"]}, "not there"),
        ({"add_help": ["a/b"]}, "not a keyword"),
        ({"add_help": [""]}, "not a keyword"),
        ({"without_plain_language": ["vibes"]}, "unknown"),
    ],
)
def test_bad_keyword_changes_are_refused(change: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DEFAULT.with_words(**change)


def test_shop_can_switch_off_a_plain_language_rule() -> None:  # SMS-2a
    shop = DEFAULT.with_words(without_plain_language=["cancel_subscription"])
    assert "cancel_subscription" not in shop.rules
    assert classify("cancel my subscription", config=shop).kind is KeywordKind.NONE
    silent = KeywordConfig(plain_language=())
    assert classify("stop texting me", config=silent).kind is KeywordKind.NONE
    assert classify("stop", config=silent).kind is KeywordKind.OPT_OUT
    assert DEFAULT.rules == PLAIN_LANGUAGE_RULES


_EDGE = st.text(alphabet=" \t\n.,!?;:-\"'()\u2019\u201d\u00a0", max_size=6)


@given(word=st.sampled_from(DEFAULT_OPT_OUT), before=_EDGE, after=_EDGE)
def test_surrounding_punctuation_never_hides_a_stop(
    word: str, before: str, after: str
) -> None:  # SMS-2
    assert classify(before + word.lower() + after).kind is KeywordKind.OPT_OUT


@given(st.text(max_size=200))
def test_any_text_classifies(body: str) -> None:
    match = classify(body)
    assert match.body == body
    assert (match.keyword is not None) == (
        match.kind in (KeywordKind.OPT_OUT, KeywordKind.OPT_IN, KeywordKind.HELP)
    )
