"""The arguments of ``image-agent-client``: global options, one
subcommand per operation of the agent, each with a ``--help`` that says
what it does."""

import argparse
import json
import os
import sys

from image_agent import rpcapi
from image_agent.cmd import credentials
from image_agent.cmd import output


def _env(*names: str, default: str | None = None) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return default


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError('expected KEY=VALUE, got %r' % text)
    return key, value


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError('invalid JSON: %s' % e) from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('expected a JSON object')
    return value


def _add_global_options(
    parser: argparse.ArgumentParser, argv: list[str]
) -> None:
    parser.add_argument(
        '--config-file',
        action='append',
        default=[],
        metavar='PATH',
        help='oslo.config file giving transport_url, [agent] topic, '
        '[image_agent] timeouts and [upgrade_levels] image_agent '
        '(repeatable; default: the usual image-agent.conf search)',
    )
    parser.add_argument(
        '--transport-url',
        default=_env('IMAGE_AGENT_TRANSPORT_URL'),
        help='RPC transport URL, e.g. rabbit://user:pass@host:5672/ '
        '(env IMAGE_AGENT_TRANSPORT_URL)',
    )
    parser.add_argument(
        '--topic',
        default=_env('IMAGE_AGENT_TOPIC'),
        help='RPC topic of the agents (default: [agent] topic)',
    )
    parser.add_argument(
        '--host',
        help='call the agent of this host (default: any agent of the '
        'topic; precache: the host to pre-cache)',
    )
    parser.add_argument(
        '--timeout',
        type=int,
        default=60,
        help='seconds to wait for an answer (default 60); a transfer must '
        'start within about half of it (or of [image_agent] '
        'call_monitor_timeout if shorter) and then runs as long as it '
        'needs, heartbeats telling that the agent is alive',
    )
    output.add_format_arguments(parser)
    credentials.add_arguments(parser, argv)


def _add_image_meta_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--meta',
        type=_json_object,
        default={},
        help='image metadata as a JSON object',
    )
    parser.add_argument('--name', help='the image\'s name')
    parser.add_argument(
        '--disk-format', help='raw, qcow2, vmdk, iso... (Glance\'s list)'
    )
    parser.add_argument(
        '--container-format', help='bare, ovf, docker... (usually bare)'
    )
    parser.add_argument(
        '--visibility', help='public, community, shared or private'
    )
    parser.add_argument(
        '--property',
        type=_key_value,
        action='append',
        default=[],
        metavar='KEY=VALUE',
        help='custom property (repeatable)',
    )
    parser.add_argument(
        '--file',
        metavar='PATH',
        help='upload this file, a path on the agent\'s host',
    )
    parser.add_argument(
        '--convert-from',
        metavar='FORMAT',
        help='the format of --file (raw, qcow2, vmdk, vhd, vhdx, vdi, iso, '
        'gpt): the agent inspects it and uploads it converted to the '
        'disk format (--disk-format, or the image\'s)',
    )


def _command(sub, name: str, summary: str, description: str = ''):
    """A subcommand whose --help says what it does, not only its name."""
    return sub.add_parser(
        name,
        help=summary,
        description=(summary[0].upper() + summary[1:] + '. ' + description),
    )


def _add_transfer_commands(sub) -> None:
    download = _command(
        sub,
        'download',
        "download an image to a path on the agent's host",
        'PATH is on the host of the agent that serves the call (--host), '
        "under one of its [agent] download_roots. The file is verified "
        "against the image's hash before it appears; an identical file "
        'already there is reused. On a terminal a progress line shows '
        'the bytes written (with --host).',
    )
    download.add_argument('image_id', metavar='IMAGE_ID')
    download.add_argument(
        'path', metavar='PATH', help="the destination, on the agent's host"
    )
    download.add_argument(
        '--overwrite',
        action='store_true',
        help='replace PATH when it exists with other content (without it '
        'the download fails with "already exists")',
    )
    download.add_argument(
        '--convert-to',
        choices=('raw',),
        help='write the image converted to this format (qemu-img on the '
        "agent's host, after the image was verified and inspected)",
    )
    create = _command(
        sub,
        'create',
        'create an image',
        "With --file, its data is uploaded from a path on the agent's "
        'host (under one of its [agent] upload_roots).',
    )
    _add_image_meta_options(create)
    create.add_argument(
        '--idempotency-key',
        metavar='KEY',
        help='create at most one image with this key in your project: '
        'after a timeout, run the same command again, or look the image '
        'up with find-created KEY',
    )
    find_created = _command(
        sub,
        'find-created',
        'the image a create --idempotency-key KEY made',
        'Exit status 1 when your project has none.',
    )
    find_created.add_argument('idempotency_key', metavar='KEY')
    update = _command(
        sub,
        'update',
        'update an image',
        'Properties not named are kept unless --purge-props is given.',
    )
    update.add_argument('image_id', metavar='IMAGE_ID')
    _add_image_meta_options(update)
    update.add_argument(
        '--purge-props',
        action='store_true',
        help='remove the custom properties not given',
    )
    update.add_argument('--store', help='the Glance store to upload to')
    update.add_argument(
        '--base-image-ref', help='the image this data was made from'
    )
    for command in (download, create, update):
        command.add_argument(
            '--no-progress',
            action='store_true',
            help='no progress line on the terminal, only the summary line',
        )


def _add_cache_commands(sub) -> None:
    precache = _command(
        sub,
        'precache',
        'put images in the caches of the agents of many hosts',
        'Each agent is pinged first; an agent that does not answer is '
        'skipped. A table per host is updated as hosts finish. The exit '
        'status is 1 when any image failed on any host.',
    )
    precache.add_argument(
        '--host',
        dest='hosts',
        action='append',
        metavar='HOST',
        help="an agent's host (repeatable; the global --host counts too)",
    )
    precache.add_argument('image_ids', nargs='+', metavar='IMAGE_ID')
    precache.add_argument(
        '--parallel',
        type=int,
        default=None,
        metavar='N',
        help='hosts pre-cached at once (default %d)'
        % rpcapi.ImageAgentAPI.PRECACHE_WORKERS,
    )
    precache.add_argument(
        '--ping-timeout',
        type=float,
        default=None,
        metavar='SECONDS',
        help='seconds an agent has to answer before it is skipped '
        '(default %d)' % rpcapi.ImageAgentAPI.PRECACHE_PING_TIMEOUT,
    )
    for name, summary in (
        ('cache-list', "the images in an agent's cache"),
        ('cache-evict', "remove an image from an agent's cache"),
    ):
        command = _command(
            sub, name, summary, 'Every agent has its own cache: --host.'
        )
        command.add_argument(
            '--host',
            dest='sub_host',
            metavar='HOST',
            help="the agent's host (or the global --host)",
        )
        if name == 'cache-evict':
            command.add_argument('image_id', metavar='IMAGE_ID')


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='image-agent-client',
        description='Call the image agents over RPC with your own '
        'credentials. Exit status: 0 success, 1 error (one line on '
        'stderr), 2 usage error, 130 interrupted.',
    )
    _add_global_options(parser, sys.argv[1:] if argv is None else argv)
    sub = parser.add_subparsers(dest='command', required=True)
    _command(
        sub,
        'ping',
        'the status of an agent',
        'Its host, pid, RPC version, uptime and running transfers.',
    )
    for name, summary in (
        ('show', 'show an image'),
        ('delete', 'delete an image'),
        ('get-location', 'the direct URL and locations of an image'),
        ('list-members', 'the members of an image'),
    ):
        _command(sub, name, summary).add_argument(
            'image_id', metavar='IMAGE_ID'
        )
    detail = _command(
        sub,
        'detail',
        'list images',
        'The table shows id, name, status, size, disk format and '
        'visibility; -f json or yaml every field, -c picks columns.',
    )
    detail.add_argument(
        '--filter',
        type=_key_value,
        action='append',
        default=[],
        metavar='KEY=VALUE',
        help="as Glance's filters, e.g. name=cirros (repeatable)",
    )
    detail.add_argument('--limit', type=int, metavar='N')
    detail.add_argument('--page-size', type=int, metavar='N')
    detail.add_argument('--marker', metavar='IMAGE_ID')
    detail.add_argument('--sort-key', metavar='KEY')
    detail.add_argument('--sort-dir', choices=('asc', 'desc'))
    _add_transfer_commands(sub)
    add_location = _command(sub, 'add-location', 'add a location to an image')
    add_location.add_argument('image_id', metavar='IMAGE_ID')
    add_location.add_argument('url', metavar='URL')
    add_location.add_argument(
        '--metadata',
        type=_json_object,
        default={},
        metavar='JSON',
        help="the location's metadata as a JSON object",
    )
    _command(sub, 'get-stores', "Glance's stores")
    _add_cache_commands(sub)
    return parser
