"""``image-agent-status upgrade check``: is this host's agent ready to run?

Run on a host with the agent's configuration, before and after an upgrade,
as ``nova-status`` and ``cinder-status`` are. Each check reads the
configuration the agent would read and asks the real peers: Keystone with
the ``[glance]`` service credentials, every Glance server, the local
directories, the message broker, and the agents listening on the topic.
The exit code is oslo.upgradecheck's: 0 success, 1 warning, 2 failure.
The checks themselves are in ``image_agent.checks``.
"""

import sys

from oslo_config import cfg
from oslo_upgradecheck import upgradecheck

from image_agent import conf
from image_agent.checks import agents
from image_agent.checks import disks
from image_agent.checks import glance
from image_agent.i18n import _
from image_agent.peers import checks as peer_checks


class Checks(upgradecheck.UpgradeCommands):
    """The checks of ``image-agent-status upgrade check``, in order."""

    def __init__(self, cfg_: cfg.ConfigOpts) -> None:
        self.conf = cfg_

    _upgrade_checks = (
        (
            _('Glance with the service credentials'),
            lambda self: glance.check_glance(self.conf),
        ),
        (
            _('Download and upload roots'),
            lambda self: disks.check_roots(self.conf),
        ),
        (_('Image cache'), lambda self: disks.check_cache(self.conf)),
        (_('Peers'), lambda self: peer_checks.check_peers(self.conf)),
        (
            _('Message transport'),
            lambda self: agents.check_transport(self.conf),
        ),
        (
            _('RPC version of the running agents'),
            lambda self: agents.check_agents(self.conf),
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return upgradecheck.main(
        conf.CONF,
        project='image-agent',
        upgrade_command=Checks(conf.CONF),
        argv=sys.argv[1:] if argv is None else argv,
    )


if __name__ == '__main__':
    sys.exit(main())
