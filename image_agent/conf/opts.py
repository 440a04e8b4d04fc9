"""Entry points for oslo-config-generator.

``image-agent``: every option the agent and ``image-agent-client`` read
(the command reads the agent's file). ``image_agent.client``: the client
library's options only, for the sample files of the services that call the
agents.
"""

from image_agent.conf import agent
from image_agent.conf import client
from image_agent.conf import default
from image_agent.conf import glance
from image_agent.conf import peers
from image_agent.conf import policy
from image_agent.conf import service_user

_MODULES = (default, agent, glance, peers, policy, service_user, client)


def _gather(modules) -> list:
    groups: dict = {}
    for module in modules:
        for group, opts in module.list_opts().items():
            groups.setdefault(group, []).extend(opts)
    return list(groups.items())


def list_opts() -> list:
    """Return ``[(group, [opts])]`` for the sample configuration file."""
    return _gather(_MODULES)


def list_client_opts() -> list:
    """``[(group, [opts])]`` of the client library alone."""
    return _gather((client,))
