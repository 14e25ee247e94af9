"""``bertsmith predict`` (``bertsmith.inference``): labels from the export's own label map, PyTorch and
ONNX Runtime backends, streamed files, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_cli import run


@pytest.fixture(scope="module")
def exported(tmp_path_factory, teacher_dir) -> Path:
    """The tiny task teacher re-exported with model.onnx and model.int8.onnx."""
    from bertsmith.hf import export_onnx, export_pretrained, import_checkpoint
    from bertsmith.hf.deploy import quantize_onnx

    out = tmp_path_factory.mktemp("predict") / "model"
    imported = import_checkpoint(teacher_dir)
    export_pretrained(imported, out, tokenizer_dir=teacher_dir)
    export_onnx(imported.model, out / "model.onnx", seq_len=16)
    quantize_onnx(out / "model.onnx", out / "model.int8.onnx")
    return out


def _rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_export_quantize_writes_the_int8_file_beside_model_onnx(teacher_dir, tmp_path, monkeypatch, capsys):
    code, out, err = run(
        monkeypatch, capsys, "export", str(teacher_dir), str(tmp_path / "out"), "--quantize", "int8", "--seq", "16"
    )
    assert code == 0, err
    assert {"model.onnx", "model.int8.onnx", "config.json"} <= {p.name for p in (tmp_path / "out").iterdir()}
    assert "model.int8.onnx (max abs diff" in out


def test_texts_get_the_task_s_labels_and_probabilities(teacher_dir, monkeypatch, capsys):
    code, out, err = run(
        monkeypatch, capsys, "predict", str(teacher_dir), "--text", "good fun", "--text", "a dull film"
    )
    assert code == 0, err
    rows = _rows(out)
    assert len(rows) == 2
    for row in rows:
        assert set(row["scores"]) == {"0", "1"} and row["label"] in {"0", "1"}  # the task's labels, not LABEL_0
        assert row["score"] == max(row["scores"].values()) and sum(row["scores"].values()) == pytest.approx(1)


def test_a_file_streams_to_csv_and_the_backends_agree(exported, tmp_path, monkeypatch, capsys, task_file):
    source = task_file.parent / "dev.csv"
    rows = len(source.read_text().splitlines()) - 1
    results = {}
    for backend, onnx_file in (
        ("torch", "model.onnx"),
        ("onnxruntime", "model.onnx"),
        ("onnxruntime", "model.int8.onnx"),
    ):
        out = tmp_path / f"{backend}-{onnx_file}.jsonl"
        code, stdout, err = run(
            monkeypatch,
            capsys,
            "predict",
            str(exported),
            "--file",
            str(source),
            "--out",
            str(out),
            "--backend",
            backend,
            "--onnx-file",
            onnx_file,
            "--batch-size",
            "7",
            "--quiet",
        )
        assert code == 0, err
        assert f"({rows:,} predictions)" in stdout
        results[(backend, onnx_file)] = _rows(out.read_text())
        assert len(results[(backend, onnx_file)]) == rows
    torch_rows, onnx_rows = results[("torch", "model.onnx")], results[("onnxruntime", "model.onnx")]
    assert all(
        a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-4)
        for a, b in zip(torch_rows, onnx_rows)
    )
    int8 = results[("onnxruntime", "model.int8.onnx")]
    assert sum(a["label"] == b["label"] for a, b in zip(torch_rows, int8)) >= 0.9 * rows
    csv_out = tmp_path / "out.csv"
    code, _, err = run(
        monkeypatch, capsys, "predict", str(exported), "--file", str(source), "--out", str(csv_out), "--quiet"
    )
    assert code == 0, err
    lines = csv_out.read_text().splitlines()
    assert lines[0] == "label,score,p_0,p_1" and len(lines) == rows + 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no scratch files


def _fails(monkeypatch, capsys, *args) -> str:
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_bad_input_exits_2_naming_the_file_and_leaves_no_output(exported, teacher_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.jsonl"
    missing = tmp_path / "missing.csv"
    missing.write_text("review,label\ngood,1\n")
    assert "no text column found among ['review', 'label']; name it with --text-column" in _fails(
        monkeypatch, capsys, "predict", str(exported), "--file", str(missing), "--out", str(out)
    )
    assert "no column 'body'" in _fails(
        monkeypatch, capsys, "predict", str(exported), "--file", str(missing), "--text-column", "body"
    )
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert str(empty) in _fails(monkeypatch, capsys, "predict", str(exported), "--file", str(empty), "--out", str(out))
    latin = tmp_path / "latin.csv"
    lines = ["text"] + ["fine words"] * 40 + ["caf\xe9 au lait"]  # the bad row comes after whole batches were written
    latin.write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    err = _fails(
        monkeypatch,
        capsys,
        "predict",
        str(exported),
        "--file",
        str(latin),
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--quiet",
    )
    assert f"{latin}, line 42: not UTF-8" in err
    assert not out.exists() and not list(tmp_path.glob(".*partial"))  # nothing that looks complete
    assert "bertsmith export" in _fails(
        monkeypatch, capsys, "predict", str(teacher_dir), "--text", "x", "--backend", "onnxruntime"
    )
    assert "unknown backend 'tf'" in _fails(
        monkeypatch, capsys, "predict", str(exported), "--text", "x", "--backend", "tf"
    )
    assert "1 --text-pair for 2 --text" in _fails(
        monkeypatch, capsys, "predict", str(exported), "--text", "a", "--text", "b", "--text-pair", "c"
    )
    assert "unknown output format" in _fails(
        monkeypatch, capsys, "predict", str(exported), "--text", "a", "--out", str(tmp_path / "out.parquet")
    )
    assert "unknown quantization scheme 'int4'" in _fails(
        monkeypatch, capsys, "export", str(teacher_dir), str(tmp_path / "x"), "--quantize", "int4"
    )
