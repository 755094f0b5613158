from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from guestlist.consent.keywords import DEFAULT, KeywordKind
from guestlist.consent.twiml import (
    CONTENT_TYPE,
    EMPTY_RESPONSE,
    ReplyTexts,
    channel_of,
    message_response,
    read_inbound,
    reply_for,
)

SHOP = "Barrel & <Vine>"
NO_PROVIDER = ReplyTexts(provider_answers=frozenset())


def _inbound(body: str, sender: str = "+14017122661", **extra: str) -> dict[str, str]:
    """Twilio's inbound-message parameters (names from its webhook request docs)."""
    return {
        "MessageSid": "SM0123456789abcdef0123456789abcdef",
        "SmsSid": "SM0123456789abcdef0123456789abcdef",
        "SmsMessageSid": "SM0123456789abcdef0123456789abcdef",
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "MessagingServiceSid": "MG0123456789abcdef0123456789abcdef",
        "From": sender,
        "To": "+15558675310",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
        "FromCountry": "US",
        "ToCountry": "US",
        **extra,
    }


def _message(twiml: str) -> str | None:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    messages = root.findall("Message")
    assert len(messages) <= 1  # one confirmation at most (SMS-5)
    return messages[0].text if messages else None


def test_content_type_and_empty_response() -> None:
    assert CONTENT_TYPE == "application/xml"
    assert EMPTY_RESPONSE.endswith("<Response/>")
    assert _message(EMPTY_RESPONSE) is None


def test_reply_text_is_escaped() -> None:
    twiml = message_response('Gin & tonic <2 for 1> "today"\x00')
    assert "Gin &amp; tonic &lt;2 for 1&gt;" in twiml
    assert _message(twiml) == 'Gin & tonic <2 for 1> "today"'  # NUL cannot travel in XML


def test_shop_name_is_escaped_in_replies() -> None:  # SMS-5
    twiml = reply_for(read_inbound(_inbound("REMOVE")), shop=SHOP)
    assert "Barrel &amp; &lt;Vine&gt;" in twiml
    assert _message(twiml) == ReplyTexts().opt_out.format(shop=SHOP)


def test_whatsapp_sender_is_its_own_channel() -> None:  # SMS-7
    inbound = read_inbound(_inbound("STOP", sender="whatsapp:+14155552671", ProfileName="Ann"))
    assert (inbound.channel, inbound.sender) == ("whatsapp", "+14155552671")
    assert inbound.match.kind is KeywordKind.OPT_OUT


def test_sms_sender() -> None:  # SMS-2
    inbound = read_inbound(_inbound("stop"))
    assert (inbound.channel, inbound.sender, inbound.recipient) == (
        "sms",
        "+14017122661",
        "+15558675310",
    )
    assert inbound.message_sid == "SM0123456789abcdef0123456789abcdef"
    assert inbound.match.keyword == "STOP"


def test_unknown_channel_prefix_is_refused() -> None:
    assert channel_of("WhatsApp:+14155552671") == "whatsapp"
    with pytest.raises(ValueError, match="messenger"):
        channel_of("messenger:12345")


def test_message_without_sid_or_sender_is_refused() -> None:
    params = _inbound("STOP")
    del params["From"]
    with pytest.raises(ValueError):
        read_inbound(params)


@pytest.mark.parametrize("body", ["STOP", "unsubscribe", " Stop\n", "START", "yes", "HELP", "info"])
def test_twilio_answers_its_own_keywords(body: str) -> None:  # SMS-5: one confirmation
    assert reply_for(read_inbound(_inbound(body)), shop=SHOP) == EMPTY_RESPONSE


def test_advanced_opt_out_answered_already() -> None:  # SMS-5
    inbound = read_inbound(_inbound("REMOVE", OptOutType="STOP"))
    assert reply_for(inbound, shop=SHOP, texts=NO_PROVIDER) == EMPTY_RESPONSE


@pytest.mark.parametrize("body", ["OPT-OUT", "remove", "ARRET", "td", "opt out", "Stop all"])
def test_carrier_keywords_get_one_confirmation(body: str) -> None:  # SMS-2, SMS-5
    text = _message(reply_for(read_inbound(_inbound(body)), shop="Cellar"))
    assert text is not None
    assert text.startswith("Cellar:") and "START" in text


def test_plain_language_opt_out_is_confirmed() -> None:  # SMS-2a, SMS-5
    text = _message(reply_for(read_inbound(_inbound("please stop texting me")), shop="Cellar"))
    assert text == ReplyTexts().opt_out.format(shop="Cellar")


def test_opt_in_confirmation_repeats_how_to_opt_out() -> None:  # SMS-3, SMS-5
    config = DEFAULT.with_words(add_opt_in=["JOIN"])
    text = _message(
        reply_for(
            read_inbound(
                _inbound(
                    "Join",
                ),
                config=config,
            ),
            shop="Cellar",
        )
    )
    assert text is not None and "STOP" in text and "Cellar" in text


def test_help_reply_names_shop_stop_and_rates() -> None:  # SMS-4
    text = _message(reply_for(read_inbound(_inbound("HELP")), shop="Cellar", texts=NO_PROVIDER))
    assert text is not None
    assert "Cellar" in text and "STOP" in text and "Msg & data rates may apply" in text


@pytest.mark.parametrize("body", ["when do you open?", "", "thanks!"])
def test_ordinary_messages_get_no_reply(body: str) -> None:
    assert reply_for(read_inbound(_inbound(body)), shop=SHOP, texts=NO_PROVIDER) == EMPTY_RESPONSE


def test_shop_reply_texts() -> None:  # SMS-5
    texts = ReplyTexts(
        opt_out="{shop}: done. Text START to rejoin.", provider_answers=frozenset({"stop"})
    )
    assert texts.provider_answers == frozenset({"STOP"})
    assert _message(reply_for(read_inbound(_inbound("END")), shop="Cellar", texts=texts)) == (
        "Cellar: done. Text START to rejoin."
    )
    assert reply_for(read_inbound(_inbound("STOP")), shop="Cellar", texts=texts) == EMPTY_RESPONSE


@pytest.mark.parametrize("template", ["{name} unsubscribed", "{shop.__class__}", "{0}", "  "])
def test_reply_templates_fill_in_the_shop_only(template: str) -> None:  # SMS-5
    with pytest.raises(ValueError):
        ReplyTexts(opt_out=template)


def test_reply_problems_are_listed() -> None:  # SMS-4, SMS-5
    assert ReplyTexts().problems() == []
    problems = ReplyTexts(opt_in="Welcome!", help="Call us.").problems()
    assert len(problems) == 4
