#!/usr/bin/env bash
# The main job: a notebook on a kernel started through the distributed provisioner on localhost.
set -euo pipefail
GP_BOOTSTRAP_PARTS=demo source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
nox -s demo "$@"
