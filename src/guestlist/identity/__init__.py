"""Identity: identifier normalisation, blocked values, the identity graph and merges."""
