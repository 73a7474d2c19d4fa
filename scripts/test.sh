#!/usr/bin/env bash
# The whole test suite: lint, types, each package alone, the integration suites, wheels.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
nox -s lint typecheck test test_oldest_core integration build docs "$@"
