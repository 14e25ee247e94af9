"""Modules built from an ArchSpec. Pure torch: this folder is copied next to exported models."""

from .encoder import (
    BertsmithForMaskedLM,
    BertsmithForQuestionAnswering,
    BertsmithForSequenceClassification,
    BertsmithModel,
    EncoderOutput,
)
from .registry import ATTENTION, FFN

__all__ = [
    "ATTENTION",
    "FFN",
    "BertsmithForMaskedLM",
    "BertsmithForQuestionAnswering",
    "BertsmithForSequenceClassification",
    "BertsmithModel",
    "EncoderOutput",
]
