"""Consent: SMS/WhatsApp keywords and their replies, signed confirm and unsubscribe links."""
