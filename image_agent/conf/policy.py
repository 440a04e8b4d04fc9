"""Options of the ``[policy]`` group: which roles each guarded call needs.

Read by ``image_agent.policy`` (the rules) and ``image_agent.identity``
(how long Keystone's answer about a token is kept). Roles are those Keystone
gives for the caller's token, never those a request claims.
"""

from oslo_config import cfg

from image_agent.conf import shared

GROUP = 'policy'

policy_group = cfg.OptGroup(
    GROUP,
    title='Policy options',
    help='Who may do what over RPC. Every call needs a token Keystone '
    'accepts (with auth_strategy = keystone); the calls below also need '
    'one of the listed roles on that token. The defaults are as strict as '
    "Glance's own policy.",
)

policy_opts = [
    cfg.ListOpt(
        'precache_roles',
        default=['admin'],
        help='Roles that may pre-cache images (fills the cache of every '
        'agent it is sent to, with Glance traffic and disk).',
    ),
    cfg.ListOpt(
        'cache_roles',
        default=['admin'],
        help='Roles that may list the image cache (ids and paths of every '
        "user's images) and evict images from it.",
    ),
    cfg.ListOpt(
        'status_roles',
        default=['admin', 'service'],
        help='Roles that see the running transfers (image ids, paths) in '
        'the answer to ping; others get only the agent\'s name, version '
        'and uptime.',
    ),
    cfg.ListOpt(
        'location_roles',
        default=['admin', 'service'],
        help='Roles for which get_location uses the image location API with '
        "the agent's [glance] service credentials (Glance allows that API "
        'to admin and service only), and that may add a location whose URL '
        'is not http(s) (always with their own token). Others get the '
        'locations Glance shows to their own token, and may add http(s) '
        'locations with their own token only.',
    ),
    cfg.IntOpt(
        'token_cache_time',
        default=60,
        min=0,
        help='Seconds Keystone\'s answer about a caller\'s token (valid, '
        'with its user, project and roles; or unknown) is kept, keyed by a '
        'hash of the token. Never longer than the token lives. 0: Keystone '
        'is asked on every call.',
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    shared.register_group(conf, policy_group)
    conf.register_opts(policy_opts, group=policy_group)


def list_opts() -> dict:
    return {policy_group: policy_opts}
