"""Segments: the rule language (JSON and text forms), its checks, and the in-memory
evaluator for one profile. See docs/segments.md."""
