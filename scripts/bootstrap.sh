#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine (system packages when root), and a
# tools venv with nox.  Sourced by scripts/test.sh, scripts/demo.sh and .ci/run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
# The system packages come from the one list, scripts/system-packages.txt: the parts named in
# GP_BOOTSTRAP_PARTS (scripts/demo.sh asks for "demo"), or every part.
PARTS="${GP_BOOTSTRAP_PARTS:-all}"
APT_PACKAGES=()
while read -r pkg parts _; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  if [[ "$PARTS" == all || ",$parts," == *",$PARTS,"* ]]; then APT_PACKAGES+=("$pkg"); fi
done < "$ROOT/scripts/system-packages.txt"

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
    echo "bootstrap: please install: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
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
