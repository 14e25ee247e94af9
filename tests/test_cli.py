"""The command line: arch list/show, bench, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bertsmith import cost, presets
from bertsmith.cli import main


def run(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["bertsmith", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_arch_list_names_every_preset(monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, "arch", "list")
    assert code == 0
    for name in ("bert-base", "schubert-43m", "bort", "convbert-medium-small", "efficientbert"):
        assert name in out


def test_arch_show_prints_totals(monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, "arch", "show", "minilm-l6", "--seq", "64")
    spec = presets.get("minilm-l6")
    assert code == 0
    assert f"{cost.params(spec):,}" in out and f"{cost.flops(spec, 64):,}" in out
    assert "layer 5 ffn" in out


def test_arch_show_reads_spec_files_and_prints_json(monkeypatch, capsys, tmp_path):
    path = tmp_path / "s.yaml"
    presets.get("convbert-small").save(path)
    code, out, _ = run(monkeypatch, capsys, "arch", "show", str(path), "--format", "json")
    assert code == 0 and json.loads(out) == presets.get("convbert-small").to_dict()


def test_bench_writes_json(monkeypatch, capsys, tmp_path):
    out_file = tmp_path / "b.json"
    code, out, _ = run(
        monkeypatch,
        capsys,
        "bench",
        "bert-tiny",
        "--batch",
        "2",
        "--seq",
        "16",
        "--threads",
        "1",
        "--warmup",
        "1",
        "--repeats",
        "3",
        "--json",
        str(out_file),
    )
    assert code == 0 and "latency median" in out
    result = json.loads(out_file.read_text())
    assert result["batch"] == 2 and result["latency_s"]["repeats"] == 3
    assert result["latency_s"]["p10"] <= result["latency_s"]["median"] <= result["latency_s"]["p90"]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["arch", "show", "no-such-preset"], "'no-such-preset' is neither a preset"),
        (["arch", "show", "bert-mini", "--format", "xml"], "--format must be table, json or yaml"),
        (["bench", "bert-mini", "--batch", "0"], "--batch must be a positive integer, got 0"),
        (["bench", "bert-tiny", "--seq", "4096"], "--seq 4096 exceeds the model's max_positions (512)"),
        (["bench", "bert-tiny", "--device", "tpu"], "--device = 'tpu': expected one of cpu, cuda"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(monkeypatch, capsys, args, needle):
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 2
    assert err.strip().count("\n") == 0 and needle in err and "Traceback" not in err


@pytest.mark.parametrize(
    "content,needle",
    [
        ("hidden: [64\n", "bad.yaml: unreadable YAML at line 2"),
        (
            "hidden: 64\nlayers:\n - attention: {heads: 2, qk_dim: 8, v_dim: 8}\n   ffn: {size: -5}\n",
            "bad.yaml: layers[0].ffn.size = -5",
        ),
        (
            "hidden: 64\nlayers:\n - attention: {kind: sparse, heads: 2, qk_dim: 8, v_dim: 8}\n   ffn: {size: 5}\n",
            "bad.yaml: layers[0].attention.kind: unknown kind 'sparse'",
        ),
    ],
)
def test_bad_spec_files(monkeypatch, capsys, tmp_path, content, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    code, _, err = run(monkeypatch, capsys, "arch", "show", str(path))
    assert code == 2 and needle in err and err.strip().count("\n") == 0


def test_console_script_exit_code_and_debug_traceback(tmp_path):
    """The installed entry point: exit 2 and one line; --debug shows the traceback."""
    cmd = [sys.executable, "-m", "bertsmith.cli", "arch", "show", "nope"]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 2 and plain.stderr.startswith("error: ") and "Traceback" not in plain.stderr
    debug = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "SpecError" in debug.stderr


def _tiny_hf_checkpoint(path):
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(path)
    return cfg


def test_export_writes_a_stock_directory_and_onnx(monkeypatch, capsys, tmp_path):
    from bertsmith.hf import import_checkpoint

    _tiny_hf_checkpoint(tmp_path / "ckpt")
    code, out, err = run(
        monkeypatch, capsys, "export", str(tmp_path / "ckpt"), str(tmp_path / "out"), "--onnx", "--seq", "16"
    )
    assert code == 0, err
    assert "stock transformers bert" in out and (tmp_path / "out" / "model.onnx").is_file()
    diff = float(out.split("max abs diff ")[1].split(")")[0])
    assert diff <= 1e-4
    assert import_checkpoint(str(tmp_path / "out")).spec == import_checkpoint(str(tmp_path / "ckpt")).spec


def _export_files(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_export_refuses_an_onnx_file_that_differs_from_pytorch(monkeypatch, capsys, tmp_path):
    from bertsmith.hf import export_dir

    _tiny_hf_checkpoint(tmp_path / "ckpt")
    capsys.readouterr()  # transformers' progress bar
    monkeypatch.setattr(export_dir, "onnx_max_abs_diff", lambda *args, **kwargs: 0.25)
    out = tmp_path / "out"
    code, _, err = run(monkeypatch, capsys, "export", str(tmp_path / "ckpt"), str(out), "--onnx", "--seq", "16")
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err
    assert f"{out / 'model.onnx'}: " in err and "2.50e-01" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no export, no temporary directory

    monkeypatch.undo()
    code, _, err = run(monkeypatch, capsys, "export", str(tmp_path / "ckpt"), str(out))
    assert code == 0, err
    earlier = _export_files(out)
    monkeypatch.setattr(export_dir, "onnx_max_abs_diff", lambda *args, **kwargs: 0.25)
    code, _, err = run(monkeypatch, capsys, "export", str(tmp_path / "ckpt"), str(out), "--onnx", "--seq", "16")
    assert code == 2 and "2.50e-01" in err and err.strip().count("\n") == 0
    assert _export_files(out) == earlier and "model.onnx" not in earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "out"]


def test_an_interrupted_export_leaves_the_earlier_one_in_place(monkeypatch, capsys, tmp_path):
    from bertsmith.hf import export_dir

    _tiny_hf_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "out"
    code, _, err = run(monkeypatch, capsys, "export", str(tmp_path / "ckpt"), str(out))
    assert code == 0, err
    earlier = _export_files(out)

    def interrupted(model, path, **kwargs):
        path.write_bytes(b"half an ONNX file")
        raise KeyboardInterrupt

    monkeypatch.setattr(export_dir, "export_onnx", interrupted)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        monkeypatch.setattr(sys, "argv", ["bertsmith", "export", str(tmp_path / "ckpt"), str(out), "--onnx"])
        main()
    assert _export_files(out) == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "out"]


def test_export_of_a_missing_checkpoint_exits_2(monkeypatch, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run(monkeypatch, capsys, "export", str(tmp_path / "empty"), str(tmp_path / "out"))
    assert code == 2 and "config.json" in err and err.strip().count("\n") == 0


@pytest.mark.slow
def test_bench_onnxruntime_backend(monkeypatch, capsys, tmp_path):
    out_file = tmp_path / "b.json"
    code, out, err = run(
        monkeypatch,
        capsys,
        "bench",
        "bert-tiny",
        "--seq",
        "16",
        "--backend",
        "onnxruntime",
        "--warmup",
        "1",
        "--repeats",
        "3",
        "--json",
        str(out_file),
    )
    assert code == 0, err
    assert json.loads(out_file.read_text())["backend"] == "onnxruntime"
