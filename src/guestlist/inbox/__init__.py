"""Raw envelopes as accepted, idempotency, and the parser registry that reads them."""
