"""``image-agent-client``: every operation of the agent, from a shell.

The caller acts with its own credentials: with ``--os-auth-url`` (or
``OS_AUTH_URL``) a Keystone token and service catalog are obtained by
password and sent with the call; the agent uses them towards Glance. Without
Keystone (an agent in ``noauth`` mode) the identity comes from
``--os-user-id``, ``--os-project-id`` and ``--os-roles``.
"""

import argparse
import json
import os
import sys
from typing import Any

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
import oslo_messaging as messaging

from image_agent import conf
from image_agent import context as ia_context
from image_agent import exception
from image_agent import rpc
from image_agent import rpcapi
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


def _add_global_options(parser: argparse.ArgumentParser) -> None:
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
        '--host', help='call the agent of this host (default: any agent)'
    )
    parser.add_argument(
        '-f',
        '--format',
        choices=('table', 'json'),
        default='table',
        help='output format (default: table)',
    )
    parser.add_argument(
        '--timeout',
        type=int,
        default=60,
        help='seconds to wait for calls other than transfers (default 60)',
    )
    auth = parser.add_argument_group('Keystone (the caller\'s credentials)')
    auth.add_argument('--os-auth-url', default=_env('OS_AUTH_URL'))
    auth.add_argument('--os-username', default=_env('OS_USERNAME'))
    auth.add_argument('--os-password', default=_env('OS_PASSWORD'))
    auth.add_argument('--os-project-name', default=_env('OS_PROJECT_NAME'))
    auth.add_argument(
        '--os-user-domain-name',
        default=_env('OS_USER_DOMAIN_NAME', default='Default'),
    )
    auth.add_argument(
        '--os-project-domain-name',
        default=_env('OS_PROJECT_DOMAIN_NAME', default='Default'),
    )
    auth.add_argument('--os-cacert', default=_env('OS_CACERT'))
    auth.add_argument(
        '--insecure', action='store_true', help='do not verify TLS'
    )
    noauth = parser.add_argument_group('Identity without Keystone (noauth)')
    noauth.add_argument('--os-user-id', default=_env('OS_USER_ID'))
    noauth.add_argument('--os-project-id', default=_env('OS_PROJECT_ID'))
    noauth.add_argument(
        '--os-roles',
        default=_env('OS_ROLES', default='member,reader'),
        help='comma-separated roles (default member,reader)',
    )


def _add_image_meta_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--meta',
        type=_json_object,
        default={},
        help='image metadata as a JSON object',
    )
    parser.add_argument('--name')
    parser.add_argument('--disk-format')
    parser.add_argument('--container-format')
    parser.add_argument('--visibility')
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='image-agent-client',
        description='Call image-agent over RPC.',
    )
    _add_global_options(parser)
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('ping', help='status of an agent')
    for name, help_text in (
        ('show', 'show an image'),
        ('delete', 'delete an image'),
        ('get-location', 'direct URL and locations of an image'),
        ('list-members', 'members of an image'),
    ):
        sub.add_parser(name, help=help_text).add_argument('image_id')
    detail = sub.add_parser('detail', help='list images')
    detail.add_argument(
        '--filter',
        type=_key_value,
        action='append',
        default=[],
        metavar='KEY=VALUE',
    )
    detail.add_argument('--limit', type=int)
    detail.add_argument('--page-size', type=int)
    detail.add_argument('--marker')
    detail.add_argument('--sort-key')
    detail.add_argument('--sort-dir', choices=('asc', 'desc'))
    download = sub.add_parser(
        'download', help='download an image to a path on the agent\'s host'
    )
    download.add_argument('image_id')
    download.add_argument('path')
    download.add_argument('--overwrite', action='store_true')
    download.add_argument('--no-progress', action='store_true')
    create = sub.add_parser('create', help='create an image')
    _add_image_meta_options(create)
    update = sub.add_parser('update', help='update an image')
    update.add_argument('image_id')
    _add_image_meta_options(update)
    update.add_argument(
        '--purge-props',
        action='store_true',
        help='remove custom properties not given',
    )
    update.add_argument('--store')
    update.add_argument('--base-image-ref')
    add_location = sub.add_parser('add-location', help='add a location')
    add_location.add_argument('image_id')
    add_location.add_argument('url')
    add_location.add_argument('--metadata', type=_json_object, default={})
    sub.add_parser('get-stores', help='stores of Glance')
    precache = sub.add_parser(
        'precache',
        help='put images in the caches of the agents of many hosts',
    )
    precache.add_argument(
        '--host',
        dest='hosts',
        action='append',
        required=True,
        metavar='HOST',
        help='an agent\'s host (repeatable)',
    )
    precache.add_argument('image_ids', nargs='+', metavar='IMAGE')
    precache.add_argument(
        '--parallel',
        type=int,
        default=None,
        help='hosts pre-cached at once (default %d)'
        % rpcapi.ImageAgentAPI.PRECACHE_WORKERS,
    )
    precache.add_argument(
        '--ping-timeout',
        type=float,
        default=None,
        help='seconds an agent has to answer before it is skipped '
        '(default %d)' % rpcapi.ImageAgentAPI.PRECACHE_PING_TIMEOUT,
    )
    for name, help_text in (
        ('cache-list', 'images in the cache of an agent (needs --host)'),
        ('cache-evict', 'remove an image from an agent\'s cache'),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument(
            '--host', dest='sub_host', help='the agent\'s host'
        )
        if name == 'cache-evict':
            command.add_argument('image_id')
    return parser


def make_context(args: argparse.Namespace) -> ia_context.RequestContext:
    """The caller's context: a Keystone token, or noauth identity."""
    if not args.os_auth_url:
        roles = [r for r in (args.os_roles or '').split(',') if r]
        # Without Keystone nothing else says who is an administrator.
        return ia_context.RequestContext(
            user_id=args.os_user_id,
            project_id=args.os_project_id,
            roles=roles,
            is_admin='admin' in roles,
            overwrite=False,
        )
    auth = v3.Password(
        auth_url=args.os_auth_url,
        username=args.os_username,
        password=args.os_password,
        project_name=args.os_project_name,
        user_domain_name=args.os_user_domain_name,
        project_domain_name=args.os_project_domain_name,
    )
    verify: Any = False if args.insecure else (args.os_cacert or True)
    access = auth.get_access(ks_session.Session(auth=auth, verify=verify))
    return ia_context.RequestContext(
        auth_token=access.auth_token,
        user_id=access.user_id,
        project_id=access.project_id,
        user_name=access.username,
        project_name=access.project_name,
        roles=list(access.role_names),
        service_catalog=access.service_catalog.catalog,
        overwrite=False,
    )


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


def _download(api, ctxt, args) -> dict:
    def poll():
        status = api.ping(ctxt, host=args.host)
        for transfer in status.get('transfers', []):
            if (
                transfer['kind'] == 'download'
                and transfer['image_id'] == args.image_id
                and os.path.basename(transfer['path'])
                == os.path.basename(args.path)
            ):
                return (
                    transfer['bytes'],
                    transfer['size'],
                    transfer.get('rate'),
                )
        return None

    progress = output.Progress(
        'download %s' % args.image_id,
        poll=poll if args.host else None,
        enabled=False if args.no_progress else None,
    )
    result = progress.run(
        lambda: api.download(
            ctxt,
            args.image_id,
            args.path,
            host=args.host,
            overwrite=args.overwrite,
        )
    )
    print(
        progress.summary(result.get('size'), result.get('reused')),
        file=sys.stderr,
    )
    return result


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
        return api.create(ctxt, _image_meta(args), path=args.file, host=host)
    if command == 'update':
        return api.update(
            ctxt,
            args.image_id,
            _image_meta(args),
            path=args.file,
            purge_props=args.purge_props,
            store_id=args.store,
            base_image_ref=args.base_image_ref,
            host=host,
        )
    if command == 'precache':
        board = output.PrecacheBoard(args.hosts)
        return api.precache(
            ctxt,
            args.image_ids,
            args.hosts,
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


def _one_line(error: BaseException) -> str:
    if isinstance(error, exception.ImageAgentException):
        text = error.msg  # without the remote traceback
    elif isinstance(error, messaging.MessagingTimeout):
        text = 'no answer from an image agent in time (%s)' % (
            str(error).splitlines()[0] if str(error) else 'timeout'
        )
    elif isinstance(error, ks_exceptions.ClientException):
        text = 'Keystone authentication failed: %s' % error
    else:
        text = '%s: %s' % (type(error).__name__, error)
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = conf.CONF
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
            transport.cleanup()
    except KeyboardInterrupt:
        print('image-agent-client: interrupted', file=sys.stderr)
        return 130
    except Exception as e:
        print('ERROR: %s' % _one_line(e), file=sys.stderr)
        return 1
    print(output.render(result, args.format, args.command))
    if args.command == 'precache' and any(
        outcome['status'] in ('error', 'skipped')
        for outcomes in result.values()
        for outcome in outcomes.values()
    ):
        return 2  # the table says which hosts and images failed
    return 0


if __name__ == '__main__':
    sys.exit(main())
