"""Spec generation: a ModelSpec built from a model class (placeholder; see issue 12)."""
