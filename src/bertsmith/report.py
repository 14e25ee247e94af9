"""The run's report: ``results.json`` (every figure), ``pareto.png`` (metric against parameters and
against latency) and one self-contained ``report.html`` (the plot embedded), rendered from the
stages' outputs and the search's trials (``rundir``: where they are and what they hold).
``rebuild_report(run_dir)`` builds them again from a run directory (``bertsmith report``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import platform
import statistics
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from .deployment import latency_table
from .errors import ConfigError
from .files import atomic_file, atomic_write_text
from .quality import judge
from .rundir import (
    CONFIG,
    FRONT,
    PAGE,
    PLOT,
    RESULTS,
    ExportOutputs,
    FinalistEntry,
    FinalistsOutputs,
    SearchOutputs,
    TeacherOutputs,
    read_outputs,
    read_timings,
    read_trials,
)
from .runconfig import RunConfig, load_config
from .search.budget import parse_count, parse_ms

PACKAGES = ("bertsmith", "torch", "transformers", "optuna", "onnxruntime", "numpy", "accelerate")


def rebuild_report(run_dir: Path) -> dict:
    """The report of a run directory whose stages are complete."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise ConfigError(f"{run_dir}: not a bertsmith run directory (no {CONFIG})")
    return write_report(
        run_dir,
        config=load_config(run_dir / CONFIG),
        teacher=read_outputs(run_dir, "teacher", TeacherOutputs),
        search=read_outputs(run_dir, "search", SearchOutputs),
        finalists=read_outputs(run_dir, "finalists", FinalistsOutputs),
        export=read_outputs(run_dir, "export", ExportOutputs),
        timings=read_timings(run_dir),
    )


def write_report(
    run_dir: Path,
    *,
    config: RunConfig,
    teacher: TeacherOutputs,
    search: SearchOutputs,
    finalists: FinalistsOutputs,
    export: ExportOutputs,
    timings: dict[str, float],
    quality: dict | None = None,
) -> dict:
    """Write results.json, pareto.json, pareto.png and report.html; returns the results. ``quality``:
    the quality gate's verdict (judged here when not given)."""
    run_dir = Path(run_dir)
    metric = search.metric
    chosen = finalists.chosen_entry()
    entries = [e.dump() for e in finalists.entries]
    if quality is None:
        quality = judge(
            chosen.dump(),
            entries,
            teacher.dump(),
            teacher.constant,
            metric,
            max_drop=config.quality.max_drop,
            margin=config.quality.constant_margin,
        ).to_dict()
    front = {p.trial for p in search.front}
    trials = [t.model_copy(update={"on_front": t.trial in front}) for t in read_trials(run_dir, metric)]
    results = {
        "task": config.task,
        "metric": metric,
        "seed": config.seed,
        "config": config.model_dump(mode="json"),
        "budget": search.budget,
        "teacher": teacher.dump() | {"latency_ms": finalists.teacher_latency_ms},
        "chosen": chosen.dump() | {"versus_teacher": versus(chosen, teacher, finalists.teacher_latency_ms, metric)},
        "finalists": entries,
        "quality": quality,
        "pareto": honest_front(search, finalists.entries, metric),
        "search": search.model_dump(
            mode="json",
            include={"evaluated", "infeasible", "duplicates", "failed", "stopped", "objectives", "evaluator", "front"},
        )
        | {"trials": [t.model_dump(mode="json") for t in trials]},
        "export": export.dump(),
        "data": chosen.data,
        "versions": versions(),
        "timings": timings | {"total": sum(v for k, v in timings.items() if k != "total")} if timings else {},
    }
    atomic_write_text(run_dir / RESULTS, json.dumps(results, indent=1, default=str) + "\n")
    atomic_write_text(run_dir / FRONT, json.dumps(results["pareto"], indent=1) + "\n")
    png = plot(results)
    with atomic_file(run_dir / PLOT) as tmp:
        tmp.write_bytes(png)
    atomic_write_text(run_dir / PAGE, page(results, png))
    return results


def honest_front(search: SearchOutputs, entries: list[FinalistEntry], metric: str) -> dict:
    """The front as the user should read it: each point's search score is marked as a proxy (the
    search's evaluator, not a distillation), next to its distilled dev score where it was distilled as
    a finalist, and a calibrated estimate (the search score plus the mean distilled-minus-proxy offset
    of the distilled front points; its error is their spread, unknown from fewer than two). The
    distilled finalists and baselines follow as points of their own."""
    distilled = {e.trial: e for e in entries if e.kind == "finalist"}
    offsets = [e.metrics["dev"][metric] - e.search_value for e in distilled.values()]
    offset = statistics.fmean(offsets) if offsets else None
    error = statistics.stdev(offsets) if len(offsets) > 1 else None
    front = []
    for p in search.front:
        e = distilled.get(p.trial)
        front.append(
            {
                "trial": p.trial,
                "summary": p.summary,
                "costs": p.costs,
                "search_score": p.values[0],
                "score": "proxy",
                "evaluator": search.evaluator,
                "distilled_dev": e.metrics["dev"][metric] if e else None,
                "estimate": None if offset is None else p.values[0] + offset,
                "estimate_error": error,
            }
        )
    return {
        "metric": metric,
        "evaluator": search.evaluator,
        "calibration": {"offset": offset, "error": error, "points": len(offsets)},
        "front": front,
        "distilled": [
            {
                "name": e.name,
                "kind": e.kind,
                "summary": e.summary,
                "params": e.params,
                "latency_ms": e.latency_ms,
                "score": "distilled",
                "metrics": e.metrics,
            }
            for e in entries
        ],
    }


def versus(model: FinalistEntry, teacher: TeacherOutputs, teacher_latency_ms: float, metric: str) -> dict:
    """Ratios against the teacher (its latency measured next to the model's) and the metric
    differences in points (teacher minus model)."""
    out = {
        "params_ratio": teacher.params / model.params,
        "flops_ratio": teacher.flops / model.flops,
        "speedup": teacher_latency_ms / model.latency_ms,
    }
    for split in ("dev", "test"):
        if split in model.metrics and split in teacher.metrics:
            out[f"{split}_drop_points"] = 100 * (teacher.metrics[split][metric] - model.metrics[split][metric])
    return out


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# ---- the plot --------------------------------------------------------------------------------------
def plot(results: dict) -> bytes:
    """Two panels, metric against non-embedding parameters and against measured latency: every
    evaluated architecture (its search score), the front, the distilled finalists and baselines, the
    teacher and the chosen model."""
    import matplotlib  # slow to import: only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, trials = results["metric"], results["search"]["trials"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110)
    for ax, cost, scale, label in (
        (axes[0], "params", 1e6, "non-embedding parameters (M)"),
        (
            axes[1],
            "latency_ms",
            1,
            f"latency (ms), batch {results['budget']['batch']} × {results['budget']['seq_len']} tokens",
        ),
    ):
        shown = [t for t in trials if t[cost] is not None]
        for feasible, colour, name in ((False, "#cccccc", "evaluated, over budget"), (True, "#8fa8c8", "evaluated")):
            pts = [t for t in shown if t["feasible"] == feasible]
            if pts:
                ax.scatter(
                    [t[cost] / scale for t in pts],
                    [t["value"] for t in pts],
                    s=14,
                    c=colour,
                    label=f"{name} (proxy score, not distilled)",
                )
        on_front = [t for t in shown if t["on_front"]]
        if on_front:
            ax.scatter(
                [t[cost] / scale for t in on_front],
                [t["value"] for t in on_front],
                s=30,
                c="#1f5fa8",
                zorder=2,
                label="search's Pareto front (proxy scores)",
            )
        view = front_2d([t for t in shown if t["feasible"]], cost)
        if view:
            ax.step(
                [t[cost] / scale for t in view],
                [t["value"] for t in view],
                where="post",
                c="#1f5fa8",
                lw=1,
                label="front in this view",
            )
        for kind, marker, colour in (("finalist", "D", "#e07b00"), ("baseline", "s", "#7a4fa0")):
            pts = [e for e in results["finalists"] if e["kind"] == kind]
            if pts:
                ax.scatter(
                    [e[cost] / scale for e in pts],
                    [e["metrics"]["dev"][metric] for e in pts],
                    marker=marker,
                    s=50,
                    c=colour,
                    zorder=3,
                    label=f"{kind}s, distilled (dev)",
                )
        c, t = results["chosen"], results["teacher"]
        ax.scatter(
            [c[cost] / scale],
            [c["metrics"]["dev"][metric]],
            s=220,
            facecolors="none",
            edgecolors="#d62728",
            linewidths=2,
            zorder=4,
            label="chosen model (dev)",
        )
        ax.scatter(
            [t[cost] / scale],
            [t["metrics"]["dev"][metric]],
            marker="*",
            s=220,
            c="#2ca02c",
            zorder=4,
            label="teacher (dev)",
        )
        limit = results["budget"].get("params" if cost == "params" else "latency")
        if limit is not None:
            value = parse_count(limit) if cost == "params" else parse_ms(limit)
            ax.axvline(value / scale, ls="--", c="#d62728", lw=1, label="budget")
        ax.set_xlabel(label)
        ax.set_ylabel(f"dev {metric}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{results['task']}: {metric} against cost ({len(trials)} architectures evaluated)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def front_2d(points: list[dict], cost: str) -> list[dict]:
    """The points no other point beats in both the search score (higher) and ``cost`` (lower),
    cheapest first."""
    out: list[dict] = []
    for p in sorted(points, key=lambda p: (p[cost], -p["value"])):
        if not out or p["value"] > out[-1]["value"]:
            out.append(p)
    return out


# ---- the page --------------------------------------------------------------------------------------
def page(results: dict, png: bytes) -> str:
    """The self-contained HTML report."""
    e = html.escape
    metric, c, t = results["metric"], results["chosen"], results["teacher"]
    v = c["versus_teacher"]
    goals = [
        ("non-embedding parameters", f"{v['params_ratio']:.2f}× smaller"),
        ("latency", f"{v['speedup']:.2f}× faster ({c['latency_ms']:.2f} ms vs {t['latency_ms']:.2f} ms)"),
        ("FLOPs", f"{v['flops_ratio']:.2f}× fewer"),
    ]
    for split in ("dev", "test"):
        if f"{split}_drop_points" in v:
            goals.append(
                (
                    f"{split} {metric}",
                    f"{100 * c['metrics'][split][metric]:.2f} vs teacher "
                    f"{100 * t['metrics'][split][metric]:.2f} "
                    f"({-v[f'{split}_drop_points']:+.2f} points)",
                )
            )
    summary = "".join(f"<tr><th>{e(k)}</th><td>{e(val)}</td></tr>" for k, val in goals)
    q = results["quality"]
    quality = (
        "<p class=pass>The chosen model passed the quality gate.</p>"
        if q["passed"]
        else "<div class=fail><b>The chosen model failed the quality gate:</b><ul>"
        + "".join(f"<li>{e(r)}</li>" for r in q["reasons"])
        + "</ul></div>"
    )
    if q.get("baseline"):
        quality += (
            f"<p>Against the uniform baseline (the teacher shrunk to the budget, distilled the same way): "
            f"{e(q['baseline'])}.</p>"
        )
    hf = results["pareto"]
    cal = hf["calibration"]
    calibration = (
        "no front point was distilled, so the proxy scores are not calibrated"
        if cal["offset"] is None
        else f"distilled minus proxy over {cal['points']} distilled front point(s): {100 * cal['offset']:+.2f} "
        f"points"
        + (
            f", spread {100 * cal['error']:.2f}"
            if cal["error"] is not None
            else ", error unknown (fewer than two points)"
        )
    )
    front_rows = "".join(
        f"<tr><td>{p['trial']}</td><td>{p['search_score']:.4f}</td>"
        f"<td>{'' if p['distilled_dev'] is None else format(p['distilled_dev'], '.4f')}</td>"
        f"<td>{'' if p['estimate'] is None else format(p['estimate'], '.4f')}"
        f"{'' if p['estimate_error'] is None else ' ± ' + format(p['estimate_error'], '.4f')}</td>"
        f"<td>{p['costs'].get('params', 0):,.0f}</td><td>{e(p['summary'])}</td></tr>"
        for p in hf["front"]
    )
    rows = [("teacher", "teacher", t)] + [(f["name"], f["kind"], f) for f in results["finalists"]]
    finalists = "".join(
        f"<tr{' class=chosen' if name == c['name'] else ''}><td>{e(name)}</td><td>{e(kind)}</td>"
        f"<td>{e(m['summary'])}</td><td>{m['params']:,}</td><td>{m['flops'] / 1e6:,.1f}</td>"
        f"<td>{m['latency_ms']:.2f}</td><td>{_fmt_metrics(m['metrics'])}</td>"
        f"<td>{e('; '.join(m.get('violations', [])) or ('—' if kind == 'teacher' else 'within'))}</td></tr>"
        for name, kind, m in rows
    )
    trials = "".join(
        f"<tr{' class=front' if tr['on_front'] else ''}><td>{tr['trial']}</td><td>{tr['value']:.4f}</td>"
        f"<td>{_opt(tr['params'], ',.0f')}</td><td>{_opt(tr['flops'] and tr['flops'] / 1e6, ',.1f')}</td>"
        f"<td>{_opt(tr['latency_ms'], '.2f')}</td><td>{'yes' if tr['feasible'] else 'no'}</td>"
        f"<td>{'yes' if tr['on_front'] else ''}</td><td>{e(tr['summary'])}</td></tr>"
        for tr in results["search"]["trials"]
    )
    s = results["search"]
    timings = " · ".join(f"{k} {val:.0f} s" for k, val in results["timings"].items())
    provenance = "".join(
        f"<tr><th>{e(k)}</th><td><code>{e(str(val))}</code></td></tr>"
        for k, val in [
            ("seed", results["seed"]),
            ("training precision", results["teacher"].get("precision", "fp32")),
            *(("data " + k, h) for k, h in results["data"].items()),
            *results["versions"].items(),
            ("export", results["export"]["directory"]),
        ]
    )
    config = yaml.safe_dump(results["config"], sort_keys=False)
    img = base64.b64encode(png).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bertsmith run: {e(results["task"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; }} tr.chosen td {{ background: #fde8e8; font-weight: 600; }}
tr.front td {{ background: #e8f0fb; }} img {{ max-width: 100%; }} pre {{ background: #f7f7f7; padding: 1em; overflow: auto; }}
.note {{ color: #555; font-size: 0.9em; }}
.fail {{ background: #fde8e8; border: 2px solid #d62728; padding: 0.5em 1em; }} .pass {{ color: #2c7a2c; }}
</style></head><body>
<h1>bertsmith run: {e(results["task"])}</h1>
<p>Chosen model: <b>{e(c["name"])}</b>, {e(c["summary"])}. Teacher: {e(t["summary"])}
(<code>{e(t["directory"])}</code>). Budget: {e(", ".join(f"{k} {val}" for k, val in results["budget"].items()))}.</p>
<h2>Chosen model against the teacher</h2>
<table>{summary}</table>
<h2>Quality</h2>
{quality}
{deployment(results["export"])}
<h2>Accuracy against cost</h2>
<img alt="dev {e(metric)} against parameters and latency" src="data:image/png;base64,{img}">
<p class="note">Grey and blue points are the search's <b>proxy</b> scores ({e(s["evaluator"])} evaluator), not what a
distilled model of that shape reaches; the orange diamonds and purple squares are the finalists and baselines after
their distillation, on dev. Latency is measured on this machine.</p>
<h2>The search's front: proxy scores and what distillation gave</h2>
<p class="note">Calibration: {e(calibration)}. The estimate is the proxy score plus that offset.</p>
<table><tr><th>trial</th><th>proxy {e(metric)}</th><th>distilled dev {e(metric)}</th><th>estimate</th>
<th>non-emb. params</th><th>architecture</th></tr>{front_rows}</table>
<h2>Finalists</h2>
<p class="note">Each distilled from the teacher ({e(results["config"]["finalists"]["losses"])}); the chosen model is
the best on dev within the budget. Latency: median of interleaved measurements in one process.</p>
<table><tr><th>name</th><th>kind</th><th>architecture</th><th>non-emb. params</th><th>MFLOPs</th>
<th>latency (ms)</th><th>metrics</th><th>budget</th></tr>{finalists}</table>
<h2>Every evaluated architecture ({len(s["trials"])})</h2>
<p class="note">{s["evaluated"]} evaluated, {s["infeasible"]} over budget (not evaluated), {s["duplicates"]} repeats,
{s["failed"]} failed{"; stopped: " + e(s["stopped"]) if s["stopped"] else ""}. Blue rows: the Pareto front.</p>
<table><tr><th>trial</th><th>proxy {e(metric)}</th><th>non-emb. params</th><th>MFLOPs</th><th>latency (ms)</th>
<th>within budget</th><th>front</th><th>architecture</th></tr>{trials}</table>
<h2>Provenance</h2>
<table>{provenance}</table>
<p class="note">Stage times: {e(timings) or "all stages reused"}.</p>
<h2>Configuration</h2>
<pre>{e(config)}</pre>
</body></html>
"""


def deployment(export: dict) -> str:
    """The report's section on the int8 ONNX file: its metrics against fp32, the four latencies."""
    e = html.escape
    d = export.get("deployment")
    if d is None:
        return ""
    splits = list(d["metrics"]["int8"])
    metrics = "".join(
        f"<tr><td>{e(name)}</td>"
        + "".join(f"<td>{', '.join(f'{k} {v:.4f}' for k, v in m[s].items())}</td>" for s in splits)
        + "</tr>"
        for name, m in (
            ("PyTorch fp32", d["metrics"]["torch"]),
            ("ONNX Runtime fp32", d["metrics"]["onnx"]),
            ("ONNX Runtime int8", d["metrics"]["int8"]),
        )
    )
    latency = "".join(
        f"<tr><td>{e(label)}</td>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>"
        for label, cells in latency_table(d["latency_ms"])
    )
    files = ", ".join(
        f"{e(name)} {mb:.1f} MB"
        for name, mb in export.get("files_mb", {}).items()
        if name.endswith((".onnx", ".safetensors"))
    )
    return f"""<h2>Deployment</h2>
<p>Recommended file: <b>{e(d["recommended"])}</b>: {e(d["reason"])}. Files: {files}.</p>
<table><tr><th>model</th>{"".join(f"<th>{e(s)}</th>" for s in splits)}</tr>{metrics}</table>
<p class="note">Latency at {d["seq_len"]} tokens, {d["threads"]} threads, in one process, interleaved; in brackets the
speed-up over the teacher in PyTorch.</p>
<table><tr><th>model</th>{"".join(f"<th>{e(b)}</th>" for b in d["latency_ms"])}</tr>{latency}</table>"""


def _fmt_metrics(metrics: dict) -> str:
    return "<br>".join(
        f"{html.escape(split)}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()) for split, m in metrics.items()
    )


def _opt(value: Any, fmt: str) -> str:
    return "" if value is None else format(value, fmt)
