"""Vocabulary pruning: an export that keeps only the word pieces a corpus uses.

A small student's word embeddings are most of its file (30,522 rows of a BERT vocabulary). A deployed
classifier only ever sees text like its training data, so ``prune_vocab`` keeps the pieces the given
texts tokenize into, every special token, and every single-character piece (with and without the
``##`` prefix), and drops the rest. Greedy longest-match WordPiece then tokenizes every text of the
corpus exactly as before (each piece it chose is kept and no longer piece is added), so the model's
outputs on the corpus are unchanged; an unseen word falls back to shorter pieces or characters
instead of the dropped piece. Keeping the single characters is bertsmith's own choice: it keeps
unseen words spelled out rather than [UNK]. Only WordPiece tokenizers (a ``tokenizer.json`` with a
WordPiece model, as BERT's) are supported.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch

from ..arch import ArchSpec
from ..distill.task import load_tokenizer
from ..errors import CheckpointError
from ..modeling import BertsmithForQuestionAnswering, BertsmithForSequenceClassification, BertsmithModel
from .checkpoint import ImportedModel

WORD_KEY = "encoder.embeddings.word.weight"


def kept_ids(tokenizer_dir: Path, texts: Iterable[tuple[str, str | None]], *, batch: int = 1000) -> list[int]:
    """The sorted ids to keep: every piece the ``texts`` (text, pair) tokenize into, the special
    tokens and the single-character pieces."""
    tokenizer = load_tokenizer(tokenizer_dir)
    vocab = tokenizer.get_vocab()
    keep = set(tokenizer.all_special_ids)
    keep |= {i for piece, i in vocab.items() if len(piece.removeprefix("##")) == 1}
    chunk: list[tuple[str, str | None]] = []

    def flush() -> None:
        pairs = [p for _, p in chunk]
        encoded = tokenizer(
            [t for t, _ in chunk], pairs if all(p is not None for p in pairs) else None, add_special_tokens=False
        )
        for ids in encoded["input_ids"]:
            keep.update(ids)
        chunk.clear()

    for item in texts:
        chunk.append(item)
        if len(chunk) == batch:
            flush()
    if chunk:
        flush()
    return sorted(keep)


def prune_vocab(
    imported: ImportedModel, tokenizer_dir: str | os.PathLike, keep: list[int], tokenizer_out: Path
) -> ImportedModel:
    """The model with only the word embeddings of ``keep`` (old ids, sorted), and its tokenizer files
    rewritten to the new ids in ``tokenizer_out`` (for ``export_pretrained(..., tokenizer_dir=...)``)."""
    tokenizer_dir = Path(tokenizer_dir)
    if not (tokenizer_dir / "tokenizer.json").is_file():
        raise CheckpointError(
            f"{tokenizer_dir}: no tokenizer.json; vocabulary pruning needs a WordPiece tokenizer.json"
        )
    model = imported.model
    task = isinstance(model, (BertsmithForSequenceClassification, BertsmithForQuestionAnswering))
    if not task and not isinstance(model, BertsmithModel):
        raise CheckpointError(
            "vocabulary pruning applies to task and base models, not masked-LM ones "
            "(their decoder predicts over the whole vocabulary)"
        )
    spec = imported.spec
    new_id = {old: new for new, old in enumerate(keep)}
    if spec.embeddings.pad_token_id not in new_id:
        raise CheckpointError(f"the pad token id {spec.embeddings.pad_token_id} is not among the kept tokens")
    data = spec.to_dict()
    data["embeddings"] |= {"vocab_size": len(keep), "pad_token_id": new_id[spec.embeddings.pad_token_id]}
    new_spec = ArchSpec.from_dict(data)
    state = model.state_dict()
    key = WORD_KEY if task else WORD_KEY.removeprefix("encoder.")
    state[key] = state[key][torch.tensor(keep)].clone()
    if isinstance(model, BertsmithForSequenceClassification):
        pruned = BertsmithForSequenceClassification(new_spec, num_labels=imported.num_labels)
    else:
        pruned = type(model)(new_spec)
    pruned.load_state_dict(state)
    tokenizer_out.mkdir(parents=True, exist_ok=True)
    _write_tokenizer(tokenizer_dir, tokenizer_out, keep, new_id)
    return ImportedModel(
        new_spec, pruned.eval(), imported.source, imported.num_labels, str(tokenizer_out), imported.labels
    )


def _write_tokenizer(src: Path, out: Path, keep: list[int], new_id: dict[int, int]) -> None:
    """tokenizer.json and vocab.txt with the kept pieces renumbered; the other tokenizer files as they are."""
    data = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    if data.get("model", {}).get("type") != "WordPiece":
        raise CheckpointError(
            f"{src / 'tokenizer.json'}: a {data.get('model', {}).get('type')} tokenizer; vocabulary "
            "pruning supports WordPiece (BERT) tokenizers only"
        )
    pieces = {i: piece for piece, i in data["model"]["vocab"].items()}
    data["model"]["vocab"] = {pieces[old]: new for new, old in enumerate(keep)}
    data["added_tokens"] = [t | {"id": new_id[t["id"]]} for t in data.get("added_tokens", []) if t["id"] in new_id]
    post = data.get("post_processor") or {}
    for token in (post.get("special_tokens") or {}).values():
        token["ids"] = [new_id[i] for i in token["ids"]]
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    (out / "vocab.txt").write_text("".join(pieces[old] + "\n" for old in keep), encoding="utf-8")
    if (src / "special_tokens_map.json").is_file():
        shutil.copyfile(src / "special_tokens_map.json", out / "special_tokens_map.json")
    if (src / "tokenizer_config.json").is_file():
        config = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
        if isinstance(config.get("added_tokens_decoder"), dict):
            config["added_tokens_decoder"] = {
                str(new_id[int(i)]): t for i, t in config["added_tokens_decoder"].items() if int(i) in new_id
            }
        (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
