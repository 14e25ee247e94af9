"""What bertsmith hands to the user (exports, result files, caches) has the mode the user's umask
gives an ordinary file, not the private mode of the temporary files it is written through."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.test_cli import _tiny_hf_checkpoint, run


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)], ids=["umask-022", "umask-077"])
def umask(request):
    """(file mode, directory mode) expected under the umask set for the test."""
    mask, file_mode, dir_mode = request.param
    old = os.umask(mask)
    yield file_mode, dir_mode
    os.umask(old)


def test_an_export_has_ordinary_modes(monkeypatch, capsys, tmp_path, umask):
    file_mode, dir_mode = umask
    _tiny_hf_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "out"
    code, _, err = run(monkeypatch, capsys, "export", str(tmp_path / "ckpt"), str(out))
    assert code == 0, err
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "config.json"}
    assert _mode(out) == dir_mode
    assert {p.name: oct(_mode(p)) for p in out.iterdir()} == {p.name: oct(file_mode) for p in out.iterdir()}


def test_a_result_file_has_an_ordinary_mode(monkeypatch, capsys, tmp_path, umask):
    out = tmp_path / "bench.json"
    code, _, err = run(
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
    assert code == 0, err
    assert oct(_mode(out)) == oct(umask[0])


def test_teacher_cache_files_have_ordinary_modes(tmp_path, umask):
    from bertsmith.distill.teacher_cache import META, TeacherCache
    from tests.distill.test_teacher_cache import _split, _teacher

    cache = TeacherCache.open(_teacher(), _split(), root=tmp_path, bf16=False)
    files = list(cache.directory.iterdir())
    assert META in {p.name for p in files}
    assert {p.name: oct(_mode(p)) for p in files} == {p.name: oct(umask[0]) for p in files}
