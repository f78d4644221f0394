"""fastbert: a custom-kernel BERT encoder engine, drop-in for Hugging Face BERT checkpoints."""

__version__ = "0.1.0"
