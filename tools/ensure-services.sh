#!/usr/bin/env bash
# Make sure the services the tests and the quickstart need are running on
# loopback: PostgreSQL (127.0.0.1:5432, trust auth for root) and RabbitMQ
# (127.0.0.1:5672, guest/guest); with "qemu-img", that qemu-img (Debian's
# qemu-utils: the agent converts images with it, the tests make their disk
# images with it) is installed. Start them when
# installed but stopped; install them from the distribution when missing
# (needs root and apt); otherwise say exactly what is missing and fail.
set -euo pipefail

log() { echo "ensure-services: $*"; }
die() { echo "ensure-services: ERROR: $*" >&2; exit 1; }

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

wait_for_port() {
    local port=$1 name=$2 seconds=${3:-60}
    for _ in $(seq "$seconds"); do
        port_open "$port" && return 0
        sleep 1
    done
    die "$name did not open 127.0.0.1:$port within ${seconds}s"
}

apt_install() {
    command -v apt-get >/dev/null || die "$1 is missing and apt-get is not available: install $1 by hand"
    [ "$(id -u)" = 0 ] || die "$1 is missing: run as root or install it by hand"
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgresql() {
    if port_open 5432; then
        log "PostgreSQL answers on 127.0.0.1:5432"
        return
    fi
    if ! command -v pg_ctlcluster >/dev/null; then
        apt_install postgresql
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    [ -n "$version" ] || die "PostgreSQL is installed but has no cluster under /etc/postgresql"
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for_port 5432 PostgreSQL 60
    # The tests connect as root over TCP with trust auth, as on the
    # project's machines; make that so on a fresh install.
    if ! psql -h 127.0.0.1 -U root -d postgres -c 'select 1' >/dev/null 2>&1; then
        log "creating the root role with trust auth on loopback"
        su postgres -c "psql -q -c \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='root') THEN CREATE ROLE root SUPERUSER LOGIN; END IF; END \\\$\\\$;\""
        local hba=/etc/postgresql/$version/main/pg_hba.conf
        grep -q '^host all all 127.0.0.1/32 trust' "$hba" || \
            sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    fi
}

ensure_rabbitmq() {
    if port_open 5672; then
        log "RabbitMQ answers on 127.0.0.1:5672"
        return
    fi
    if ! command -v rabbitmq-server >/dev/null; then
        apt_install rabbitmq-server
    fi
    log "starting RabbitMQ (loopback only)"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1
    rabbitmq-server -detached
    wait_for_port 5672 RabbitMQ 90
    timeout 60 rabbitmq-diagnostics -q ping >/dev/null || die "RabbitMQ does not answer pings"
}

# qemu-img: the agent's conversions, the tests' disk images, and Cinder's
# image_utils (the consumers tests).
ensure_qemu_img() {
    if command -v qemu-img >/dev/null; then
        log "qemu-img is installed"
        return
    fi
    apt_install qemu-utils
}

case "${1:-all}" in
    postgresql) ensure_postgresql ;;
    rabbitmq) ensure_rabbitmq ;;
    qemu-img) ensure_qemu_img ;;
    all) ensure_postgresql; ensure_rabbitmq ;;
    *) die "usage: $0 [all|postgresql|rabbitmq|qemu-img]" ;;
esac
