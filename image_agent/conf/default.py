"""Options of the ``[DEFAULT]`` group."""

import socket

from oslo_config import cfg

from image_agent.conf import shared

AUTH_STRATEGIES = ('keystone', 'noauth')

default_opts = [
    cfg.StrOpt(
        'auth_strategy',
        default='keystone',
        choices=AUTH_STRATEGIES,
        help='How Glance requests are authenticated. "keystone" sends the '
        "caller's token (and the [glance] service credentials for "
        'privileged calls). "noauth" sends no token, only the identity '
        'headers of the request context; use it only with a Glance that '
        'runs without Keystone on a trusted network.',
    ),
    cfg.StrOpt(
        'host',
        default=socket.gethostname(),
        sample_default='<hostname>',
        help='Name of this agent. The agent listens on the topic and on '
        '"<topic>.<host>", so a caller can reach the agent of the host '
        'where a file must land. Any name the callers use for the host, '
        'not necessarily a DNS name.',
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    # Cinder and Nova have [DEFAULT] host and auth_strategy too; when the
    # library runs in their process, theirs are kept (see ``shared``).
    shared.register_beside(conf, default_opts)


def list_opts() -> dict:
    return {'DEFAULT': default_opts}
