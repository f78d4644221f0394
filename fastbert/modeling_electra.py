"""Placeholder: filled in by the electra family work."""

MODEL_CLASSES: dict = {}
