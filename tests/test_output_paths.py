"""Output paths that cannot be written (under a regular file, a read-only directory, a full disk):
one line naming the path and the OS error, exit code 2, found before the expensive work, and no
partial file that looks complete."""

from __future__ import annotations

import errno
import os

import pytest

from tests.test_cli import _tiny_hf_checkpoint, run
from tests.test_pipeline import tiny_config

ROOT = os.geteuid() == 0  # root writes in a read-only directory anyway (its os.access says yes)


def _refused(code: int, out: str, err: str, path, reason: str) -> None:
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(path) in err and reason in err, err


@pytest.fixture(params=["under-a-file", "read-only"])
def unwritable(request, tmp_path, monkeypatch):
    """(an output path that cannot be created, the OS error the message gives)."""
    if request.param == "under-a-file":
        (tmp_path / "afile").write_text("not a directory\n")
        yield tmp_path / "afile" / "out", "Not a directory"
        return
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if ROOT:  # root may write in a read-only directory: the access check answers as for any other user
        real = os.access
        monkeypatch.setattr(
            os,
            "access",
            lambda path, mode, **kw: (
                False if os.path.abspath(path) == str(locked) and mode & os.W_OK else real(path, mode, **kw)
            ),
        )
    yield locked / "out", "Permission denied"
    locked.chmod(0o700)


def test_bench_json_is_refused_before_the_timing(monkeypatch, capsys, unwritable):
    path, reason = unwritable
    code, out, err = run(monkeypatch, capsys, "bench", "bert-tiny", "--seq", "8", "--json", str(path / "b.json"))
    _refused(code, out, err, path, reason)
    assert "latency median" not in out


def test_export_is_refused(monkeypatch, capsys, tmp_path, unwritable):
    path, reason = unwritable
    _tiny_hf_checkpoint(tmp_path / "ckpt")
    capsys.readouterr()  # transformers' progress bar
    code, out, err = run(monkeypatch, capsys, "export", str(tmp_path / "ckpt"), str(path))
    _refused(code, out, err, path, reason)


def test_distill_is_refused_before_training(monkeypatch, capsys, teacher_dir, task_file, cache_dir, unwritable):
    path, reason = unwritable
    code, out, err = run(
        monkeypatch,
        capsys,
        "distill",
        "--arch",
        "bert-mini",
        "--teacher",
        str(teacher_dir),
        "--task",
        str(task_file),
        "--max-length",
        "16",
        "--cache-dir",
        str(cache_dir),
        "--out",
        str(path),
        "--quiet",
    )
    _refused(code, out, err, path, reason)


def test_run_and_search_are_refused(
    monkeypatch, capsys, tmp_path, base_dir, teacher_dir, task_file, cache_dir, unwritable
):
    path, reason = unwritable
    config = tiny_config(tmp_path / "config", base_dir, task_file)
    code, out, err = run(
        monkeypatch, capsys, "run", str(config), "--out", str(path), "--cache-dir", str(cache_dir), "--quiet"
    )
    _refused(code, out, err, path, reason)
    code, out, err = run(
        monkeypatch,
        capsys,
        "search",
        "--strategy",
        "prune",
        "--teacher",
        str(teacher_dir),
        "--task",
        str(task_file),
        "--max-length",
        "16",
        "--cache-dir",
        str(cache_dir),
        "--out",
        str(path),
        "--quiet",
    )
    _refused(code, out, err, path, reason)


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_during_an_export_leaves_nothing_that_looks_complete(monkeypatch, capsys, tmp_path):
    import safetensors.torch

    _tiny_hf_checkpoint(tmp_path / "ckpt")
    capsys.readouterr()  # transformers' progress bar
    monkeypatch.setattr(safetensors.torch, "save_file", _full_disk)
    code, out, err = run(monkeypatch, capsys, "export", str(tmp_path / "ckpt"), str(tmp_path / "out"))
    _refused(code, out, err, tmp_path / "out", "No space left on device")
    assert "free space" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no model directory, no temporary one


def test_a_full_disk_while_writing_a_result_file_keeps_the_earlier_one(monkeypatch, capsys, tmp_path):
    from bertsmith import files

    out = tmp_path / "b.json"
    out.write_text("{}\n")
    monkeypatch.setattr(files, "publish", _full_disk)  # the disk fills up while the new file is written
    code, stdout, err = run(
        monkeypatch,
        capsys,
        "bench",
        "bert-tiny",
        "--seq",
        "8",
        "--threads",
        "1",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--json",
        str(out),
    )
    _refused(code, stdout, err, out, "No space left on device")
    assert out.read_text() == "{}\n" and sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]
