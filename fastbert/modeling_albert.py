"""Placeholder: filled in by the albert family work."""

MODEL_CLASSES: dict = {}
