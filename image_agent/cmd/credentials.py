"""The caller's credentials for ``image-agent-client``, as OpenStack's
clients take them.

keystoneauth's loading gives every auth type (``--os-auth-type`` or
``OS_AUTH_TYPE``: ``password``, ``v3token``, ``v3applicationcredential``,
...) with its own options and ``OS_*`` variables, ``*_DOMAIN_ID`` as well as
``*_DOMAIN_NAME``; ``--os-cloud`` (``OS_CLOUD``) reads a cloud of
``clouds.yaml`` through openstacksdk's config loader. Without Keystone (an
agent in ``noauth`` mode, ``--os-auth-type none``) the identity is given
with ``--os-user-id``, ``--os-project-id`` and ``--os-roles``.
"""

import argparse
import os
from typing import Any

from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ks_session

from image_agent import context as ia_context
from image_agent import exception
from image_agent.i18n import _

NOAUTH = 'none'
DEFAULT_AUTH_TYPE = 'password'
NOAUTH_ROLES = 'member,reader'


def _has_option(parser: argparse.ArgumentParser, option: str) -> bool:
    return any(option in action.option_strings for action in parser._actions)


def add_arguments(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """The credential options; those of the chosen auth type included."""
    group = parser.add_argument_group(
        'credentials',
        'Your own Keystone credentials, as for the openstack command: the '
        'OS_* variables of an openrc file, or a cloud of clouds.yaml.',
    )
    group.add_argument(
        '--os-cloud',
        metavar='NAME',
        default=os.environ.get('OS_CLOUD'),
        help='a cloud of clouds.yaml (env OS_CLOUD); other --os-* options '
        'override its values',
    )
    group.add_argument(
        '--os-cacert',
        metavar='PATH',
        default=os.environ.get('OS_CACERT'),
        help='CA bundle to verify Keystone with (env OS_CACERT)',
    )
    group.add_argument(
        '--insecure',
        action='store_true',
        help='do not verify Keystone\'s TLS certificate',
    )
    ks_loading.register_auth_argparse_arguments(
        parser, argv, default=DEFAULT_AUTH_TYPE
    )
    noauth = parser.add_argument_group(
        'identity without Keystone',
        'With --os-auth-type none, for an agent with auth_strategy = noauth.',
    )
    for option, env in (
        ('--os-user-id', 'OS_USER_ID'),
        ('--os-project-id', 'OS_PROJECT_ID'),
    ):
        if not _has_option(parser, option):
            noauth.add_argument(option, default=os.environ.get(env))
    noauth.add_argument(
        '--os-roles',
        metavar='ROLE[,ROLE]',
        default=os.environ.get('OS_ROLES', NOAUTH_ROLES),
        help='roles to claim (env OS_ROLES, default %s)' % NOAUTH_ROLES,
    )


def _noauth_context(args: argparse.Namespace) -> ia_context.RequestContext:
    roles = [r for r in (args.os_roles or '').split(',') if r]
    # Without Keystone nothing else says who is an administrator.
    return ia_context.RequestContext(
        user_id=getattr(args, 'os_user_id', None),
        project_id=getattr(args, 'os_project_id', None),
        roles=roles,
        is_admin='admin' in roles,
        overwrite=False,
    )


def _check_domains(args: argparse.Namespace) -> None:
    """Names need their domain: Keystone's own answer does not say so."""
    for kind, name_dest in (
        ('user', 'os_username'),
        ('project', 'os_project_name'),
    ):
        if not getattr(args, name_dest, None):
            continue
        if not (
            getattr(args, 'os_%s_domain_id' % kind, None)
            or getattr(args, 'os_%s_domain_name' % kind, None)
        ):
            raise exception.InvalidInput(
                reason=_(
                    'a %(kind)s name needs its domain: set '
                    'OS_%(upper)s_DOMAIN_NAME (e.g. Default) or '
                    'OS_%(upper)s_DOMAIN_ID, as the openrc file of your '
                    'cloud does'
                )
                % {'kind': kind, 'upper': kind.upper()}
            )


def _session(args: argparse.Namespace) -> tuple[Any, Any]:
    """A keystoneauth session and auth plugin for ``args``."""
    if args.os_cloud:
        # Imported only when asked for: openstacksdk is slow to import.
        from openstack import config as os_config

        cloud = os_config.OpenStackConfig().get_one(
            cloud=args.os_cloud, argparse=args
        )
        return cloud.get_session(), cloud.get_auth()
    _check_domains(args)
    auth = ks_loading.load_auth_from_argparse_arguments(args)
    verify: Any = False if args.insecure else (args.os_cacert or True)
    return ks_session.Session(auth=auth, verify=verify), auth


def uses_keystone(args: argparse.Namespace) -> bool:
    if args.os_cloud:
        return True
    return args.os_auth_type != NOAUTH and bool(
        getattr(args, 'os_auth_url', None)
    )


def make_context(args: argparse.Namespace) -> ia_context.RequestContext:
    """The caller's context: a Keystone token and catalog, or noauth."""
    if not uses_keystone(args):
        return _noauth_context(args)
    session, auth = _session(args)
    access = auth.get_access(session)
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
