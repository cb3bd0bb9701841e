#!/usr/bin/env bash
# Every benchmark in one go; exits non-zero when any goal is missed (each bench prints
# "GOAL PASS|MISS ..." lines with its baseline, ratio and the core count). Not part of the test
# suite: minutes of CPU, best on an otherwise idle machine.
#   bash bench/run_all.sh            (uses .venv/bin/python, or $PYTHON)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
failed=()
for bench in bench_startup.py bench_connector.py bench_watch_memory.py bench_watch.py bench_sandbox.py; do
    echo "== $bench"
    if ! "$PY" "bench/$bench"; then
        failed+=("$bench")
    fi
done
echo
if ((${#failed[@]})); then
    echo "goals missed in: ${failed[*]}"
    exit 1
fi
echo "all goals met"
