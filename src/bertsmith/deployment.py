"""What a deployed student costs and scores: the int8 ONNX file's metrics against the fp32 model's,
and the latency of the teacher and the student in PyTorch and in ONNX Runtime (fp32 and int8),
measured in one process, interleaved, at batch 1 and 32.

``recommend`` keeps the int8 file only when it loses at most ``max_drop`` points of the task's main
metric on every labelled split; otherwise the fp32 ``model.onnx`` is the recommended file, with the reason.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from .distill.task import evaluate
from .hf import import_checkpoint
from .latency import random_batch, time_calls

ARMS = {
    "teacher_torch": "teacher, PyTorch fp32",
    "student_torch": "student, PyTorch fp32",
    "student_onnx": "student, ONNX Runtime fp32",
    "student_int8": "student, ONNX Runtime int8",
}
BATCHES = (1, 32)
FP32_FILE, INT8_FILE = "model.onnx", "model.int8.onnx"


def assess(
    directory: Path,
    teacher: torch.nn.Module,
    data,
    torch_metrics: dict[str, dict[str, float]],
    metric: str,
    *,
    max_drop: float,
    seq_len: int,
    rounds: int = 3,
) -> dict:
    """The export in ``directory`` (``model.onnx`` and ``model.int8.onnx``) scored on ``data``'s
    labelled dev and test splits by the run's own evaluation code, against the PyTorch model's
    ``torch_metrics``; the recommended file (``recommend``); and the four latencies next to the
    ``teacher`` (``measure_latencies``)."""
    from .hf.deploy import OnnxClassifier  # ONNX's packages (slow to import): only to assess the ONNX files

    splits = [split for split in ("dev", "test") if data.labeled(split)]
    metrics = {"torch": {split: torch_metrics[split] for split in splits}}
    for name, file in (("onnx", FP32_FILE), ("int8", INT8_FILE)):
        model = OnnxClassifier(directory / file)
        metrics[name] = {"dev": evaluate(model, data, "dev")} if "dev" in splits else {}
        if "test" in splits:
            metrics[name]["test"] = evaluate(model, data, "test", dev=metrics[name].get("dev"))
    verdict = recommend(metrics["torch"], metrics["int8"], metric, max_drop)
    latency = measure_latencies(teacher, import_checkpoint(directory).model, directory, seq_len=seq_len, rounds=rounds)
    return {
        **verdict,
        "metrics": metrics,
        "latency_ms": latency,
        "seq_len": seq_len,
        "threads": torch.get_num_threads(),
        "rounds": rounds,
    }


def measure_latencies(
    teacher: torch.nn.Module,
    student: torch.nn.Module,
    directory: Path,
    *,
    seq_len: int,
    batches: tuple[int, ...] = BATCHES,
    rounds: int = 3,
) -> dict[str, dict[str, float]]:
    """Median milliseconds per call of each of ``ARMS`` at each batch size and ``seq_len`` tokens:
    rounds of every arm in turn (so a burst of CPU steal hits them alike), medians over the rounds.
    ONNX Runtime gets as many threads as PyTorch uses."""
    from .hf.deploy import feed, session  # ONNX's packages (slow to import): only to time the ONNX files

    threads = torch.get_num_threads()
    vocab = min(m.encoder.spec.embeddings.vocab_size for m in (teacher, student))
    sessions = {
        "student_onnx": session(directory / FP32_FILE, threads=threads),
        "student_int8": session(directory / INT8_FILE, threads=threads),
    }
    teacher.eval(), student.eval()
    out = {}
    for batch in batches:
        inputs = random_batch(vocab, batch, seq_len)
        calls = {
            "teacher_torch": _torch_call(teacher, inputs),
            "student_torch": _torch_call(student, inputs),
            **{name: _onnx_call(s, feed(s, inputs)) for name, s in sessions.items()},
        }
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(rounds):
            for name, call in calls.items():
                timing = time_calls(call, warmup=2 if batch == 1 else 1, repeats=10 if batch == 1 else 3)
                samples[name].append(timing.median * 1e3)
        out[f"batch {batch}"] = {name: statistics.median(ms) for name, ms in samples.items()}
    return out


def _torch_call(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> Callable[[], object]:
    def call() -> object:
        with torch.inference_mode():
            return model(**inputs)

    return call


def _onnx_call(ort_session, feeds: dict) -> Callable[[], object]:
    return lambda: ort_session.run(None, feeds)


def recommend(
    fp32: dict[str, dict[str, float]], int8: dict[str, dict[str, float]], metric: str, max_drop: float
) -> dict:
    """Which file to deploy: ``model.int8.onnx`` when it is within ``max_drop`` points of the fp32
    model's ``metric`` on every split, else ``model.onnx``; with the per-split change and the reason."""
    change = {split: 100 * (int8[split][metric] - fp32[split][metric]) for split in fp32 if split in int8}
    worst = min(change, key=change.get)
    if change[worst] >= -max_drop:
        file, reason = (
            INT8_FILE,
            (
                f"int8 is within {max_drop:g} points of fp32 on {metric} "
                f"({', '.join(f'{s} {d:+.2f}' for s, d in change.items())})"
            ),
        )
    else:
        file, reason = (
            FP32_FILE,
            (
                f"int8 loses {-change[worst]:.2f} points of {worst} {metric} against fp32, more "
                f"than export.int8_max_drop ({max_drop:g}); deploy the fp32 model.onnx"
            ),
        )
    return {"recommended": file, "reason": reason, "change_points": change}


def latency_table(latency: dict[str, dict[str, float]]) -> list[tuple[str, list[str]]]:
    """Rows (arm description, ["ms (speed-up over the teacher)" per batch]) for cards and reports."""
    rows = []
    for arm, label in ARMS.items():
        cells = [f"{ms[arm]:.2f} ms ({ms['teacher_torch'] / ms[arm]:.2f}×)" for ms in latency.values()]
        rows.append((label, cells))
    return rows
