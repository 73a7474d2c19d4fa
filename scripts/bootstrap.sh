#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine (system packages when root), and a
# tools venv with nox.  Sourced by scripts/test.sh, scripts/demo.sh and .ci/run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
APT_PACKAGES=(python3-venv openssh-server procps r-base-core r-cran-irkernel slurm-wlm slurm-wlm-jwt-plugin slurmrestd munge docker.io mmdebstrap etcd-server
  containerd runc strace containernetworking-plugins gcc libc6-dev)  # the last six: the opt-in real kubelet node (GP_K8S_REAL_KUBELET=1)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: please install: sudo apt-get install ${missing[*]}" >&2
  fi
fi

TOOLS="$ROOT/.cache/tools-venv"
if [ ! -x "$TOOLS/bin/nox" ]; then
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --upgrade pip
  "$TOOLS/bin/pip" install -q "nox>=2024.4"
fi
export PATH="$TOOLS/bin:$PATH"

# Built kernel images and the test dockerd's data root are kept per machine, outside the
# checkout, so a fresh clone (as CI uses) loads them instead of building again.
export GP_DOCKER_CACHE_DIR="${GP_DOCKER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gateway-provisioners}"
