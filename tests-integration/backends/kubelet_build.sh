#!/usr/bin/env bash
# Build a PATCHED kubelet (v1.20.2) and a static pause binary for the opt-in real-node suite
# (GP_K8S_REAL_KUBELET=1; see shared notes/kubernetes.md).  NEVER a stock kubelet: a stock one
# probes cloud credential providers at start (the AWS one reaches for the EC2 metadata address
# off the machine) and refuses a loopback --node-ip.
#
# The tree, the Go toolchain and the build cache are k8s_build.sh's (run first, cached); the two
# patches are applied through `go build -overlay`, so the shared tree is never modified:
#   1. cmd/kubelet/app/plugins.go without the cloud credential providers (the AWS one is then
#      gone from the binary; azure and gcp stay linked through options/globalflags.go: gcp only
#      reads the DMI product name, azure acts only with a config file; the strace check of the
#      real-node suite verifies that nothing leaves loopback);
#   2. pkg/kubelet/kubelet_node_status.go without the check that rejects a loopback node IP.
# Each patch is checked to have applied; the build fails otherwise.
# Results: $CACHE/bin/kubelet-loopback and $CACHE/bin/pause-static.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${GP_CACHE_DIR:-$HOME/.cache/gateway-provisioners}/k8s"
BIN="$CACHE/bin"
KUBELET="$BIN/kubelet-loopback"
PAUSE="$BIN/pause-static"
log() { printf '[kubelet_build %s] %s\n' "$(date +%T)" "$*" >&2; }

if [[ -x "$KUBELET" && -x "$PAUSE" ]]; then
    log "present in $BIN; nothing to do"
    exit 0
fi
bash "$HERE/k8s_build.sh"  # the tree, the toolchain, the control plane (all cached)
exec 9>"$CACHE/.build.lock"
flock 9
START=$(date +%s)

GO="$(find "$CACHE/go" -type f -path '*/bin/go' -perm -u+x | head -n1)"
[[ -n "$GO" ]] || { log "no go binary under $CACHE/go"; exit 1; }
export GOROOT="$(dirname "$(dirname "$GO")")"
export PATH="$GOROOT/bin:$PATH"
export GOTOOLCHAIN=local GOPROXY=off GO111MODULE=off GOFLAGS=
export GOPATH="$CACHE/gopath" GOCACHE="$CACHE/gocache"
TREE="$GOPATH/src/k8s.io/kubernetes"
cd "$TREE"

if [[ ! -x "$PAUSE" ]]; then
    log "compiling build/pause/linux/pause.c statically"
    gcc -Os -static -Wall -DVERSION=v3.2-gp -o "$PAUSE.tmp" build/pause/linux/pause.c
    mv "$PAUSE.tmp" "$PAUSE"
fi

if [[ ! -x "$KUBELET" ]]; then
    OVERLAY="$CACHE/kubelet-overlay"
    rm -rf "$OVERLAY" && mkdir -p "$OVERLAY"
    plugins="cmd/kubelet/app/plugins.go"
    grep -v -E '"k8s.io/kubernetes/pkg/credentialprovider/(aws|azure|gcp)"' "$plugins" \
        >"$OVERLAY/plugins.go"
    if grep -q credentialprovider "$OVERLAY/plugins.go"; then
        log "patch 1 did not apply: $plugins still imports a credential provider"; exit 1
    fi
    status="pkg/kubelet/kubelet_node_status.go"
    # Drop the three lines of: if nodeIP.IsLoopback() { return fmt.Errorf(...) }
    awk 'skip > 0 { skip--; next } /if nodeIP.IsLoopback\(\) \{/ { skip = 2; next } { print }' \
        "$status" >"$OVERLAY/kubelet_node_status.go"
    if grep -q 'IsLoopback' "$OVERLAY/kubelet_node_status.go" \
        || [[ $(( $(wc -l <"$status") - $(wc -l <"$OVERLAY/kubelet_node_status.go") )) -ne 3 ]]; then
        log "patch 2 did not apply to $status"; exit 1
    fi
    cat >"$OVERLAY/overlay.json" <<JSON
{"Replace": {"$TREE/$plugins": "$OVERLAY/plugins.go",
             "$TREE/$status": "$OVERLAY/kubelet_node_status.go"}}
JSON
    VERSION_PKG="k8s.io/kubernetes/vendor/k8s.io/component-base/version"
    LDFLAGS="-s -w"
    for v in "gitVersion=v1.20.2" "gitMajor=1" "gitMinor=20" "gitTreeState=clean" \
        "buildDate=1970-01-01T00:00:00Z"; do
        LDFLAGS="$LDFLAGS -X $VERSION_PKG.$v -X k8s.io/component-base/version.$v"
    done
    log "building the patched kubelet"
    nice -n 10 go build -overlay "$OVERLAY/overlay.json" -ldflags "$LDFLAGS" \
        -o "$KUBELET.tmp" ./cmd/kubelet
    mv "$KUBELET.tmp" "$KUBELET"
fi
log "done in $(( $(date +%s) - START )) s: $KUBELET $PAUSE"
