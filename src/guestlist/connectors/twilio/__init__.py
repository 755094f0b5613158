"""Twilio SMS and WhatsApp: inbound messages as `Inbound Message` events, opt-out,
opt-in and help keywords applied to the consent ledger and answered in TwiML. See
src/guestlist/connectors/twilio/README.md and docs/connectors/twilio.md."""

from guestlist.connectors.twilio.connector import TwilioConnector

__all__ = ["TwilioConnector"]
