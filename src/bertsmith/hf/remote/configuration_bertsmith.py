"""Configuration of a bertsmith encoder for Hugging Face transformers (written by bertsmith's export).

The architecture is the bertsmith ArchSpec, kept as a plain dict under ``spec``: hidden size,
embeddings, and one entry per layer (attention kind, heads, query/key and value head dims, FFN kind,
size, activation, ...). The modeling files read it through nested namespaces, so bertsmith itself
is not needed to load the model.
"""

from transformers import PretrainedConfig


class BertsmithConfig(PretrainedConfig):
    model_type = "bertsmith"

    def __init__(self, spec=None, **kwargs):
        self.spec = spec
        if spec:
            # The usual names, for tools that read them (pipelines, sentence-transformers, ...).
            kwargs.setdefault("hidden_size", spec["hidden"])
            kwargs.setdefault("num_hidden_layers", len(spec["layers"]))
            kwargs.setdefault("vocab_size", spec["embeddings"]["vocab_size"])
            kwargs.setdefault("max_position_embeddings", spec["embeddings"]["max_positions"])
            kwargs.setdefault("pad_token_id", spec["embeddings"]["pad_token_id"])
        self.tie_word_embeddings = kwargs.pop("tie_word_embeddings", True)
        super().__init__(**kwargs)
