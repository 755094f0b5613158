"""Profiles: traits (latest by event time), events, and the apply step."""
