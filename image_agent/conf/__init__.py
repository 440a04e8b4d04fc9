"""Configuration for image-agent.

Every option group lives in its own module with ``register_opts(conf)`` and
``list_opts()``. They are registered on the global ``cfg.CONF`` because
oslo.messaging registers some of its own options only there (see
``PEERS.md``); tests use oslo.config's fixture to change values.
"""

from oslo_config import cfg

from image_agent.conf import agent
from image_agent.conf import default
from image_agent.conf import glance

CONF = cfg.CONF

agent.register_opts(CONF)
default.register_opts(CONF)
glance.register_opts(CONF)
