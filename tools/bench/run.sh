#!/usr/bin/env bash
# The benchmark suite, one command on a fresh machine:
#
#     tools/bench/run.sh [OUTPUT_DIR] [suite options, e.g. --rounds 7]
#     tools/bench/run.sh --only p2p OUTPUT_DIR   (by hand, as root: peers)
#     tools/bench/run.sh --compare BEFORE/bench.json AFTER/bench.json
#
# Makes sure PostgreSQL and RabbitMQ run (tools/ensure-services.sh) and curl
# is installed, builds a venv of its own (the project, its pinned
# requirements, matplotlib) under ~/.cache/image-agent/bench-venv, then runs
# tools/bench/suite.py, which starts the test deployment (tools/testenv) and
# the agents itself. Writes OUTPUT_DIR/bench.json, bench.txt and
# throughput.png (default OUTPUT_DIR: bench-results/<date-time>).
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { echo "[bench] $*"; }
die() { echo "[bench] ERROR: $*" >&2; exit 1; }

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "Python 3.11 or newer is needed as python3"

if [ "${1:-}" = --compare ]; then
    # A before/after table of two runs: the standard library only.
    shift
    exec python3 -m tools.bench.compare "$@"
fi

# "--only SECTIONS OUTPUT_DIR ..." as well as "OUTPUT_DIR --only SECTIONS".
if [ "${1:-}" = --only ] && [ $# -ge 2 ]; then
    sections=$2
    shift 2
    set -- "${1:-bench-results/$(date +%Y%m%d-%H%M%S)}" --only "$sections" "${@:2}"
fi

out=${1:-bench-results/$(date +%Y%m%d-%H%M%S)}
shift || true

apt_install() {
    command -v apt-get >/dev/null || die "$1 is missing: install it"
    [ "$(id -u)" = 0 ] || die "$1 is missing: run as root or install it"
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

tools/ensure-services.sh all
tools/ensure-services.sh qemu-img
command -v curl >/dev/null || apt_install curl
command -v sync >/dev/null || apt_install coreutils

cache=${XDG_CACHE_HOME:-$HOME/.cache}/image-agent
venv=$cache/bench-venv
stamp=$(cat requirements.txt upper-constraints.txt tools/bench/requirements.txt setup.cfg | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "building $venv"
    rm -rf "$venv"
    mkdir -p "$cache"
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -c upper-constraints.txt \
        -r requirements.txt -r tools/bench/requirements.txt
    "$venv/bin/pip" install -q --no-deps -e .
    echo "$stamp" > "$venv/.stamp"
fi

mkdir -p "$out"
log "results go to $out"
exec "$venv/bin/python" -m tools.bench.suite "$out" "$@"
