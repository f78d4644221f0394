"""Placeholder: filled in by the distilbert family work."""

MODEL_CLASSES: dict = {}
