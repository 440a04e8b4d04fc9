# -*- mode: shell-script -*-
# Stand-ins for the DevStack functions that devstack/settings and
# devstack/plugin.sh call, so that the plugin runs without DevStack.
#
# Every stub that acts appends one line to $STUB_LOG: its name and its
# arguments, separated by tabs. Stubs that DevStack implements as pure
# helpers (trueorfalse, get_python_exec_prefix) behave like DevStack's;
# iniset writes a real ini file, as DevStack's does.
#
# Environment:
#   STUB_LOG        the call log (appended to)
#   STUB_SANDBOX    the only tree in which ``sudo`` may touch a path
#   STUB_PYTHON     the python that runs iniset.py
#   STUB_EXEC_PREFIX  what get_python_exec_prefix prints
#   ENABLED_SERVICES, DISABLED_SERVICES  as in DevStack (comma separated)

: "${STUB_LOG:?}" "${STUB_SANDBOX:?}" "${STUB_PYTHON:?}"
STUB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ENABLED_SERVICES=${ENABLED_SERVICES:-}
DISABLED_SERVICES=${DISABLED_SERVICES:-}

function _stub_record {
    local IFS=$'\t'
    printf '%s\n' "$*" >> "$STUB_LOG"
}

function _stub_ini_write {
    "$STUB_PYTHON" "$STUB_DIR/iniset.py" "$@"
}

# Plugin registration and services
# --------------------------------

function define_plugin {
    _stub_record define_plugin "$@"
}

function is_service_enabled {
    _stub_record is_service_enabled "$@"
    local service
    for service in "$@"; do
        if [[ ,${ENABLED_SERVICES}, == *,${service},* ]]; then
            return 0
        fi
    done
    return 1
}

# Like DevStack's: a service disabled in local.conf stays disabled.
function enable_service {
    _stub_record enable_service "$@"
    local service
    for service in "$@"; do
        if [[ ,${DISABLED_SERVICES}, == *,${service},* ]]; then
            continue
        fi
        if [[ ,${ENABLED_SERVICES}, != *,${service},* ]]; then
            ENABLED_SERVICES+=",$service"
        fi
    done
    ENABLED_SERVICES=${ENABLED_SERVICES#,}
}

# Helpers
# -------

function get_python_exec_prefix {
    echo "${STUB_EXEC_PREFIX:-/usr/local/bin}"
}

function trueorfalse {
    local default=$1
    local value=${!2:-}
    case "$value" in
        1 | [yY]es | YES | [tT]rue | TRUE) echo True ;;
        0 | [nN]o | NO | [fF]alse | FALSE) echo False ;;
        *) echo "$default" ;;
    esac
}

function echo_summary {
    echo "summary: $*"
}

function warn {
    _stub_record warn "$@"
    echo "WARNING: $*" >&2
}

function die {
    _stub_record die "$@"
    echo "ERROR: $*" >&2
    exit 1
}

# Runs the command, but only on paths inside $STUB_SANDBOX: a plugin bug
# must not reach the real /etc or /.
function sudo {
    _stub_record sudo "$@"
    local arg
    for arg in "$@"; do
        if [[ "$arg" != /* || "$arg" == /dev/null ]]; then
            continue
        fi
        if [[ "$arg" != "$STUB_SANDBOX" && "$arg" != "$STUB_SANDBOX"/* ]]; then
            _stub_record refused sudo "$@"
            echo "stub sudo: refusing a path outside the sandbox: $arg" >&2
            return 1
        fi
    done
    "$@"
}

# Install, configuration, accounts, processes
# -------------------------------------------

function setup_develop {
    _stub_record setup_develop "$@"
}

# iniset [-sudo] <file> <section> <option> <value>
function iniset {
    _stub_record iniset "$@"
    if [[ "$1" == "-sudo" ]]; then
        shift
    fi
    _stub_ini_write "$1" "$2" "$3" "$4"
}

# iniset_rpc_backend <package> <file> [<section>]: like DevStack's RabbitMQ
# backend, sets transport_url.
function iniset_rpc_backend {
    _stub_record iniset_rpc_backend "$@"
    _stub_ini_write "$2" "${3:-DEFAULT}" transport_url \
        "rabbit://stackrabbit:rabbit-secret@192.0.2.5:5672/"
}

function create_service_user {
    _stub_record create_service_user "$@"
}

function get_or_create_user {
    _stub_record get_or_create_user "$@"
    echo "0123456789abcdef0123456789abcdef"
}

function get_or_add_user_project_role {
    _stub_record get_or_add_user_project_role "$@"
}

function run_process {
    _stub_record run_process "$@"
}

function stop_process {
    _stub_record stop_process "$@"
}
