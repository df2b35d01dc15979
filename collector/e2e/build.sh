#!/usr/bin/env bash
# Builds Jaeger v2 and the collector (otelcol-carbon) pinned by the Go modules beside this
# script, into a cache outside the repository:
#
#   ${OTEL_CARBON_E2E_CACHE:-${XDG_CACHE_HOME:-~/.cache}/otel-carbon-e2e}/<name>-<version>-<hash>/
#
# <hash> covers the module's go.mod, go.sum and sources, so a change to them builds anew and
# an unchanged checkout reuses what is there. Prints "jaeger <path>" and "otelcol <path>".
#
#   collector/e2e/build.sh            build what is missing (needs Go, see go.mod), then print
#   collector/e2e/build.sh --locate   print only; exit 3 when a binary is not built yet
#
# A cold build (empty Go module and build caches) downloads a few hundred MB of modules and
# takes several minutes per binary on two cores (collector/README.md has the figures).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${OTEL_CARBON_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/otel-carbon-e2e}"
locate_only=0
case "${1:-}" in
    --locate) locate_only=1 ;;
    "") ;;
    *) echo "usage: $0 [--locate]" >&2; exit 2 ;;
esac

# version of module $2 required by the go.mod in directory $1
required_version() {
    awk -v m="$2" '$1 == m { print $2; exit }' "$1/go.mod"
}

# <name>-<version>-<first 12 hex digits of the sha256 of the module's files>
key() {
    local dir="$1" name="$2" version="$3" digest
    digest="$(cd "$dir" && find . -maxdepth 1 \( -name "*.go" -o -name go.mod -o -name go.sum \) | LC_ALL=C sort \
        | xargs cat | sha256sum | cut -c1-12)"
    echo "$name-$version-$digest"
}

# build_one NAME DIR BINARY VERSION PACKAGE [go build flags...]
build_one() {
    local name="$1" dir="$2" binary="$3" version="$4" package="$5"
    shift 5
    local out
    out="$cache/$(key "$dir" "$name" "$version")/$binary"
    if [ ! -x "$out" ]; then
        if [ "$locate_only" = 1 ]; then
            echo "$name: not built yet ($out); run $0" >&2
            return 3
        fi
        command -v go >/dev/null || { echo "$name: the Go toolchain (go) is not on PATH" >&2; return 4; }
        mkdir -p "$(dirname "$out")"
        local start=$SECONDS
        echo "$name: building $version with go $(go env GOVERSION) ..." >&2
        (cd "$dir" && go build -trimpath "$@" -o "$out.tmp.$$" "$package")
        mv -f "$out.tmp.$$" "$out"
        echo "$name: built in $((SECONDS - start)) s" >&2
    fi
    echo "$name $out"
}

# One build at a time: a second caller (a test while .ci/run's background build is going)
# waits here, then finds the binaries built and only prints their paths.
if [ "$locate_only" = 0 ]; then
    mkdir -p "$cache"
    exec 9>"$cache/.build.lock"
    flock 9
fi

jaeger_version="$(required_version "$here/jaeger" github.com/jaegertracing/jaeger)"
otelcol_version="$(required_version "$here/otelcol" go.opentelemetry.io/collector/otelcol)"
# -s -w: no symbol table or DWARF (smaller binaries, a shorter link)
build_one jaeger "$here/jaeger" jaeger "$jaeger_version" github.com/jaegertracing/jaeger/cmd/jaeger -ldflags "-s -w"
build_one otelcol "$here/otelcol" otelcol-carbon "$otelcol_version" . \
    -ldflags "-s -w -X main.version=$otelcol_version"
