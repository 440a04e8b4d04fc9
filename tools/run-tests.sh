#!/usr/bin/env bash
# The test command: lint, unit and functional tests, on a fresh machine.
#
# Installs tox into a cached venv, makes sure PostgreSQL and RabbitMQ run,
# then runs tox. The functional tests start the real Keystone + Glance
# deployment themselves (tools/testenv). Extra arguments go to tox;
# IMAGE_AGENT_TOX_ENVS picks other environments.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "run-tests: ERROR: Python 3.11 or newer is needed as python3" >&2
    exit 1
}

# openstack-constraints is left out: with its default constraints (the
# same pins as upper-constraints.txt) it repeats py3; see the README.
envs=${IMAGE_AGENT_TOX_ENVS:-pep8,py3,functional,consumers,devstack,faults,quickstart,docs,releasenotes}

tools/ensure-services.sh all
# qemu-img: the agent inspects and converts images with it; the tests
# make their disk images with it.
case ",$envs," in
    *,py3,*|*,functional,*|*,faults,*|*,quickstart,*|*,consumers,*|*,openstack-constraints,*)
        tools/ensure-services.sh qemu-img ;;
esac

cache=${XDG_CACHE_HOME:-$HOME/.cache}/image-agent
tox_venv=$cache/tox-venv
if [ ! -x "$tox_venv/bin/tox" ]; then
    echo "run-tests: installing tox into $tox_venv"
    python3 -m venv "$tox_venv"
    "$tox_venv/bin/pip" install -q 'tox>=4.0.0'
fi

exec "$tox_venv/bin/tox" -e "$envs" "$@"
