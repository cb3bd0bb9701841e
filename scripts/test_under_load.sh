#!/usr/bin/env bash
# Run the test suite while every core is kept busy by another process (scripts/busy.sh).
#
#   scripts/test_under_load.sh [pytest args...]
#
# CI runs on a small, shared machine: a test that only passes on an idle box (a throughput
# threshold, a sleep instead of waiting for an event) fails there. This starts the load, runs
# pytest (-q -p no:cacheprovider plus your args), stops the load and exits with pytest's code.
# BUSY_CORES sets how many cores to load (default: all); PYTEST the pytest command.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${PYTEST:-} ]]; then
  if [[ -x .venv/bin/pytest ]]; then PYTEST=.venv/bin/pytest; else PYTEST="python3 -m pytest"; fi
fi

scripts/busy.sh ${BUSY_CORES:+-n "$BUSY_CORES"} &
busy=$!
trap 'kill "$busy" 2>/dev/null; wait "$busy" 2>/dev/null' EXIT

# pytest runs as a job of its own (set -m) so that it does not ignore SIGINT, as background commands
# of a script otherwise do; Ctrl-C or SIGTERM to this script becomes SIGINT to pytest's process
# group (pytest stops cleanly, fixtures torn down), and SIGTERM 10 s later if it is still running
# (flytekit, once imported, turns SIGINT into the failure of the current test only).
set -m
# shellcheck disable=SC2086  # PYTEST may be a command with arguments
$PYTEST -q -p no:cacheprovider "$@" &
tests=$!
set +m
stopping=
trap 'kill -INT -- "-$tests" 2>/dev/null; stopping=${stopping:-$SECONDS}' INT TERM
while :; do
  if [[ -n $stopping ]]; then
    sleep 1 & wait "$!"
    (( SECONDS - stopping < 10 )) || kill -TERM -- "-$tests" 2>/dev/null
    kill -0 "$tests" 2>/dev/null && continue
  fi
  wait "$tests"
  code=$?
  kill -0 "$tests" 2>/dev/null || break  # still running: the wait was cut short by a signal
done
wait "$tests" 2>/dev/null && code=0 || { c=$?; [[ $c == 127 ]] || code=$c; }
exit "$code"
