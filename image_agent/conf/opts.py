"""Entry point for oslo-config-generator: every option group of the agent."""

from image_agent.conf import agent
from image_agent.conf import default
from image_agent.conf import glance
from image_agent.conf import policy
from image_agent.conf import service_user

_MODULES = (default, agent, glance, policy, service_user)


def list_opts() -> list:
    """Return ``[(group, [opts])]`` for the sample configuration file."""
    groups: dict = {}
    for module in _MODULES:
        for group, opts in module.list_opts().items():
            groups.setdefault(group, []).extend(opts)
    return list(groups.items())
