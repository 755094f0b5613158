"""Inbound SMS/WhatsApp keywords: opt-out (SMS-2, SMS-2a), opt-in (SMS-3), help (SMS-4).

`classify` reads one message body. A *bare keyword* is the whole message, compared
case-insensitively after Unicode folding (NFKC, smart quotes and dashes to ASCII,
invisible format characters and accents dropped), with surrounding whitespace,
punctuation and emoji ignored and the spaces or hyphens inside it too (`opt out`,
`OPT-OUT` and `optout` are one keyword; `S T O P` is `STOP`).

A message that is not a bare keyword may still say "stop" in plain language (SMS-2a:
the FCC's revocation rule accepts any reasonable means). Those rules are English only,
lean towards withdrawing when the intent to stop is plausible, and every match is
flagged for review. They are listed in `PLAIN_LANGUAGE_RULES` and docs/sms-keywords.md.

The lists are per shop: `DEFAULT.with_words(add_opt_out=["BAJA"])`. The words the
FCC names (and Twilio's STOP, START, HELP) cannot be removed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class KeywordKind(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    OPT_OUT_PLAIN_LANGUAGE = "opt_out_plain_language"
    NONE = "none"


# Twilio's current default opt-out list, then other carriers' (AWS) defaults. SMS-2
DEFAULT_OPT_OUT: tuple[str, ...] = (
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "OPT-OUT",
    "REMOVE",
    "ARRET",
    "TD",
)
DEFAULT_OPT_IN: tuple[str, ...] = ("START", "YES", "UNSTOP")  # SMS-3
DEFAULT_HELP: tuple[str, ...] = ("HELP", "INFO")  # SMS-4

# The FCC's revocation rule names stop, quit, end, revoke, opt out, cancel and
# unsubscribe; Twilio does not let STOP, START or HELP be removed either.
REQUIRED_OPT_OUT: tuple[str, ...] = (
    "STOP",
    "QUIT",
    "END",
    "REVOKE",
    "OPTOUT",
    "CANCEL",
    "UNSUBSCRIBE",
)
REQUIRED_OPT_IN: tuple[str, ...] = ("START",)
REQUIRED_HELP: tuple[str, ...] = ("HELP",)

# Opt-out keywords that are also everyday words to a shop ("cancel my order", "quit
# smoking", "remove the gin"). Inside a longer message they count only with polite
# filler ("cancel please"), never with "it"/"this", and never as one sentence of several.
EVERYDAY_OPT_OUT: frozenset[str] = frozenset({"CANCEL", "END", "QUIT", "REMOVE"})


# --- text folding ---------------------------------------------------------------

_ASCII_PUNCTUATION = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc\u00b4`", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2e3a\u2e3b", "-"),
    }
)
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")
_INNER_SEPARATORS = re.compile(r"[\s\-_]+")
_WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")
_CANONICAL_WORD = re.compile(r"[^\W_]+(?:[ -][^\W_]+)*")
_SENTENCE_BREAK = re.compile(r"[.!?,;:()\[\]{}\"\n]+|\s-+\s")


def fold(text: str) -> str:
    """Text as keywords are compared: NFKC, ASCII quotes and dashes, no format
    characters (zero-width spaces, direction marks), case-folded, accents removed.
    Line breaks are kept; other whitespace runs become one space."""
    text = unicodedata.normalize("NFKC", text.translate(_ASCII_PUNCTUATION))
    text = text.translate(_ASCII_PUNCTUATION)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf").casefold()
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = unicodedata.normalize("NFC", text)
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def _bare(folded: str) -> str:
    """The whole message without surrounding punctuation, on one line."""
    return _EDGES.sub("", " ".join(folded.split()))


def _loose(word: str) -> str:
    return _INNER_SEPARATORS.sub("", word)


def _canonical(word: str) -> str:
    bare = _bare(fold(word))
    if not _CANONICAL_WORD.fullmatch(bare):
        raise ValueError(f"not a keyword: {word!r} (letters or digits, spaces or hyphens inside)")
    return bare.upper()


# --- configuration ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeywordConfig:
    """One shop's keyword lists and the plain-language rules it applies.

    Words are stored canonical (folded, upper case). A word may belong to one kind only.
    """

    opt_out: tuple[str, ...] = DEFAULT_OPT_OUT
    opt_in: tuple[str, ...] = DEFAULT_OPT_IN
    help: tuple[str, ...] = DEFAULT_HELP
    plain_language: tuple[str, ...] | None = None  # rule names, None: all of them
    _by_exact: dict[str, tuple[KeywordKind, str]] = field(init=False, repr=False, compare=False)
    _by_loose: dict[str, tuple[KeywordKind, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_exact: dict[str, tuple[KeywordKind, str]] = {}
        by_loose: dict[str, tuple[KeywordKind, str]] = {}
        lists = {
            KeywordKind.OPT_OUT: self.opt_out,
            KeywordKind.OPT_IN: self.opt_in,
            KeywordKind.HELP: self.help,
        }
        for kind, words in lists.items():
            canonical = tuple(dict.fromkeys(_canonical(w) for w in words))
            object.__setattr__(self, kind.value, canonical)
            for word in canonical:
                for index, key in (
                    (by_exact, word.casefold()),
                    (by_loose, _loose(word.casefold())),
                ):
                    held = index.setdefault(key, (kind, word))
                    if held[0] is not kind:
                        raise ValueError(f"{word!r} is both {held[0].value} and {kind.value}")
        required = {
            KeywordKind.OPT_OUT: REQUIRED_OPT_OUT,
            KeywordKind.OPT_IN: REQUIRED_OPT_IN,
            KeywordKind.HELP: REQUIRED_HELP,
        }
        for kind, words in required.items():
            missing = [
                w for w in words if by_loose.get(_loose(w.casefold()), (None,))[0] is not kind
            ]
            if missing:
                raise ValueError(f"{kind.value} keywords cannot lose {', '.join(missing)}")
        rules = PLAIN_LANGUAGE_RULES if self.plain_language is None else self.plain_language
        unknown = [name for name in rules if name not in PLAIN_LANGUAGE_RULES]
        if unknown:
            raise ValueError(f"unknown plain-language rules: {', '.join(unknown)}")
        object.__setattr__(self, "plain_language", tuple(dict.fromkeys(rules)))
        object.__setattr__(self, "_by_exact", by_exact)
        object.__setattr__(self, "_by_loose", by_loose)

    def with_words(
        self,
        *,
        add_opt_out: Iterable[str] = (),
        remove_opt_out: Iterable[str] = (),
        add_opt_in: Iterable[str] = (),
        remove_opt_in: Iterable[str] = (),
        add_help: Iterable[str] = (),
        remove_help: Iterable[str] = (),
        without_plain_language: Iterable[str] = (),
    ) -> KeywordConfig:
        """A copy with words added or removed. Removing a word that is not in the list,
        or one the law or Twilio requires, raises `ValueError`."""

        def edit(
            words: tuple[str, ...], add: Iterable[str], remove: Iterable[str]
        ) -> tuple[str, ...]:
            dropped = {_canonical(w) for w in remove}
            absent = dropped.difference(words)
            if absent:
                raise ValueError(f"cannot remove what is not there: {', '.join(sorted(absent))}")
            return tuple(w for w in words if w not in dropped) + tuple(add)

        disabled = set(without_plain_language)
        unknown = disabled.difference(PLAIN_LANGUAGE_RULES)
        if unknown:
            raise ValueError(f"unknown plain-language rules: {', '.join(sorted(unknown))}")
        return KeywordConfig(
            opt_out=edit(self.opt_out, add_opt_out, remove_opt_out),
            opt_in=edit(self.opt_in, add_opt_in, remove_opt_in),
            help=edit(self.help, add_help, remove_help),
            plain_language=tuple(r for r in self.rules if r not in disabled),
        )

    @property
    def rules(self) -> tuple[str, ...]:
        """The plain-language rules applied, in the order they are tried."""
        return self.plain_language or ()

    def keyword(self, text: str) -> tuple[KeywordKind, str] | None:
        """The kind and configured word a bare message (already folded) is, if any."""
        return self._by_exact.get(text) or self._by_loose.get(_loose(text))


# --- the result ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeywordMatch:
    kind: KeywordKind
    body: str  # as received: with the message id, the proof
    keyword: str | None = None  # the configured keyword matched (bare keywords)
    rule: str | None = None  # the plain-language rule that matched (SMS-2a)
    phrase: str | None = None  # the words it matched, folded

    @property
    def withdraws(self) -> bool:
        return self.kind in (KeywordKind.OPT_OUT, KeywordKind.OPT_OUT_PLAIN_LANGUAGE)

    @property
    def grants(self) -> bool:
        return self.kind is KeywordKind.OPT_IN

    @property
    def needs_review(self) -> bool:
        """Plain-language opt-outs are applied at once and shown for review (SMS-2a)."""
        return self.kind is KeywordKind.OPT_OUT_PLAIN_LANGUAGE


# --- plain-language opt-outs (SMS-2a) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Message:
    words: tuple[str, ...]  # the whole message
    sentences: tuple[tuple[str, ...], ...]
    flat: str  # the words joined by single spaces: what the patterns read
    opt_out_words: frozenset[str]  # the words that are opt-out keywords
    strong_words: frozenset[str]  # those that are not everyday words

    @staticmethod
    def read(folded: str, config: KeywordConfig) -> _Message:
        words = tuple(_WORD.findall(folded))
        sentences = tuple(
            sentence
            for part in _SENTENCE_BREAK.split(folded)
            if (sentence := tuple(_WORD.findall(part)))
        )
        opt_out: set[str] = set()
        strong: set[str] = set()
        for word in set(words):
            found = config.keyword(word)
            if found is not None and found[0] is KeywordKind.OPT_OUT:
                opt_out.add(word)
                if _loose(found[1]) not in EVERYDAY_OPT_OUT:
                    strong.add(word)
        return _Message(words, sentences, " ".join(words), frozenset(opt_out), frozenset(strong))


_POLITE = frozenset(
    "please pls plz plse kindly thanks thank you thx ty now right asap immediately already "
    "ok okay just again i said yes y hi hello hey sir madam maam seriously really forever "
    "permanently today".split()
)
_ABOUT_TEXTS = frozenset(
    "me us my number all texts text texting txt txts messages message messaging msg msgs sms "
    "marketing promos promo alerts notifications anymore more sending spam".split()
)
_POINTING = frozenset("it this that these them those".split())


def _only_keywords_and_filler(
    words: tuple[str, ...], keywords: frozenset[str], filler: frozenset[str]
) -> bool:
    return any(w in keywords for w in words) and all(w in keywords or w in filler for w in words)


def _keyword_with_filler(m: _Message) -> str | None:
    """The whole message is opt-out keywords and filler: "stop it now", "please stop",
    "STOP STOP STOP", "unsubscribe me", "cancel please". Everyday keywords (CANCEL, END,
    QUIT, REMOVE) take no "it"/"this": "cancel it" may be an order."""
    filler = _POLITE | _ABOUT_TEXTS
    if m.strong_words:
        filler |= _POINTING
    return m.flat if _only_keywords_and_filler(m.words, m.opt_out_words, filler) else None


def _keyword_sentence(m: _Message) -> str | None:
    """One sentence of several is a strong keyword with filler: "Stop. I never signed
    up", "wrong number - STOP", "not for me, unsubscribe"."""
    if len(m.sentences) < 2:
        return None
    filler = _POLITE | _ABOUT_TEXTS | _POINTING
    for sentence in m.sentences:
        if _only_keywords_and_filler(sentence, m.strong_words, filler):
            return " ".join(sentence)
    return None


# A stopping verb preceded by these is not an opt-out: "please don't stop", "never stop
# texting me", "I don't want to be unsubscribed", "I didn't mean to unsubscribe".
# "you never stop texting me" is a complaint, so "never" after "you" does not negate;
# "why don't you stop" is not matched because "you" is not a bridge word.
_NEGATED = re.compile(
    r"\b(?:don't|dont|do not|(?<!\byou )(?<!\bu )never|didn't mean to|didnt mean to|no need to)"
    r"(?: (?:want|wanna|need|to|ever|please|pls|be|get))* $"
)
_TEXTS = (
    r"(?:texts?|txts?|texting|txting|messages?|messaging|msgs?|sms|spam|spamming|contacting|"
    r"contacted|contact|calling|calls|emails?|emailing|promos?|promotions?|marketing|ads|"
    r"adverts?|notifications?|alerts?|sending|bothering|harassing)"
)


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    negatable: bool  # a match right after "don't"/"never" does not count

    def __call__(self, m: _Message) -> str | None:
        for found in self.regex.finditer(m.flat):
            before = m.flat[max(0, found.start() - 80) : found.start()]  # bridge words are few
            if not (self.negatable and _NEGATED.search(before)):
                return found.group(0)
        return None


def _pattern(regex: str, *, negatable: bool) -> _Pattern:
    return _Pattern(re.compile(regex), negatable)


_RULES: dict[str, Callable[[_Message], str | None]] = {
    "keyword_with_filler": _keyword_with_filler,
    "keyword_sentence": _keyword_sentence,
    # "stop texting me", "quit sending", "stop all these messages", "end the texts"
    "stop_contacting": _pattern(
        r"\b(?:stop|quit|cease|halt|end(?! of))"
        r"(?: (?:all|the|these|those|this|your|ur|any|with|me|us|of|them|more|from)){0,3}"
        rf" {_TEXTS}\b",
        negatable=True,
    ),
    # "please opt me out", "how do I opt out", "I opted out already"
    "opt_out": _pattern(r"\bopt(?:ing|ed)?[ -]?(?:(?:me|us|my number) )?out\b", negatable=True),
    # "unsubscribe me", "I want to unsubscribe", "unsuscribe"
    "unsubscribe": _pattern(r"\bun-? ?sub?s?c?ri?be?\w*|\bunsub\b", negatable=True),
    # "remove me from your list", "delete my number", "take me off", "off your list"
    "remove_me": _pattern(
        r"\b(?:remove|delete|erase) (?:me|us)\b"
        r"|\b(?:remove|delete|erase) my (?:phone )?(?:number|no|info|details|contact|name|data)\b"
        r"|\b(?:take|get) (?:me|us|my (?:phone )?number) off\b"
        r"|\boff (?:of )?(?:your|the|this|that|ur|ya) (?:\w+ )?lists?\b",
        negatable=True,
    ),
    # "don't text me", "do not contact me", "never message me again"
    "dont_contact": _pattern(
        r"\b(?:don't|dont|do not|never)(?: ever)?"
        r" (?:text|txt|message|msg|contact|call|sms|email|spam|bother|harass)(?:ing)?"
        r" (?:me|us|this number|my number)\b",
        negatable=False,
    ),
    # "no more texts", "no more of your messages"
    "no_more": _pattern(
        r"\bno (?:more|further)(?: (?:of|these|those|your|ur|the|this)){0,2}"
        r" (?:texts?|txts?|texting|messages?|messaging|msgs?|sms|spam|promos?|promotions?"
        r"|marketing|ads|notifications?|alerts?|emails?|contact)\b",
        negatable=False,
    ),
    # "I don't want these texts", "I no longer wish to receive messages"
    "dont_want": _pattern(
        rf"\b(?:don't|dont|do not|no longer) (?:want|wish|need|wanna)(?: \w+){{0,4}}? {_TEXTS}\b"
        r"|\b(?:don't|dont|do not|no longer) (?:want|wish) to (?:receive|get)"
        r" (?:these|this|them|any|anything|anymore)\b",
        negatable=False,
    ),
    # "I revoke my consent", "withdraw consent"
    "revoke_consent": _pattern(
        r"\b(?:revoke|revoking|withdraw|withdrawing|retract|cancel|remove|pull)"
        r" (?:my |all |any )?(?:consent|permission|opt ?-?in)\b",
        negatable=True,
    ),
    # "cancel my subscription", "end my text subscription" (may mean a product
    # subscription: withdrawn anyway, and reviewed)
    "cancel_subscription": _pattern(
        r"\b(?:cancel|end|stop|terminate) (?:my |the |this |your |ur )?"
        r"(?:(?:text|sms|texting|message|messaging|marketing|mailing) )?subscriptions?\b",
        negatable=True,
    ),
    # "I never signed up for this", "didn't subscribe", "never agreed"
    "never_signed_up": _pattern(
        r"\b(?:never|didn't|didnt|did not|don't remember|dont remember)(?: ever)?"
        r" (?:sign(?:ed)? up|signup|subscribed?|opt(?:ed)? ?-?in|agreed?|consent(?:ed)?"
        r"|ask(?:ed)? for (?:this|these|that|them|texts|messages))\b",
        negatable=False,
    ),
    # "wrong number", "who gave you my number", "lose my number", "leave me alone"
    "wrong_number": _pattern(
        r"\bwrong (?:number|person|phone)\b|\bnot my (?:number|phone)\b"
        r"|\bwho gave (?:you|u) (?:my|this) (?:number|phone)\b"
        r"|\bhow did (?:you|u) get (?:my|this) (?:number|phone)\b"
        r"|\blose my number\b|\bleave me alone\b",
        negatable=False,
    ),
    # the whole message: "not interested", "I'm not interested thanks", "go away", "enough"
    "not_interested": _pattern(
        r"^(?:(?:no|nope|sorry|thanks|thank|you|ok|okay|please|pls|i'm|im|i|am|really|just|so)"
        r" )*(?:not interested|go away|enough|enough already)"
        r"(?: (?:thanks|thank you|please|pls|anymore|now|sorry))*$",
        negatable=False,
    ),
}

# In the order they are tried; `KeywordMatch.rule` names the one that matched.
PLAIN_LANGUAGE_RULES: tuple[str, ...] = tuple(_RULES)

DEFAULT = KeywordConfig()


def classify(body: str, *, config: KeywordConfig = DEFAULT) -> KeywordMatch:
    """What an inbound SMS/WhatsApp body asks for: a bare keyword, a plain-language
    opt-out, or nothing."""
    folded = fold(body)
    found = config.keyword(_bare(folded))
    if found is not None:
        return KeywordMatch(found[0], body, keyword=found[1])
    message = _Message.read(folded, config)
    for name in config.rules:
        phrase = _RULES[name](message)
        if phrase is not None:
            return KeywordMatch(KeywordKind.OPT_OUT_PLAIN_LANGUAGE, body, rule=name, phrase=phrase)
    return KeywordMatch(KeywordKind.NONE, body)
