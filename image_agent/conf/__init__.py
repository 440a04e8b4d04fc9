"""Configuration for image-agent.

Every option group lives in its own module with ``register_opts(conf)`` and
``list_opts()``. They are registered on the global ``cfg.CONF`` because
oslo.messaging 18 registers its tracing options only there (a private
``ConfigOpts`` fails every call); tests use oslo.config's fixture to change
values.
"""

from oslo_config import cfg

from image_agent.conf import agent
from image_agent.conf import default
from image_agent.conf import glance
from image_agent.conf import policy
from image_agent.conf import service_user

CONF = cfg.CONF

agent.register_opts(CONF)
default.register_opts(CONF)
glance.register_opts(CONF)
policy.register_opts(CONF)
service_user.register_opts(CONF)
