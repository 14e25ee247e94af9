"""The package builds as a wheel that installs and works without the source tree: every module is inside
it, including the pure-torch modeling files and the remote-code files that exports copy."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src" / "bertsmith").rglob("*.py"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the project (so no build output lands in the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(work / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = (work / "dist").glob("bertsmith-*.whl")
    return built


def test_the_wheel_holds_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in SOURCES if name not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert "bertsmith/hf/remote/modeling_bertsmith.py" in names
    assert any(name.endswith("entry_points.txt") for name in names)


def test_the_installed_wheel_imports_and_exports_remote_code(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    script = (
        "import bertsmith, bertsmith.cli\n"
        "from pathlib import Path\n"
        "from bertsmith.arch import ArchSpec\n"
        "from bertsmith.hf.export import export_pretrained, modeling_files\n"
        "from bertsmith.modeling import BertsmithModel\n"
        "print(bertsmith.__file__)\n"
        "assert all(f.is_file() for f in modeling_files())\n"
        "spec = ArchSpec.uniform(layers=1, hidden=32, heads=2, ffn=64, ffn_kind='grouped', groups=2,\n"
        "                        embeddings={'vocab_size': 50, 'max_positions': 16})\n"
        "print(export_pretrained(BertsmithModel(spec), Path('out')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    where, kind = done.stdout.split()
    assert Path(where).is_relative_to(target)
    assert kind == "remote"
    assert (tmp_path / "out" / "modeling_bertsmith.py").is_file()
    assert (tmp_path / "out" / "encoder.py").is_file()
