"""``image-agent-client``: every operation of the agent, from a shell.

The caller acts with its own credentials (``credentials``: any keystoneauth
auth type, the ``OS_*`` variables, ``clouds.yaml``): a Keystone token and
service catalog are obtained and sent with the call; the agent uses them
towards Glance. Results are shown with cliff's formatters (``output``).
The arguments are ``client_parser``'s, what each command calls
``client_commands``'s; here the command runs and its errors become one
line.
"""

import logging
import sys
import threading
from typing import Any

from keystoneauth1 import exceptions as ks_exceptions
import oslo_messaging as messaging

from image_agent import conf
from image_agent import exception
from image_agent import rpc
from image_agent import rpcapi
from image_agent.cmd import credentials
from image_agent.cmd import output
from image_agent.cmd.client_commands import run_command
from image_agent.cmd.client_parser import build_parser
from image_agent.conf import messaging as messaging_conf

# Exit status: 0 success, 1 any error (a partial pre-cache included),
# 2 a usage error (argparse), 130 interrupted.
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

__all__ = ['build_parser', 'main', 'make_context', 'run_command']

make_context = credentials.make_context


def _hint(error: BaseException, ctxt) -> str:
    """What to do about an error, where the command knows better."""
    if isinstance(error, exception.DestinationExists):
        return ' Use --overwrite to replace it.'
    if isinstance(error, exception.NotAuthorized) and not getattr(
        ctxt, 'auth_token', None
    ):
        return (
            ' No credentials were given: source your openrc (OS_AUTH_URL, '
            'OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, '
            'OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME) or set OS_CLOUD.'
        )
    return ''


def _one_line(error: BaseException, ctxt=None) -> str:
    if isinstance(error, exception.ImageAgentException):
        text = error.msg  # without the remote traceback
    elif isinstance(error, messaging.MessagingTimeout):
        # The library raises AgentTimeout; this is a last resort, without
        # oslo.messaging's internal message id.
        text = 'no answer from an image agent in time'
    elif isinstance(error, ks_exceptions.ClientException):
        text = 'Keystone authentication failed: %s' % error
    else:
        text = '%s: %s' % (type(error).__name__, error)
    lines = [line for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else type(error).__name__
    return line + _hint(error, ctxt)


def _failed_somewhere(command: str, result: Any) -> bool:
    """A pre-cache that failed for any host or image (the table says which)."""
    return command == 'precache' and any(
        outcome['status'] in ('error', 'skipped')
        for outcomes in result.values()
        for outcome in outcomes.values()
    )


# Seconds the command waits for its transport to close before it exits.
# oslo.messaging's reply poller may take up to 5 s to notice; the process
# exiting closes the connections as well.
RELEASE_WAIT = 0.5


def _release(transport) -> None:
    """Close the transport without delaying the exit past --timeout."""
    closer = threading.Thread(target=transport.cleanup, daemon=True)
    closer.start()
    closer.join(RELEASE_WAIT)


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    config = conf.CONF
    messaging_conf.set_defaults(config)
    # The AMQP library warns about the broker's late answers to a request
    # it refused (no agent listening); the error line says it all.
    logging.getLogger('amqp').setLevel(logging.ERROR)
    ctxt = None
    try:
        config(
            [],
            project='image-agent',
            default_config_files=args.config_file or None,
        )
        ctxt = make_context(args)
        transport = rpc.get_transport(config, url=args.transport_url)
        # The agent's configuration file serves the command too: its
        # [agent] topic is the agents' topic.
        api = rpcapi.ImageAgentAPI(
            transport=transport,
            topic=args.topic or config.agent.topic,
            conf=config,
            timeout=args.timeout,
            retry=3,
        )
        try:
            result = run_command(api, ctxt, args)
        finally:
            _release(transport)
    except KeyboardInterrupt:
        print('image-agent-client: interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        print('ERROR: %s' % _one_line(e, ctxt), file=sys.stderr)
        return EXIT_ERROR
    output.emit(result, args.command, args)
    return EXIT_ERROR if _failed_somewhere(args.command, result) else 0


if __name__ == '__main__':
    sys.exit(main())
