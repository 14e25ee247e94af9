"""The run directory's stage outputs and trials, typed: a run directory that bertsmith 0.1.0 wrote
(tests/fixtures/run-0.1.0: its json, csv and yaml files, written by the tiny run of test_pipeline.py)
loads, writes its outputs back unchanged, and reports as it did."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bertsmith.errors import ConfigError
from bertsmith.report import rebuild_report
from bertsmith.rundir import (
    DONE,
    FRONT,
    PAGE,
    RESULTS,
    STAGES,
    TRIALS,
    ExportOutputs,
    FinalistsOutputs,
    SearchOutputs,
    TeacherOutputs,
    Trial,
    read_outputs,
    read_trials,
)

RUN = Path(__file__).resolve().parent / "fixtures" / "run-0.1.0"
MODELS = {"teacher": TeacherOutputs, "search": SearchOutputs, "finalists": FinalistsOutputs, "export": ExportOutputs}


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_s_outputs_load_typed_and_are_written_back_as_they_were(stage):
    raw = json.loads((RUN / stage / DONE).read_text(encoding="utf-8"))["outputs"]
    outputs = read_outputs(RUN, stage, MODELS[stage])
    assert json.dumps(outputs.dump(), indent=1) == json.dumps(raw, indent=1)  # the same keys, order and types


def test_the_outputs_are_typed():
    finalists = read_outputs(RUN, "finalists", FinalistsOutputs)
    chosen = finalists.chosen_entry()
    assert chosen.name == finalists.chosen and isinstance(chosen.params, int) and chosen.violations == []
    baseline = next(e for e in finalists.entries if e.kind == "baseline")
    assert baseline.source == "uniform" and baseline.trial is None and "trial" not in baseline.dump()
    search = read_outputs(RUN, "search", SearchOutputs)
    assert search.front and all(isinstance(p.costs["params"], int) for p in search.front)
    export = read_outputs(RUN, "export", ExportOutputs)
    assert export.deployment is not None and export.int8_fusions is not None


def test_a_report_rebuilt_from_a_run_of_bertsmith_0_1_0_is_the_one_it_wrote(tmp_path):
    run = shutil.copytree(RUN, tmp_path / "run")
    (run / PAGE).unlink(missing_ok=True)
    results = rebuild_report(run)
    before = json.loads((RUN / RESULTS).read_text(encoding="utf-8"))
    changing = {"versions", "config"}  # the installed packages; the run config's keys as this version has them
    assert {k: v for k, v in results.items() if k not in changing} == {
        k: v for k, v in before.items() if k not in changing
    }
    assert (run / FRONT).read_text(encoding="utf-8") == (RUN / FRONT).read_text(encoding="utf-8")
    page = (run / PAGE).read_text(encoding="utf-8")
    assert all(f"<td>{t['trial']}</td>" in page and t["summary"] in page for t in results["search"]["trials"])
    assert "<h2>Deployment</h2>" in page and results["chosen"]["name"] in page


def test_a_stage_whose_outputs_are_not_its_own_is_named(tmp_path):
    run = shutil.copytree(RUN, tmp_path / "run")
    done = json.loads((run / "search" / DONE).read_text(encoding="utf-8"))
    del done["outputs"]["front"]
    (run / "search" / DONE).write_text(json.dumps(done), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"search/done.json: not the outputs of a search stage .*bertsmith run"):
        read_outputs(run, "search", SearchOutputs)


def test_trials_are_read_typed_evaluated_ones_only(tmp_path):
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / TRIALS).write_text(
        "trial,state,feasible,f1,params,flops,latency,violations,duplicate_of,summary,error\n"
        "0,COMPLETE,True,0.5,100,2000,1.5,,,small,\n"
        '1,COMPLETE,False,0.75,900,inf,,"params 900 > 500",,large,\n'
        "2,COMPLETE,True,0.5,100,2000,inf,,0,small,\n"  # a repeat of trial 0
        '3,COMPLETE,False,,900,9000,2.0,"params 900 > 500",,large,\n'  # over the budget: not evaluated
        "4,FAIL,,,,,,,,,RuntimeError\n",
        encoding="utf-8",
    )
    assert read_trials(tmp_path, "f1") == [
        Trial(trial=0, value=0.5, feasible=True, params=100.0, flops=2000.0, latency_ms=1.5, summary="small"),
        Trial(trial=1, value=0.75, feasible=False, params=900.0, flops=None, latency_ms=None, summary="large"),
    ]
