"""Options of the ``[peers]`` group: agents fetching image bytes from
each other (``image_agent.peers``).

Off by default: ``enabled`` is the one switch. The others say where this
agent's peer server listens, what other agents are told to connect to, and
how the port is secured (TLS).
"""

from oslo_config import cfg

GROUP = 'peers'

peers_group = cfg.OptGroup(
    GROUP,
    title='Peer-to-peer image spread',
    help='Pre-caching agents fetch an image\'s bytes from other agents '
    'that have it in their cache, instead of all from Glance. Glance '
    'stays the source of truth: every byte is checked against the hash '
    'Glance recorded, and an agent serves bytes only to a request whose '
    'token Glance accepts for downloading that image now.',
)

peers_opts = [
    cfg.BoolOpt(
        'enabled',
        default=False,
        help='Serve cached images to other agents and fetch images from '
        'the peers a pre-cache request names. Opens a TCP port '
        '(listen_address, listen_port): restrict it to the agents\' '
        'network and set tls_cert_file/tls_key_file.',
    ),
    cfg.HostAddressOpt(
        'listen_address',
        default='127.0.0.1',
        help='Address the peer server binds to. Use the address of the '
        'compute/storage network the agents share; never a public one.',
    ),
    cfg.PortOpt(
        'listen_port',
        default=9393,
        help='TCP port of the peer server (0: any free port, as tests do).',
    ),
    cfg.StrOpt(
        'advertise_host',
        help='Host name or address other agents connect to (default: '
        'listen_address). Must match the certificate with TLS.',
    ),
    cfg.PortOpt(
        'advertise_port',
        help='Port other agents connect to (default: the port the server '
        'bound), for a proxy or port forwarding in front of it.',
    ),
    cfg.StrOpt(
        'tls_cert_file',
        help='PEM certificate (chain) of the peer server. With '
        'tls_key_file, the server speaks HTTPS only: callers\' tokens and '
        'image bytes never cross the network in clear.',
    ),
    cfg.StrOpt(
        'tls_key_file',
        secret=True,
        help='PEM private key of tls_cert_file.',
    ),
    cfg.StrOpt(
        'tls_ca_file',
        help='CA bundle that signs the other agents\' peer certificates; '
        'the fetching side verifies them with it (default: the system\'s).',
    ),
    cfg.IntOpt(
        'max_connections',
        default=8,
        min=1,
        help='Requests the peer server serves at once (its threads); '
        'more wait in the listen backlog.',
    ),
    cfg.IntOpt(
        'max_peers',
        default=4,
        min=1,
        help='Peers of one pre-cache request that are tried, at most.',
    ),
    cfg.FloatOpt(
        'timeout',
        default=10.0,
        min=0.1,
        help='Seconds to connect to a peer and for each read from it; a '
        'slower peer is left for the next one or for Glance.',
    ),
    cfg.IntOpt(
        'avoid_seconds',
        default=600,
        min=0,
        help='Seconds a peer that sent bytes whose hash did not match '
        'Glance\'s is not asked again.',
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(peers_group)
    conf.register_opts(peers_opts, group=peers_group)


def list_opts() -> dict:
    return {peers_group: peers_opts}
