#!/usr/bin/env bash
# Keep CPU cores busy, to check that the test suite does not depend on an idle machine.
#
#   scripts/busy.sh [-n CORES] [-t SECONDS]
#
# Starts CORES busy loops (default: every core, `nproc`) at normal priority and keeps them
# running until this script is stopped (SIGTERM/SIGINT) or, with -t, for SECONDS.
# The loops are stopped with it. scripts/test_under_load.sh uses it around pytest.
set -euo pipefail

cores=$(nproc)
duration=
while getopts "n:t:h" opt; do
  case $opt in
    n) cores=$OPTARG ;;
    t) duration=$OPTARG ;;
    *) sed -n '2,8s/^# \{0,1\}//p' "$0"; [[ $opt == h ]] && exit 0 || exit 2 ;;
  esac
done
if ! [[ $cores =~ ^[0-9]+$ ]] || (( cores < 1 )); then
  echo "error: -n needs a whole number of cores >= 1, got '$cores'" >&2
  exit 2
fi
if [[ -n $duration ]] && ! [[ $duration =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "error: -t needs a number of seconds, got '$duration'" >&2
  exit 2
fi

pids=()
stop() {
  if (( ${#pids[@]} )); then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap stop EXIT
trap 'exit 0' TERM INT HUP

for ((i = 0; i < cores; i++)); do
  ( while :; do :; done ) &
  pids+=("$!")
done
echo "busy.sh: $cores busy loop(s) running (pid $$)${duration:+ for ${duration}s}" >&2

if [[ -n $duration ]]; then
  sleep "$duration" & wait "$!"
else
  wait
fi
