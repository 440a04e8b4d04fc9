"""``python3 -m tools.quickstart [start|stop|status|clean]`` (repo root).

Use ``tools/quickstart.sh``: it installs the system packages this needs.
"""

from __future__ import annotations

import argparse
import sys

from tools.quickstart import steps
from tools.quickstart.layout import Layout
from tools.testenv.util import DeploymentError

COMMANDS = {
    'start': steps.start,
    'stop': steps.stop,
    'status': steps.status,
    'clean': steps.clean,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='tools/quickstart.sh',
        description='image-agent on this machine, shown doing its job.',
    )
    parser.add_argument(
        'command',
        nargs='?',
        default='start',
        choices=sorted(COMMANDS),
        help='start (default): start or reuse everything and show a '
        'download; stop: stop the agent and the deployment; status; '
        'clean: stop and remove the state dir and databases',
    )
    parser.add_argument(
        '--state-dir',
        help='default: $IMAGE_AGENT_QUICKSTART_DIR or '
        '/tmp/image-agent-quickstart',
    )
    args = parser.parse_args(argv)
    layout = Layout(args.state_dir)
    try:
        return COMMANDS[args.command](layout)
    except DeploymentError as e:
        steps.say('ERROR: %s' % e)
        return 1
    except KeyboardInterrupt:
        steps.say('interrupted')
        return 130


if __name__ == '__main__':
    sys.exit(main())
