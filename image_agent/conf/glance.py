"""Options of the ``[glance]`` group: servers, retries and credentials."""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from image_agent.conf import shared

GROUP = 'glance'

glance_group = cfg.OptGroup(
    GROUP,
    title='Glance options',
    help='How image-agent finds and talks to the Glance API servers. The '
    'keystoneauth session options (TLS, timeout) apply to every request; '
    'the auth options are the service credentials used for privileged '
    'calls (the image location API).',
)

glance_opts = [
    cfg.ListOpt(
        'api_servers',
        help='Glance API servers, as URLs ("https://glance.example.com:9292",'
        ' "http://[::1]:9292/image"). A bare "host:port" means http. When '
        "unset, servers come from the caller's service catalog, then from "
        'Keystone. Calls received over RPC use only these servers or, when '
        "unset, those of the agent's own Keystone catalog (a caller's "
        'catalog may only pick among them).',
    ),
    cfg.IntOpt(
        'num_retries',
        default=3,
        min=0,
        help='How many times a failed request is retried (on another server '
        'when there are several). Each call makes at most num_retries + 1 '
        'attempts.',
    ),
    cfg.IntOpt(
        'download_max_resumes',
        default=30,
        min=0,
        help='How many times one download may resume after its stream broke '
        'off, however far each attempt got; then it fails. A stream that '
        'broke off without bringing at least 1 MiB since the previous '
        'failure counts against num_retries as well.',
    ),
    cfg.FloatOpt(
        'retry_backoff_base',
        default=0.5,
        min=0,
        help='Seconds of the first back-off before a server is tried again. '
        'It doubles on each round through the servers, with full jitter. A '
        'server not yet tried in the current call is tried at once.',
    ),
    cfg.FloatOpt(
        'retry_backoff_max',
        default=10.0,
        min=0,
        help='Upper bound, in seconds, of one back-off.',
    ),
    cfg.StrOpt(
        'catalog_info',
        default='image:glance:publicURL',
        help='How to find Glance in the service catalog of a request, as '
        '<service_type>:<service_name>:<endpoint_type>. Used when '
        'api_servers is unset.',
    ),
    cfg.StrOpt(
        'region_name',
        help='Region whose Glance endpoints are used when servers come from '
        'a service catalog. Unset: the first endpoint found.',
    ),
    cfg.StrOpt(
        'interface',
        default='public',
        choices=('public', 'internal', 'admin'),
        help='Endpoint interface asked of Keystone when neither api_servers '
        "nor the caller's catalog names a server.",
    ),
    cfg.IntOpt(
        'catalog_cache_time',
        default=300,
        min=0,
        help='Seconds the image endpoints of the agent\'s own Keystone '
        'catalog (asked with the service credentials when api_servers is '
        'unset) are kept before Keystone is asked again.',
    ),
    cfg.ListOpt(
        'allowed_direct_url_schemes',
        default=[],
        help='URL schemes that may be read directly instead of through the '
        'Glance API, e.g. "file" to copy a file:// location readable on '
        'this host.',
    ),
]


# Seconds a Glance request may wait for a connection or for each read.
DEFAULT_TIMEOUT = 120.0


def session_opts() -> list[cfg.Opt]:
    """keystoneauth's session options, with a default ``timeout``.

    requests applies it to the connection and to every read of the answer
    (not to the whole answer): a server that stops sending, before its
    headers or in the middle of an image, is given up after it, while a
    long download that keeps moving is never cut.
    """
    opts = [
        opt
        for opt in ks_loading.get_session_conf_options()
        if opt.dest != 'timeout'
    ]
    opts.append(
        cfg.FloatOpt(
            'timeout',
            default=DEFAULT_TIMEOUT,
            min=0,
            help='Seconds a request to Glance or Keystone waits for a '
            'connection, and then for each read of the answer: a server '
            'that stops sending (before its headers, or in the middle of '
            'an image) is given up after it; the download resumes on the '
            'next server. Not a limit on a whole download. 0: wait '
            'forever.',
        )
    )
    return opts


def register_opts(conf: cfg.ConfigOpts) -> None:
    shared.register_group(conf, glance_group)
    # Cinder and Nova define some of these too (in their processes the
    # library runs beside them): theirs are kept, see ``shared``.
    shared.register_beside(conf, glance_opts, GROUP)
    shared.register_beside(conf, session_opts(), GROUP)
    ks_loading.register_auth_conf_options(conf, GROUP)


def list_opts() -> dict:
    return {
        glance_group: (
            glance_opts
            + session_opts()
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_auth_plugin_conf_options('password')
        )
    }
