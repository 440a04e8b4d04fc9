"""The agent's defaults for oslo.messaging's RabbitMQ driver.

oslo.messaging reconnects to a broker that went away after 1 s, then 3, 5,
7... (``rabbit_retry_interval`` 1, ``rabbit_retry_backoff`` 2, up to
``rabbit_interval_max`` 30), plus ``kombu_reconnect_delay`` each time: after
an outage of some seconds an agent answered up to about 6 s after the
broker was back, and longer after longer outages. An agent has a couple of
connections to one broker, so it tries every second instead (the cost is a
connection attempt per second while the broker is away) and answers within
about 2 s of its return. A configuration file still overrides these.
"""

from oslo_config import cfg

# oslo.messaging's own option objects: its list_opts() gives copies, and
# the driver registers these when the transport is made.
from oslo_messaging._drivers import impl_rabbit

RABBIT_GROUP = 'oslo_messaging_rabbit'
RECONNECT_DEFAULTS = {
    'rabbit_retry_interval': 1,
    'rabbit_retry_backoff': 0,
    'rabbit_interval_max': 1,
    'kombu_reconnect_delay': 0.0,
}


def set_defaults(conf: cfg.ConfigOpts | None = None) -> None:
    """Make the fast reconnection the default of this process (the agent,
    the command-line client, the sample file), before options are read.

    Never called by the client library: a service importing it keeps its
    own defaults.
    """
    cfg.set_defaults(impl_rabbit.rabbit_opts, **RECONNECT_DEFAULTS)
