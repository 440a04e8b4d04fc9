"""``image-agent``: the daemon serving the image API over RPC."""

import sys

from oslo_log import log as logging
from oslo_service import backend
from oslo_service import service

from image_agent import conf
from image_agent import reports
from image_agent import service as agent_service
from image_agent import version
from image_agent.conf import messaging as messaging_conf

LOG = logging.getLogger(__name__)
# Seconds a thread waiting for the GIL waits before it asks for it (Python's
# default is 0.005). Downloads keep several threads taking and releasing the
# GIL around large C calls; an RPC call needs the GIL a few times on its way
# through the agent, and at 5 ms a wait its latency grew with every
# download running.
GIL_SWITCH_INTERVAL = 0.001


def main(argv: list[str] | None = None) -> int:
    if backend.get_backend_type() is not backend.BackendType.THREADING:
        sys.exit(
            'image-agent: the threading backend of oslo.service could '
            'not be selected'
        )
    config = conf.CONF
    messaging_conf.set_defaults(config)
    logging.register_options(config)
    reports.register_opts(config)
    config(
        sys.argv[1:] if argv is None else argv,
        project='image-agent',
        version=version.version_string(),
    )
    logging.setup(config, 'image-agent')
    reports.setup_signal(config)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    config.log_opt_values(LOG, logging.DEBUG)
    launcher = service.launch(
        config, agent_service.AgentService(config), restart_method='mutate'
    )
    return launcher.wait() or 0


if __name__ == '__main__':
    sys.exit(main())
