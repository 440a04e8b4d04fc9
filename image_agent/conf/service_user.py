"""Options of the ``[service_user]`` group: service tokens for long calls.

As in Nova and Cinder: with ``send_service_user_token`` every request made
with a caller's token also carries a token of this service user
(``X-Service-Token``). keystonemiddleware then accepts the caller's token
even after it expired (within Keystone's ``[token] allow_expired_window``),
so that a transfer that outlives the caller's token, and the resume of such
a transfer, still succeeds. The service token adds no right: Glance
authorizes the caller's token. The user needs a role listed in the
services' ``[keystone_authtoken] service_token_roles`` (``service``).
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from image_agent.conf import shared

GROUP = 'service_user'

service_user_group = cfg.OptGroup(
    GROUP,
    title='Service user options',
    help='A service token sent with the caller\'s token, so that a '
    'transfer outliving the caller\'s token still succeeds. The auth '
    'options are keystoneauth\'s (auth_type, auth_url, username...).',
)

service_user_opts = [
    cfg.BoolOpt(
        'send_service_user_token',
        default=False,
        help='Send a token of this service user (X-Service-Token) with '
        'every Glance request made with a caller\'s token. Glance then '
        'accepts a caller\'s token that expired during a long download or '
        'upload (and its resume). The user needs the "service" role.',
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    shared.register_group(conf, service_user_group)
    # Cinder and Nova have this group too: in their processes theirs is
    # kept (see ``shared``).
    shared.register_beside(conf, service_user_opts, GROUP)
    ks_loading.register_auth_conf_options(conf, GROUP)


def list_opts() -> dict:
    return {
        service_user_group: (
            service_user_opts
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_auth_plugin_conf_options('password')
        )
    }
