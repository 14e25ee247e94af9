"""bertsmith: compact, fast BERT-style encoders for a task and a budget."""

__version__ = "0.1.0"
