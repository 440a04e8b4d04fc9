#!/bin/bash
# -*- mode: shell-script -*-
# devstack/plugin.sh - DevStack plugin of image-agent
#
# DevStack sources this file as ``plugin.sh <mode> [<phase>]`` after
# devstack/settings, at these points:
#
#   stack install      setup_develop of this repository
#   stack post-config  image-agent.conf, the download/upload roots and the
#                      Keystone service user of the [glance] credentials
#   stack extra        start the image-agent process
#   unstack            stop it
#   clean              remove the configuration and the roots
#
# Nothing happens unless the image-agent service is enabled.


# Functions
# ---------

# _image_agent_roots - print every configured root, download roots first,
# one a line, blanks around each trimmed (as oslo.config's ListOpt does).
function _image_agent_roots {
    local all="$IMAGE_AGENT_DOWNLOAD_ROOTS"
    if [[ -n "$IMAGE_AGENT_UPLOAD_ROOTS" ]]; then
        all+=",$IMAGE_AGENT_UPLOAD_ROOTS"
    fi
    local -a roots
    local root
    IFS=, read -r -a roots <<< "$all"
    for root in "${roots[@]}"; do
        root="${root#"${root%%[![:space:]]*}"}"
        root="${root%"${root##*[![:space:]]}"}"
        if [[ -n "$root" ]]; then
            echo "$root"
        fi
    done
}

# _image_agent_removable <path> - true when clean may ``rm -rf`` the path:
# absolute, no empty, "." or ".." component, at least two levels deep (so
# never "/", /srv or /home).
function _image_agent_removable {
    local path=${1%/}
    [[ "$path" =~ ^/[^/]+/. ]] || return 1
    [[ "$path/" != *//* && "$path/" != */./* && "$path/" != */../* ]]
}

# _image_agent_iniset_credentials <conf> <section> - the service user's
# password credentials (keystoneauth options) in <section>
function _image_agent_iniset_credentials {
    local conf=$1 section=$2
    iniset "$conf" "$section" auth_type password
    iniset "$conf" "$section" auth_url "$KEYSTONE_SERVICE_URI"
    iniset "$conf" "$section" username "$IMAGE_AGENT_SERVICE_USER"
    iniset "$conf" "$section" password "$SERVICE_PASSWORD"
    iniset "$conf" "$section" project_name "$SERVICE_PROJECT_NAME"
    iniset "$conf" "$section" user_domain_name "$SERVICE_DOMAIN_NAME"
    iniset "$conf" "$section" project_domain_name "$SERVICE_DOMAIN_NAME"
}

# install_image_agent - install the package and its console scripts
function install_image_agent {
    setup_develop "$IMAGE_AGENT_DIR"
}

# configure_image_agent - write image-agent.conf, create the roots
function configure_image_agent {
    local conf=$IMAGE_AGENT_CONF
    sudo install -d -o "$STACK_USER" -m 0755 "$IMAGE_AGENT_CONF_DIR"
    # A new file each time, so nothing stays from an earlier stack. It
    # holds the service password: readable by $STACK_USER only.
    rm -f "$conf"
    install -m 0600 /dev/null "$conf"

    iniset_rpc_backend image-agent "$conf"
    iniset "$conf" DEFAULT host "$IMAGE_AGENT_HOST"
    iniset "$conf" DEFAULT debug "$IMAGE_AGENT_DEBUG"
    iniset "$conf" DEFAULT auth_strategy "$IMAGE_AGENT_AUTH_STRATEGY"

    iniset "$conf" agent topic "$IMAGE_AGENT_TOPIC"
    iniset "$conf" agent download_roots "$IMAGE_AGENT_DOWNLOAD_ROOTS"
    if [[ -n "$IMAGE_AGENT_UPLOAD_ROOTS" ]]; then
        iniset "$conf" agent upload_roots "$IMAGE_AGENT_UPLOAD_ROOTS"
    fi
    if [[ -n "$IMAGE_AGENT_FILE_MODE" ]]; then
        iniset "$conf" agent file_mode "$IMAGE_AGENT_FILE_MODE"
    fi

    if [[ -n "$IMAGE_AGENT_GLANCE_API_SERVERS" ]]; then
        iniset "$conf" glance api_servers "$IMAGE_AGENT_GLANCE_API_SERVERS"
    fi
    iniset "$conf" glance catalog_info "$IMAGE_AGENT_GLANCE_CATALOG_INFO"
    iniset "$conf" glance region_name "$REGION_NAME"
    iniset "$conf" glance interface "$IMAGE_AGENT_GLANCE_INTERFACE"
    if [[ -n "$IMAGE_AGENT_ALLOWED_DIRECT_URL_SCHEMES" ]]; then
        iniset "$conf" glance allowed_direct_url_schemes \
            "$IMAGE_AGENT_ALLOWED_DIRECT_URL_SCHEMES"
    fi
    if [[ "$IMAGE_AGENT_AUTH_STRATEGY" == "keystone" ]]; then
        # The service credentials: token validation, the agent's catalog,
        # the location API for callers with [policy] location_roles.
        _image_agent_iniset_credentials "$conf" glance
        if [[ "$IMAGE_AGENT_USE_SERVICE_TOKEN" == "True" ]]; then
            iniset "$conf" service_user send_service_user_token True
            _image_agent_iniset_credentials "$conf" service_user
        fi
    elif [[ "$IMAGE_AGENT_USE_SERVICE_TOKEN" == "True" ]]; then
        local msg="image-agent: IMAGE_AGENT_USE_SERVICE_TOKEN needs"
        msg+=" the keystone auth strategy; no [service_user] written"
        warn $LINENO "$msg"
    fi
    if is_service_enabled tls-proxy; then
        iniset "$conf" glance cafile "$SSL_BUNDLE_FILE"
    fi

    sudo install -d -o "$STACK_USER" -m 0755 "$IMAGE_AGENT_DATA_DIR"
    local -a roots
    local root
    mapfile -t roots < <(_image_agent_roots)
    for root in "${roots[@]}"; do
        if [[ "$root" != /* ]]; then
            die $LINENO "image-agent: root directory '$root' is not absolute"
        fi
        sudo install -d -o "$STACK_USER" -m 0755 "$root"
    done
}

# create_image_agent_accounts - the service user of the [glance] credentials
function create_image_agent_accounts {
    if [[ "$IMAGE_AGENT_AUTH_STRATEGY" != "keystone" ]]; then
        return
    fi
    create_service_user "$IMAGE_AGENT_SERVICE_USER" "$IMAGE_AGENT_SERVICE_ROLE"
}

# start_image_agent - run the agent under DevStack's process control
function start_image_agent {
    local command="$IMAGE_AGENT_BIN_DIR/image-agent"
    run_process image-agent "$command --config-file $IMAGE_AGENT_CONF"
}

# stop_image_agent - stop the agent
function stop_image_agent {
    stop_process image-agent
}

# cleanup_image_agent - remove the configuration, the roots and the state
function cleanup_image_agent {
    sudo rm -f "$IMAGE_AGENT_CONF"
    if [[ -d "$IMAGE_AGENT_CONF_DIR" ]]; then
        sudo rmdir --ignore-fail-on-non-empty "$IMAGE_AGENT_CONF_DIR"
    fi
    if [[ "$IMAGE_AGENT_CLEAN_ROOTS" != "True" ]]; then
        return
    fi
    local -a paths
    local path
    mapfile -t paths < <(_image_agent_roots)
    for path in "${paths[@]}" "$IMAGE_AGENT_DATA_DIR"; do
        if _image_agent_removable "$path"; then
            sudo rm -rf "$path"
        else
            warn $LINENO "image-agent: not removing '$path'"
        fi
    done
}


# Dispatch
# --------

if is_service_enabled image-agent; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing image-agent"
        install_image_agent

    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring image-agent"
        configure_image_agent
        create_image_agent_accounts

    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting image-agent"
        start_image_agent
    fi

    if [[ "$1" == "unstack" ]]; then
        stop_image_agent
    fi

    if [[ "$1" == "clean" ]]; then
        cleanup_image_agent
    fi
fi
