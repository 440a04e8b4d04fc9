"""Options of the client library, in the services that call the agents.

``[image_agent]`` (the agents' topic, how long calls may take) and
``[upgrade_levels] image_agent`` (the RPC version calls are pinned to).
A consumer registers them on its own ConfigOpts with ``register_opts``
(``ImageAgentAPI`` does it when built); they never touch the consumer's
``[DEFAULT]`` or ``[glance]`` options. oslo-config-generator lists them
under the namespace ``image_agent.client``, for the consumer's sample file.
"""

from oslo_config import cfg

from image_agent.conf import shared

GROUP = 'image_agent'
UPGRADE_LEVELS = 'upgrade_levels'

client_group = cfg.OptGroup(
    GROUP,
    title='image-agent client options',
    help='How this service calls the image agents over RPC: their topic, '
    'and how long it waits for them.',
)

client_opts = [
    cfg.StrOpt(
        'topic',
        default='image-agent',
        help='RPC topic the image agents listen on (their [agent] topic). '
        'image-agent-client, which reads the agent\'s own file, takes '
        '[agent] topic instead.',
    ),
    cfg.IntOpt(
        'timeout',
        min=1,
        help='Seconds to wait for the answer to a call that is not a '
        'transfer (ping, show, detail, update of metadata...). Unset: '
        '[DEFAULT] rpc_response_timeout.',
    ),
    cfg.IntOpt(
        'transfer_timeout',
        default=6 * 3600,
        min=1,
        deprecated_opts=[cfg.DeprecatedOpt('transfer_timeout', group='agent')],
        help='Seconds to wait for a download, or an upload from a local '
        'path, to finish. Long on purpose: the agent heartbeats such calls, '
        'so a dead agent is noticed after call_monitor_timeout, not after '
        'this.',
    ),
    cfg.IntOpt(
        'call_monitor_timeout',
        default=10,
        min=2,
        deprecated_opts=[
            cfg.DeprecatedOpt('call_monitor_timeout', group='agent')
        ],
        help='Seconds without a reply or a heartbeat after which a '
        'transfer call is given up: the agent heartbeats every half of it. '
        'This is how soon a caller learns that the agent serving it died. '
        'A transfer that no agent takes up within about half of it never '
        'runs.',
    ),
]

upgrade_levels_opts = [
    cfg.StrOpt(
        'image_agent',
        deprecated_opts=[cfg.DeprecatedOpt('version_cap', group='agent')],
        help='Highest RPC API version sent to the image agents, for rolling '
        'upgrades: a version ("1.0"), a release ("2026.2", as listed in '
        'image_agent.rpcapi.ImageAgentAPI.VERSION_ALIASES), or "auto": the '
        'lowest version the agents report, asked once and remembered by '
        'each client. Unset: the newest version this library knows.',
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the client's options on ``conf`` (again: no effect)."""
    shared.register_group(conf, client_group)
    conf.register_opts(client_opts, group=client_group)
    conf.register_opts(upgrade_levels_opts, group=UPGRADE_LEVELS)


def list_opts() -> dict:
    return {client_group: client_opts, UPGRADE_LEVELS: upgrade_levels_opts}
