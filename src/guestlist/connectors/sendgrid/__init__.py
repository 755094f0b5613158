"""SendGrid Inbound Parse: mail to the shop's parse address becomes the sender's profile
and an `Inbound Message` event. See README.md and docs/connectors/sendgrid.md."""

from guestlist.connectors.sendgrid.connector import SendGridConnector

__all__ = ["SendGridConnector"]
