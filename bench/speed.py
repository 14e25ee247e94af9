"""Encoder speed: bertsmith vs transformers' BertModel, same config, one process, this CPU.

    /tmp/venv/bin/python bench/speed.py            # bert-mini and minilm-l6, everything (~4-8 min)
    /tmp/venv/bin/python bench/speed.py --quick    # bert-mini, fewer repeats, no torch.compile (~1 min)

For each preset it builds transformers' ``BertForSequenceClassification`` (fp32, its default
attention implementation, recorded in the output) and ``BertsmithForSequenceClassification`` from
the same spec, copies the transformers weights into ours (so both compute the same function; the
largest logit difference in eval mode is printed) and times, with the same number of threads:

* train 32x128: forward, cross-entropy, backward and a fused AdamW step (transformers' Trainer
  default optimizer for torch >= 2.8), train mode with dropout;
* infer 32x128 and infer 1x128: eval mode under ``torch.inference_mode``.

Variants: transformers eager; ours eager; ours through ``bertsmith.modeling.fast.compile_model``
(torch.compile; the first call, which compiles, is reported separately and not timed); ours in
ONNX Runtime (inference; exported by ``bertsmith.hf.export_onnx``); and, as a reference
that separates the runtime from the model, transformers in ONNX Runtime. Training runs restore the
initial weights afterwards, so inference compares identical weights too.

Timing on a shared 2-core machine: the calls of all variants of a task are interleaved (A, B, C,
A, B, C, ...; the order reversed every other round) so that noise from other processes hits them
alike, and each figure is the median. A round starts once the CPUs are idle (waiting at most 2 s
per round, 90 s per run), and every call follows an untimed 3 ms pause with ONNX Runtime's
spin-waiting turned off, so that one variant's idle worker threads do not slow the next one.

It also measures this machine's fp32 matmul peak (square matmuls, best of several) and reports the
achieved GFLOP/s of a training step (3 x forward FLOPs from ``bertsmith.cost.flops`` x batch) as a
fraction of it, and, per inference task, the time the model's linear layers take when each is run
alone on an input of its shape (the GEMM part of the pass, a floor for eager code). Results: a
table on stdout and ``bench/results/speed.json`` (``speed-quick.json`` with ``--quick``; written
atomically).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
try:
    import bertsmith  # noqa: F401
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(ROOT / "src"))

from bertsmith import cost, presets  # noqa: E402
from bertsmith.modeling import BertsmithForSequenceClassification  # noqa: E402
from bertsmith.hf import export_onnx as project_export_onnx  # noqa: E402
from bertsmith.hf.export import quiet_exporter  # noqa: E402
from bertsmith.modeling.fast import compile_model  # noqa: E402

THREADS = 2
SEQ = 128
TRAIN_BATCH = 32
NUM_LABELS = 2
SETTLE = 0.003  # seconds of pause (untimed) before each timed call
VOCAB = 30522


# ---- models ---------------------------------------------------------------------------------
def hf_model(spec):
    from transformers import BertConfig, BertForSequenceClassification

    layer = spec.layers[0]
    config = BertConfig(
        vocab_size=spec.embeddings.vocab_size,
        hidden_size=spec.hidden,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=layer.attention.heads,
        intermediate_size=layer.ffn.size,
        hidden_act="gelu",
        hidden_dropout_prob=spec.hidden_dropout,
        attention_probs_dropout_prob=spec.attention_dropout,
        max_position_embeddings=spec.embeddings.max_positions,
        type_vocab_size=spec.embeddings.type_vocab_size,
        layer_norm_eps=spec.layer_norm_eps,
        num_labels=NUM_LABELS,
    )
    return BertForSequenceClassification(config)


@torch.no_grad()
def copy_hf_weights(hf, ours) -> None:
    """transformers BERT weights into our modules (query/key/value rows concatenated into qkv)."""
    sd = hf.state_dict()
    enc = ours.encoder
    pairs = {
        enc.embeddings.word.weight: "bert.embeddings.word_embeddings.weight",
        enc.embeddings.position.weight: "bert.embeddings.position_embeddings.weight",
        enc.embeddings.token_type.weight: "bert.embeddings.token_type_embeddings.weight",
        enc.embeddings.norm.weight: "bert.embeddings.LayerNorm.weight",
        enc.embeddings.norm.bias: "bert.embeddings.LayerNorm.bias",
        enc.pooler.weight: "bert.pooler.dense.weight",
        enc.pooler.bias: "bert.pooler.dense.bias",
        ours.head.out.weight: "classifier.weight",
        ours.head.out.bias: "classifier.bias",
    }
    for i, layer in enumerate(enc.layers):
        p = f"bert.encoder.layer.{i}."
        att, ffn = layer.attention, layer.ffn
        for kind in ("weight", "bias"):
            att.qkv.get_parameter(kind).copy_(
                torch.cat([sd[f"{p}attention.self.{n}.{kind}"] for n in ("query", "key", "value")])
            )
            pairs[att.out.get_parameter(kind)] = f"{p}attention.output.dense.{kind}"
            pairs[att.norm.get_parameter(kind)] = f"{p}attention.output.LayerNorm.{kind}"
            pairs[ffn.up.get_parameter(kind)] = f"{p}intermediate.dense.{kind}"
            pairs[ffn.down.get_parameter(kind)] = f"{p}output.dense.{kind}"
            pairs[ffn.norm.get_parameter(kind)] = f"{p}output.LayerNorm.{kind}"
    for param, key in pairs.items():
        param.copy_(sd[key])


class LogitsOnly(torch.nn.Module):
    """Wraps a classifier so that it returns only the logits tensor (for ONNX export)."""

    def __init__(self, model, is_hf: bool):
        super().__init__()
        self.model, self.is_hf = model, is_hf

    def forward(self, input_ids, attention_mask):
        if self.is_hf:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return self.model(input_ids, attention_mask)[0]


def export_onnx(model, is_hf: bool, path: Path) -> tuple[float, str]:
    """Export ``model`` (eval) with dynamic batch and sequence axes; returns (seconds, exporter).

    Ours goes through the project's exporter ``bertsmith.hf.export_onnx``; transformers through
    ``torch.onnx.export(dynamo=True)`` with the same axes.
    """
    start = time.perf_counter()
    if not is_hf:
        project_export_onnx(model, path, seq_len=SEQ)
        return time.perf_counter() - start, "bertsmith.hf.export_onnx"
    ids = torch.randint(5, VOCAB, (2, SEQ))
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=512)
    dynamic = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    was_training = model.training
    model.eval()
    try:
        with quiet_exporter():
            torch.onnx.export(
                LogitsOnly(model, is_hf),
                (ids, torch.ones_like(ids)),
                str(path),
                input_names=["input_ids", "attention_mask"],
                output_names=["logits"],
                dynamic_shapes=dynamic,
                dynamo=True,
                verbose=False,
            )
    finally:
        model.train(was_training)
    return time.perf_counter() - start, "torch.onnx.export(dynamo=True)"


def ort_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ORT's pool spin-waits after each run by default, which would slow the torch call that follows
    # it in the interleaved loop; torch's OpenMP threads likewise get a pause (see ``interleaved``).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


# ---- timing ---------------------------------------------------------------------------------
def cpu_idle_fraction(window: float = 0.2) -> float | None:
    """Share of the machine's CPU time spent idle over ``window`` seconds (None off Linux)."""

    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)

    try:
        i0, t0 = read()
        time.sleep(window)
        i1, t1 = read()
    except OSError:
        return None
    return (i1 - i0) / max(1, t1 - t0)


IDLE_WAIT_BUDGET = [90.0]  # seconds the whole run may spend waiting for idle CPUs


def wait_for_idle(max_wait: float) -> None:
    """Wait (at most ``max_wait`` s, and within the run's budget) until other processes leave the
    CPUs idle: a round of timings then runs undisturbed more often. The machine is shared; this
    reduces noise, not bias (all variants of a round share the wait)."""
    start = time.perf_counter()
    deadline = start + min(max_wait, IDLE_WAIT_BUDGET[0])
    while time.perf_counter() < deadline:
        idle = cpu_idle_fraction()
        if idle is None or idle >= 0.85:
            break
    IDLE_WAIT_BUDGET[0] = max(0.0, IDLE_WAIT_BUDGET[0] - (time.perf_counter() - start))


def interleaved(fns: dict, rounds: int, warmup: int = 1, idle_wait: float = 2.0, idle_every: int = 1) -> dict:
    """Median, p10 and p90 seconds per call of each function, their calls interleaved; every
    ``idle_every`` rounds, the next round starts once the CPUs are idle (or after ``idle_wait`` s)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        if r % idle_every == 0:
            wait_for_idle(idle_wait)
        for name in names if r % 2 == 0 else names[::-1]:
            time.sleep(SETTLE)  # lets the previous variant's worker threads stop spinning
            start = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - start)
    out = {}
    for name, s in samples.items():
        s.sort()
        q = statistics.quantiles(s, n=10, method="inclusive") if len(s) >= 2 else [s[0]] * 9
        out[name] = {"median": statistics.median(s), "p10": q[0], "p90": q[-1], "n": len(s)}
    return out


def linear_floor(model, ids, mask, tries: int = 5) -> float:
    """Seconds that the ``nn.Linear`` layers of one eval forward of ``model`` take when each is
    timed alone on an input of its shape (best of ``tries``): the matmul part of the pass, which
    no change outside the GEMM kernels can remove."""
    calls = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: calls.append((mod, inp[0].shape)))
        for m in model.modules()
        if isinstance(m, torch.nn.Linear)
    ]
    try:
        with torch.inference_mode():
            model(ids, mask)
    finally:
        for h in hooks:
            h.remove()
    total = 0.0
    with torch.inference_mode():
        for mod, shape in calls:
            x = torch.randn(shape)
            mod(x)
            total += min(_timed(lambda: mod(x)) for _ in range(tries))
    return total


def matmul_peak(sizes=(512, 1024, 1536, 2048), tries: int = 8) -> dict:
    """Best fp32 GFLOP/s of square matmuls (best of ``tries``: the least disturbed run)."""
    best = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        t = min(_timed(lambda: a @ b) for _ in range(tries))
        best[n] = 2 * n**3 / t / 1e9
    return {"gflops": max(best.values()), "by_size": {str(k): round(v, 1) for k, v in best.items()}}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def train_step(model, is_hf: bool, batch):
    ids, mask, labels = batch
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

    def step():
        logits = model(input_ids=ids, attention_mask=mask).logits if is_hf else model(ids, mask)[0]
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def infer_call(model, is_hf: bool, ids, mask):
    def call():
        with torch.inference_mode():
            if is_hf:
                model(input_ids=ids, attention_mask=mask)
            else:
                model(ids, mask)

    return call


# ---- the benchmark --------------------------------------------------------------------------
def bench_model(name: str, args, tmp: Path, log) -> dict:
    torch.manual_seed(0)
    spec = presets.get(name)
    hf = hf_model(spec)
    ours = BertsmithForSequenceClassification(spec, NUM_LABELS)
    copy_hf_weights(hf, ours)
    result = {"spec": spec.summary(), "hf_attn_implementation": hf.config._attn_implementation, "tasks": {}}

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, VOCAB, (TRAIN_BATCH, SEQ), generator=g)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, NUM_LABELS, (TRAIN_BATCH,), generator=g)

    # Same function? (eval, with one padded row so that the mask path runs too)
    check_mask = mask[:4].clone()
    check_mask[1, 100:] = 0
    hf.eval(), ours.eval()
    with torch.inference_mode():
        diff = (hf(input_ids=ids[:4], attention_mask=check_mask).logits - ours(ids[:4], check_mask)[0]).abs().max()
    result["max_abs_logit_diff"] = float(diff)
    log(
        f"\n== {name}: {spec.summary()} | transformers attention: {result['hf_attn_implementation']} "
        f"| max |Δlogits| vs transformers (eval, same weights): {float(diff):.2e}"
    )

    # -- training step ---------------------------------------------------------------------
    initial = copy.deepcopy(hf.state_dict()), copy.deepcopy(ours.state_dict())
    hf.train(), ours.train()
    batch = (ids, mask, labels)
    variants = {"transformers": train_step(hf, True, batch), "ours": train_step(ours, False, batch)}
    compile_s = {}
    if args.compile:
        ours_c = copy.deepcopy(ours).train()
        step = train_step(compile_model(ours_c), False, batch)
        compile_s["train"] = _timed(step)
        variants["ours+compile"] = step
    log(
        f"  train {TRAIN_BATCH}x{SEQ}: timing {', '.join(variants)}"
        + (f" (compile {compile_s['train']:.0f}s)" if compile_s else "")
    )
    result["tasks"][f"train {TRAIN_BATCH}x{SEQ}"] = interleaved(variants, args.train_rounds, warmup=2)

    # -- inference -------------------------------------------------------------------------
    hf.load_state_dict(initial[0]), ours.load_state_dict(initial[1])  # the same weights again
    hf.eval(), ours.eval()
    ours_i = copy.deepcopy(ours).eval() if args.compile else None
    compiled_i = compile_model(ours_i, inference=True) if args.compile else None
    sessions = {}
    if args.onnx:
        for label, model, is_hf in (("ours+onnxruntime", ours, False), ("transformers+onnxruntime", hf, True)):
            path = tmp / f"{name}-{'hf' if is_hf else 'ours'}.onnx"
            seconds, exporter = export_onnx(model, is_hf, path)
            result.setdefault("onnx_export", {})[label] = {"seconds": round(seconds, 1), "exporter": exporter}
            sessions[label] = ort_session(path)
    for b in (TRAIN_BATCH, 1):
        x, m = ids[:b].contiguous(), mask[:b].contiguous()
        variants = {"transformers": infer_call(hf, True, x, m), "ours": infer_call(ours, False, x, m)}
        if args.compile:
            call = infer_call(compiled_i, False, x, m)
            compile_s[f"infer {b}x{SEQ}"] = _timed(call)
            variants["ours+compile"] = call
        feeds = {"input_ids": x.numpy(), "attention_mask": m.numpy()}
        with torch.inference_mode():
            refs = {
                "ours+onnxruntime": ours(x, m)[0].numpy(),
                "transformers+onnxruntime": hf(input_ids=x, attention_mask=m).logits.numpy(),
            }
        for label, sess in sessions.items():  # each runtime against its own eager model
            diff = float(abs(sess.run(None, feeds)[0] - refs[label]).max())
            result.setdefault("onnx_max_abs_logit_diff_vs_eager", {})[f"{label} {b}x{SEQ}"] = diff
            variants[label] = lambda s=sess: s.run(None, feeds)
        task = f"infer {b}x{SEQ}"
        log(f"  {task}: timing {', '.join(variants)}")
        rounds = args.infer_rounds if b > 1 else args.infer_rounds * 8
        result["tasks"][task] = interleaved(variants, rounds, warmup=2 if b > 1 else 5, idle_every=1 if b > 1 else 4)
        result.setdefault("linear_layers_alone", {})[task] = linear_floor(ours, x, m)
    result["compile_seconds"] = {k: round(v, 1) for k, v in compile_s.items()}

    # -- ratios and the training step's share of the matmul peak ---------------------------
    for task in result["tasks"].values():
        base = task["transformers"]["median"]
        for v in task.values():
            v["speedup_vs_transformers"] = base / v["median"]
    train_flops = 3 * cost.flops(spec, SEQ) * TRAIN_BATCH
    result["train_step_flops"] = train_flops
    result["train_gflops"] = {
        k: train_flops / v["median"] / 1e9 for k, v in result["tasks"][f"train {TRAIN_BATCH}x{SEQ}"].items()
    }
    return result


def table(results: dict, peak: float) -> str:
    lines = [f"{'model':<10} {'task':<14} {'variant':<25} {'median s':>10} {'p10-p90 s':>17} {'transformers/this':>18}"]
    for name, r in results.items():
        for task, variants in r["tasks"].items():
            for variant, v in variants.items():
                lines.append(
                    f"{name:<10} {task:<14} {variant:<25} {v['median']:>10.4f} "
                    f"{v['p10']:>8.4f}-{v['p90']:<8.4f} {v['speedup_vs_transformers']:>17.2f}x"
                )
        for variant, gf in r["train_gflops"].items():
            lines.append(
                f"{name:<10} {'train GFLOP/s':<14} {variant:<25} {gf:>10.1f}   "
                f"= {100 * gf / peak:.0f}% of the {peak:.0f} GFLOP/s matmul peak"
            )
        for task, seconds in r.get("linear_layers_alone", {}).items():
            hf = r["tasks"][task]["transformers"]["median"]
            lines.append(
                f"{name:<10} {task:<14} {'linear layers alone':<25} {seconds:>10.4f}   "
                f"= {100 * seconds / hf:.0f}% of the transformers pass"
            )
    return "\n".join(lines)


def targets(results: dict) -> dict:
    """The issue's targets: >= 1.5x a transformers training step, >= 2x at batch-1 inference (best
    of our variants)."""
    out = {}
    for name, r in results.items():
        for task, goal in ((f"train {TRAIN_BATCH}x{SEQ}", 1.5), (f"infer 1x{SEQ}", 2.0)):
            ours = {k: v["speedup_vs_transformers"] for k, v in r["tasks"][task].items() if k.startswith("ours")}
            best = max(ours, key=ours.get)
            out[f"{name} {task}"] = {
                "goal": goal,
                "best_variant": best,
                "speedup": ours[best],
                "eager_speedup": ours["ours"],
                "met": ours[best] >= goal,
            }
    return out


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="bert-mini only, few repeats, no torch.compile (~1 min)")
    ap.add_argument("--models", default=None, help="comma-separated BERT-shaped presets (default bert-mini,minilm-l6)")
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile variant")
    ap.add_argument("--no-onnx", dest="onnx", action="store_false", help="skip the ONNX Runtime variants")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON results (default bench/results/speed.json, speed-quick.json with --quick)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.compile = False
    if args.out is None:
        args.out = ROOT / "bench" / "results" / ("speed-quick.json" if args.quick else "speed.json")
    args.models = (args.models or ("bert-mini" if args.quick else "bert-mini,minilm-l6")).split(",")
    args.train_rounds = 3 if args.quick else 7
    args.infer_rounds = 3 if args.quick else 8

    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    log = lambda s: print(s, flush=True)  # noqa: E731
    import onnxruntime
    import transformers

    log(
        f"torch {torch.__version__}, transformers {transformers.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"{THREADS} threads of {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
    )
    peak = matmul_peak(tries=3 if args.quick else 8)
    log(f"fp32 matmul peak: {peak['gflops']:.0f} GFLOP/s (best square matmul: {peak['by_size']})")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            results[name] = bench_model(name, args, Path(tmp), log)
    if not args.quick:  # measured again at the end: the best of both is the least disturbed
        again = matmul_peak(tries=8)
        if again["gflops"] > peak["gflops"]:
            peak = again
    for r in results.values():
        r["train_peak_fraction"] = {k: v / peak["gflops"] for k, v in r["train_gflops"].items()}
    log("\n" + table(results, peak["gflops"]))
    goals = targets(results)
    for key, t in goals.items():
        log(
            f"target {key}: >= {t['goal']}x -> best {t['best_variant']} {t['speedup']:.2f}x "
            f"(eager {t['eager_speedup']:.2f}x): {'met' if t['met'] else 'NOT met'}"
        )
    data = {
        "command": "python bench/speed.py" + (" --quick" if args.quick else ""),
        "machine": {
            "cpus": os.cpu_count(),
            "threads": THREADS,
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(),
        },
        "seq_len": SEQ,
        "train_batch": TRAIN_BATCH,
        "optimizer": "torch.optim.AdamW(fused=True)",
        "matmul_peak": peak,
        "targets": goals,
        "models": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(args.out, data)
    log(f"\nwrote {args.out} ({data['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
