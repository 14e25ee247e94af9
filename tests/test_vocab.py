"""Vocabulary pruning (``hf.vocab``, ``bertsmith export --prune-vocab``): the corpus tokenizes and
scores exactly as before, the export loads with stock transformers, unseen words still tokenize."""

from __future__ import annotations

import json

import pytest
import torch

from bertsmith.errors import CheckpointError
from bertsmith.hf import import_checkpoint
from bertsmith.hf.vocab import kept_ids, prune_vocab

from .test_cli import run


def _texts(task_file, split: str) -> list[str]:
    return [line.split(",")[0] for line in (task_file.parent / f"{split}.csv").read_text().splitlines()[1:]]


def test_the_pruned_export_tokenizes_and_scores_the_corpus_exactly_as_before(
    teacher_dir, task_file, tmp_path, monkeypatch, capsys
):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(_texts(task_file, "train")) + "\nan entirely unrelated sentence\n")
    code, out, err = run(
        monkeypatch, capsys, "export", str(teacher_dir), str(tmp_path / "out"), "--prune-vocab", str(corpus)
    )
    assert code == 0, err
    full_tokenizer, pruned_tokenizer = (
        AutoTokenizer.from_pretrained(teacher_dir),
        AutoTokenizer.from_pretrained(tmp_path / "out"),
    )
    kept = len(pruned_tokenizer)
    assert f"kept {kept:,} of {len(full_tokenizer):,} word pieces" in out and kept < len(full_tokenizer) // 2
    full = AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
    pruned = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").eval()  # stock transformers
    assert pruned.config.vocab_size == kept and pruned.config.id2label == full.config.id2label
    texts = _texts(task_file, "train")[:64] + ["an entirely unrelated sentence"]
    a = full_tokenizer(texts, padding=True, return_tensors="pt")
    b = pruned_tokenizer(texts, padding=True, return_tensors="pt")
    for x, y in zip(a["input_ids"], b["input_ids"]):
        assert full_tokenizer.convert_ids_to_tokens(x) == pruned_tokenizer.convert_ids_to_tokens(y)
    with torch.no_grad():
        torch.testing.assert_close(pruned(**b).logits, full(**a).logits)
    unseen = pruned_tokenizer.tokenize("zebra xylophone")  # spelled out from kept pieces, not [UNK]
    assert unseen and "[UNK]" not in unseen and "".join(p.removeprefix("##") for p in unseen) == "zebraxylophone"


def test_kept_ids_hold_the_special_tokens_and_single_characters(teacher_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    keep = kept_ids(teacher_dir, [("good fun", None)])
    assert set(tokenizer.all_special_ids) <= set(keep) and keep == sorted(set(keep))
    assert set(tokenizer.convert_tokens_to_ids(["good", "fun", "a", "##a"])) <= set(keep)
    assert tokenizer.convert_tokens_to_ids("film") not in keep


def test_a_masked_lm_is_refused(mlm_dir, tmp_path):
    imported = import_checkpoint(mlm_dir)
    with pytest.raises(CheckpointError, match="not masked-LM ones"):
        prune_vocab(imported, mlm_dir, kept_ids(mlm_dir, [("x", None)]), tmp_path)


def test_the_tokenizer_config_s_added_tokens_are_renumbered(teacher_dir, tmp_path):
    (tmp_path / "src").mkdir()
    for f in teacher_dir.iterdir():
        (tmp_path / "src" / f.name).write_bytes(f.read_bytes())
    config = json.loads((tmp_path / "src" / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {
        "100": {"content": "[UNK]", "special": True},
        "101": {"content": "[CLS]", "special": True},
    }
    (tmp_path / "src" / "tokenizer_config.json").write_text(json.dumps(config))
    imported = import_checkpoint(tmp_path / "src")
    keep = kept_ids(tmp_path / "src", [("good", None)])
    prune_vocab(imported, tmp_path / "src", keep, tmp_path / "out")
    decoder = json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())["added_tokens_decoder"]
    assert decoder == {
        str(keep.index(100)): {"content": "[UNK]", "special": True},
        str(keep.index(101)): {"content": "[CLS]", "special": True},
    }


def test_a_qa_model_is_pruned_with_its_head(base_dir, tmp_path):
    from bertsmith.modeling import BertsmithForQuestionAnswering

    imported = import_checkpoint(base_dir, head="qa")
    keep = kept_ids(base_dir, [("good fun", None)])
    pruned = prune_vocab(imported, base_dir, keep, tmp_path)
    assert type(pruned.model) is BertsmithForQuestionAnswering and pruned.num_labels == 2
    old = torch.tensor([keep[3:12]])
    new = torch.arange(3, 12)[None]
    with torch.no_grad():
        torch.testing.assert_close(pruned.model(new)[0], imported.model(old)[0])
