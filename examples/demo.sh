#!/usr/bin/env bash
# The perianctl demo: a real Flyte task (examples/hello.py, serialized by flytekit) runs through
# PERIAN's API contract on a local sandbox -- no PERIAN account, no Flyte cluster, nothing to set up.
#
#   1. start the sandbox in the background (process runtime: jobs really run, as local processes)
#   2. submit the hello task with an input; watch it live until it ends
#   3. show the task's output value, read back from outputs.pb, and the job's status history
#   4. stop the sandbox (also on Ctrl-C or failure)
#
# Everything lives in a throw-away home (config, journal, sandbox state) unless PERIANCTL_CONFIG /
# PERIANCTL_STATE_DIR are set, so the demo never touches your own perianctl profiles.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
demo_home="$(mktemp -d "${TMPDIR:-/tmp}/perianctl-demo.XXXXXX")"
export PERIANCTL_CONFIG="${PERIANCTL_CONFIG:-$demo_home/config.toml}"
export PERIANCTL_STATE_DIR="${PERIANCTL_STATE_DIR:-$demo_home/state}"
name="${1:-PERIAN}"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

cleanup() {
  step "stopping the sandbox"
  perianctl sandbox stop || true
}
trap cleanup EXIT

step "starting a local PERIAN sandbox (process runtime)"
perianctl sandbox start --runtime process --port 0

step "submitting examples/templates/hello.pb with name=$name, watching it"
# The template's command is flytekit's real `pyflyte-execute ... task-module examples.hello`;
# PYTHONPATH lets that process import the example module from this checkout.
perianctl --profile sandbox submit "$repo/examples/templates/hello.pb" \
  --input "name=$name" --env "PYTHONPATH=$repo" --watch

step "the job as PERIAN reports it, and the status history perianctl observed"
perianctl --profile sandbox get --last -o wide
perianctl --profile sandbox get --last --history
