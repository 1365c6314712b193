#!/usr/bin/env bash
# Runs every test: unit tests, scripted-server tests, the binary end to end, the allocation
# proof. Release mode: the engine's timing tests and the allocation test measure the real build.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --release "$@"
