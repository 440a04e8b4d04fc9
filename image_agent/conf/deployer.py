"""The library options a deployer sets, described for the sample file.

oslo.log, oslo.messaging and oslo.service register and read these options
themselves; they are repeated here, with the same names, groups, types and
defaults, only so that ``etc/image-agent/image-agent.conf.sample`` shows
them without depending on the libraries' versions: their own namespaces
hold dozens of options that change from release to release. The full list
is in the configuration reference of the documentation.
"""

from oslo_config import cfg

default_opts = [
    cfg.StrOpt(
        'transport_url',
        default='rabbit://',
        secret=True,
        help='The RabbitMQ the agent and its callers meet on, as '
        'rabbit://USER:PASSWORD@HOST:PORT/VHOST; list several '
        '"USER:PASSWORD@HOST:PORT" separated by commas for a cluster '
        '(oslo.messaging).',
    ),
    cfg.StrOpt(
        'control_exchange',
        default='openstack',
        help='The exchange the topic lives in; callers must use the same '
        '(oslo.messaging).',
    ),
    cfg.IntOpt(
        'rpc_response_timeout',
        default=60,
        help='Seconds a caller waits for the answer of a call that is not '
        'a transfer (oslo.messaging).',
    ),
    cfg.BoolOpt(
        'debug',
        default=False,
        help='Log at DEBUG level (oslo.log).',
    ),
    cfg.StrOpt(
        'log_file',
        help='The log file; unset: standard error (oslo.log).',
    ),
    cfg.StrOpt(
        'log_dir',
        help='Directory of a relative log_file (oslo.log).',
    ),
    cfg.IntOpt(
        'graceful_shutdown_timeout',
        default=60,
        help='Seconds a SIGTERM waits for the service to stop before the '
        'process exits anyway; keep [agent] drain_timeout below it '
        '(oslo.service).',
    ),
]

rabbit_opts = [
    cfg.BoolOpt(
        'rabbit_quorum_queue',
        default=False,
        help='Declare the topic queues as quorum queues, replicated across '
        'a RabbitMQ cluster (oslo.messaging). Every service on the same '
        'queues must agree.',
    ),
    cfg.BoolOpt(
        'rabbit_transient_quorum_queue',
        default=False,
        help='Quorum queues for the reply and fanout queues too '
        '(oslo.messaging).',
    ),
    cfg.BoolOpt(
        'ssl',
        default=False,
        help='Connect to RabbitMQ over TLS (oslo.messaging).',
    ),
    # The agent's own defaults (image_agent.conf.messaging): reconnect
    # every second, so that it answers soon after the broker is back.
    cfg.IntOpt(
        'rabbit_retry_interval',
        default=1,
        min=1,
        help='Seconds before the first attempt to reconnect to RabbitMQ '
        '(oslo.messaging).',
    ),
    cfg.IntOpt(
        'rabbit_retry_backoff',
        default=0,
        min=0,
        help='Seconds added to the wait after each failed attempt; '
        'oslo.messaging\'s own default is 2 (oslo.messaging).',
    ),
    cfg.IntOpt(
        'rabbit_interval_max',
        default=1,
        min=1,
        help='Longest wait between two attempts to reconnect; '
        'oslo.messaging\'s own default is 30 (oslo.messaging).',
    ),
    cfg.FloatOpt(
        'kombu_reconnect_delay',
        default=0.0,
        min=0.0,
        help='Seconds added before each reconnection attempt; '
        'oslo.messaging\'s own default is 1.0 (oslo.messaging).',
    ),
]

notification_opts = [
    cfg.MultiStrOpt(
        'driver',
        default=[],
        help='How notifications are sent: "messagingv2" to publish the '
        'image.download.* events; unset: none (oslo.messaging).',
    ),
    cfg.ListOpt(
        'topics',
        default=['notifications'],
        help='Topics the notifications are published on (oslo.messaging).',
    ),
]

reports_opts = [
    cfg.StrOpt(
        'log_dir',
        help='Directory the Guru Meditation Reports are written to, one '
        'file each; unset: standard error (oslo.reports).',
    ),
    cfg.StrOpt(
        'file_event_handler',
        help='A file whose modification makes the agent write a Guru '
        'Meditation Report, instead of SIGUSR2 (oslo.reports).',
    ),
]


def list_opts() -> list:
    """``[(group, [opts])]`` for the sample configuration file."""
    return [
        ('DEFAULT', default_opts),
        ('oslo_messaging_rabbit', rabbit_opts),
        ('oslo_messaging_notifications', notification_opts),
        ('oslo_reports', reports_opts),
    ]
