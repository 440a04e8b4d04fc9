"""Configuration for image-agent.

Every option group lives in its own module with ``register_opts(conf)`` and
``list_opts()``. Importing this package registers nothing: the client
library (``image_agent.rpcapi``) is imported into other services' processes,
whose ``cfg.CONF`` holds options of the same names (``[DEFAULT] host``,
``[glance]``...), and registers only its own groups (``client``) on the
ConfigOpts it is given.

The agent's options (``[DEFAULT]``, ``[agent]``, ``[glance]``) are
registered on the global ``cfg.CONF`` by ``register_opts``, which runs the
first time ``CONF`` is read from this package: the agent's modules read it
when they are imported, the agent's entry point before it parses its
configuration. The global ``cfg.CONF`` because oslo.messaging 18 registers
its tracing options only there; tests use oslo.config's fixture to change
values.
"""

from typing import Any

from oslo_config import cfg

from image_agent.conf import agent
from image_agent.conf import default
from image_agent.conf import glance
from image_agent.conf import peers
from image_agent.conf import policy
from image_agent.conf import service_user


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the agent's own option groups on ``conf``."""
    agent.register_opts(conf)
    default.register_opts(conf)
    glance.register_opts(conf)
    peers.register_opts(conf)
    policy.register_opts(conf)
    service_user.register_opts(conf)


def __getattr__(name: str) -> Any:
    # ``conf.CONF``: the global ConfigOpts with the agent's options on it.
    # Kept as a module attribute once registered, so this runs once.
    if name == 'CONF':
        register_opts(cfg.CONF)
        globals()['CONF'] = cfg.CONF
        return cfg.CONF
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
