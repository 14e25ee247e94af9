"""Hugging Face interop and ONNX export.

- ``import_checkpoint(name_or_dir, head=None)``: a BERT / RoBERTa / ConvBERT checkpoint (MiniLM is
  BERT-format), or a directory bertsmith exported, as an ArchSpec and bertsmith modules (a base
  encoder, or with a classification, masked-LM or extractive QA head).
- ``export_pretrained(model, out_dir, tokenizer_dir=None)``: a stock BERT / ConvBERT directory when
  the spec allows, otherwise a ``trust_remote_code`` directory that needs no bertsmith.
- ``export_onnx(model, path, seq_len=128)`` and ``onnx_max_abs_diff(model, path, inputs)``.
- ``export_dir.write_export_dir(model, out, ...)``: a whole export directory (the Hugging Face files,
  optionally ``model.onnx`` checked against PyTorch and ``model.int8.onnx``), written atomically.
"""

from .checkpoint import ImportedModel, import_checkpoint
from .export import export_onnx, export_pretrained, onnx_max_abs_diff
from .mapping import stock_kind

__all__ = [
    "ImportedModel",
    "export_onnx",
    "export_pretrained",
    "import_checkpoint",
    "onnx_max_abs_diff",
    "stock_kind",
]
