"""The checks of ``image-agent-status upgrade check``, one module a subject.

Each check reads the configuration the agent would read and asks the real
peers: Keystone with the ``[glance]`` service credentials and every Glance
server (``glance``), the local directories (``disks``), the message broker
and the agents listening on the topic (``agents``); ``[peers]`` is checked
by ``image_agent.peers.checks``. A check returns oslo.upgradecheck's
``Result``; the command that runs them is ``image_agent.cmd.status``.
"""

from oslo_upgradecheck import upgradecheck

Result = upgradecheck.Result
Code = upgradecheck.Code
# Seconds a Glance server, Keystone or an agent has to answer.
TIMEOUT = 10


def worst(results: list[Result]) -> Result:
    """One result for several findings: the worst code, every detail."""
    code = max((r.code for r in results), default=Code.SUCCESS)
    details = ' '.join(r.details for r in results if r.details)
    return Result(code, details or None)
