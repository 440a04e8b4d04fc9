"""``image-agent-client``: every operation of the agent, from a shell.

The caller acts with its own credentials (``credentials``: any keystoneauth
auth type, the ``OS_*`` variables, ``clouds.yaml``): a Keystone token and
service catalog are obtained and sent with the call; the agent uses them
towards Glance. Results are shown with cliff's formatters (``output``).
"""

import argparse
import json
import logging
import os
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
from image_agent.conf import messaging as messaging_conf

# Exit status: 0 success, 1 any error (a partial pre-cache included),
# 2 a usage error (argparse), 130 interrupted.
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


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


make_context = credentials.make_context


def _image_meta(args: argparse.Namespace) -> dict:
    meta = dict(args.meta)
    for key in ('name', 'disk_format', 'container_format', 'visibility'):
        value = getattr(args, key)
        if value is not None:
            meta[key] = value
    if args.property:
        properties = dict(meta.get('properties') or {})
        properties.update(dict(args.property))
        meta['properties'] = properties
    return meta


def _transfer_poller(api, ctxt, args, kind: str, image_id, path: str):
    """What the agent of ``--host`` says of this transfer, for the bar."""

    def poll():
        status = api.ping(ctxt, host=args.host)
        candidates = [
            t
            for t in status.get('transfers', [])
            if t['kind'] == kind
            and (image_id is None or t['image_id'] == image_id)
        ]
        # Ours is the one writing (or reading) our path; a download that
        # fills the image cache first writes the cache's entry instead.
        named = [
            t
            for t in candidates
            if os.path.basename(t['path']) == os.path.basename(path)
        ]
        for transfer in named or candidates[:1]:
            return (transfer['bytes'], transfer['size'], transfer.get('rate'))
        return None

    return poll if args.host else None


def _with_progress(label: str, args, call, poll=None):
    """Run a transfer call with a progress line; print its summary."""
    progress = output.Progress(
        label, poll=poll, enabled=False if args.no_progress else None
    )
    result = progress.run(call)
    print(
        progress.summary(result.get('size'), result.get('reused')),
        file=sys.stderr,
    )
    return result


def _download(api, ctxt, args) -> dict:
    return _with_progress(
        'download %s' % args.image_id,
        args,
        lambda: api.download(
            ctxt,
            args.image_id,
            args.path,
            host=args.host,
            overwrite=args.overwrite,
            convert_to=args.convert_to,
        ),
        _transfer_poller(
            api, ctxt, args, 'download', args.image_id, args.path
        ),
    )


def _upload(api, ctxt, args, label: str, call) -> dict:
    """A create or update; with --file, an upload shown as it goes."""
    if not args.file:
        return call()
    image_id = getattr(args, 'image_id', None)
    return _with_progress(
        '%s %s' % (label, os.path.basename(args.file)),
        args,
        call,
        _transfer_poller(api, ctxt, args, 'upload', image_id, args.file),
    )


def run_command(api: rpcapi.ImageAgentAPI, ctxt, args) -> Any:
    """Call the operation ``args.command`` names; return its result."""
    host = args.host
    command = args.command
    if command == 'ping':
        return api.ping(ctxt, host=host)
    if command == 'show':
        return api.show(ctxt, args.image_id, host=host)
    if command == 'delete':
        api.delete(ctxt, args.image_id, host=host)
        return {'id': args.image_id, 'deleted': True}
    if command == 'get-location':
        direct_url, locations = api.get_location(ctxt, args.image_id, host)
        return {'direct_url': direct_url, 'locations': locations}
    if command == 'list-members':
        return api.list_members(ctxt, args.image_id, host=host)
    if command == 'get-stores':
        return api.get_stores(ctxt, host=host)
    if command == 'detail':
        params = {
            'filters': dict(args.filter) or None,
            'limit': args.limit,
            'page_size': args.page_size,
            'marker': args.marker,
            'sort_key': args.sort_key,
            'sort_dir': args.sort_dir,
        }
        params = {k: v for k, v in params.items() if v is not None}
        return api.detail(ctxt, host=host, **params)
    if command == 'download':
        return _download(api, ctxt, args)
    if command == 'create':
        return _upload(
            api,
            ctxt,
            args,
            'upload',
            lambda: api.create(
                ctxt,
                _image_meta(args),
                path=args.file,
                host=host,
                idempotency_key=args.idempotency_key,
                convert_from=args.convert_from,
            ),
        )
    if command == 'find-created':
        image = api.find_created(ctxt, args.idempotency_key, host=host)
        if image is None:
            raise exception.NotFound(
                'No image of your project was created with idempotency '
                'key %s.' % args.idempotency_key
            )
        return image
    if command == 'update':
        return _upload(
            api,
            ctxt,
            args,
            'upload',
            lambda: api.update(
                ctxt,
                args.image_id,
                _image_meta(args),
                path=args.file,
                purge_props=args.purge_props,
                store_id=args.store,
                base_image_ref=args.base_image_ref,
                host=host,
                convert_from=args.convert_from,
            ),
        )
    if command == 'precache':
        hosts = list(args.hosts or [])
        if host and host not in hosts:
            hosts.append(host)
        if not hosts:
            raise exception.InvalidInput(
                reason='precache needs --host: the hosts whose agents '
                'cache the images'
            )
        board = output.PrecacheBoard(hosts)
        return api.precache(
            ctxt,
            args.image_ids,
            hosts,
            max_workers=args.parallel,
            ping_timeout=args.ping_timeout,
            progress=board.update,
        )
    if command in ('cache-list', 'cache-evict'):
        host = args.sub_host or host
        if not host:
            raise exception.InvalidInput(
                reason='%s needs --host: every agent has its own cache'
                % command
            )
        if command == 'cache-list':
            return api.list_cache(ctxt, host)
        return api.evict(ctxt, args.image_id, host)
    if command == 'add-location':
        return api.add_location(
            ctxt, args.image_id, args.url, args.metadata, host=host
        )
    raise AssertionError('unknown command %s' % command)


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
