#!/usr/bin/env bash
# image-agent on this machine, shown doing its job:
#
#   tools/quickstart.sh           start (or reuse) everything, then upload,
#                                 show, download and update an image
#   tools/quickstart.sh stop      stop the agent and the test deployment
#   tools/quickstart.sh status    what runs
#   tools/quickstart.sh clean     stop, then remove the state dir and databases
#
# Installs what is missing from the distribution (RabbitMQ and PostgreSQL
# through tools/ensure-services.sh, python3-venv, e2fsprogs), then hands over
# to python3 -m tools.quickstart. State: $IMAGE_AGENT_QUICKSTART_DIR or
# /tmp/image-agent-quickstart. Venvs are cached under ~/.cache/image-agent.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "quickstart: ERROR: $*" >&2; exit 1; }

apt_install() {
    command -v apt-get >/dev/null || die "$1 is missing and apt-get is not available: install $1 by hand"
    [ "$(id -u)" = 0 ] || die "$1 is missing: run as root or install it by hand"
    echo "quickstart: installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v python3 >/dev/null || die "python3 (3.11 or newer) is needed"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "Python 3.11 or newer is needed as python3 (found $(python3 -V 2>&1))"

command=${1:-start}
case "$command" in
    start)
        # Debian splits venv and ensurepip out of python3.
        python3 -c 'import ensurepip, venv' 2>/dev/null ||
            apt_install "python$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
        command -v mke2fs >/dev/null || [ -x /sbin/mke2fs ] || apt_install e2fsprogs
        PATH=$PATH:/sbin:/usr/sbin tools/ensure-services.sh all
        # The agent converts a qcow2 image to raw with it (a step shows it).
        PATH=$PATH:/sbin:/usr/sbin tools/ensure-services.sh qemu-img
        ;;
    stop|status|clean|-h|--help) ;;
    *) die "usage: $0 [start|stop|status|clean]" ;;
esac
PATH=$PATH:/sbin:/usr/sbin exec python3 -m tools.quickstart "$@"
