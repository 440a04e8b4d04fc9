"""Credentials for Glance requests: one session, the caller's token, or ours.

One keystoneauth session per process carries the TLS settings and pools
connections (on a requests session that reads the environment once per
server, ``environ_session``). User calls authenticate with the caller's
own token (plus, with ``[service_user] send_service_user_token``, a
service token that lets Glance accept it after it expired mid-transfer);
only privileged calls
(the location API) use the ``[glance]`` service credentials.
"""

import functools

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import noauth
from keystoneauth1 import plugin
from keystoneauth1 import service_token
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint

from image_agent import conf
from image_agent import exception
from image_agent.i18n import _
from image_agent.image import environ_session

CONF = conf.CONF
GROUP = 'glance'


@functools.cache
def get_session() -> ks_session.Session:
    """The process's keystoneauth session (TLS options and timeout)."""
    # A timeout of 0 means none (requests would take it as "at once").
    return ks_loading.load_session_from_conf_options(
        CONF,
        GROUP,
        timeout=CONF.glance.timeout or None,
        session=environ_session.EnvironmentOnceSession(
            tls_ciphers=CONF.glance.tls_ciphers,
            tls_min_version=CONF.glance.tls_min_version,
        ),
    )


@functools.cache
def get_service_auth() -> plugin.BaseAuthPlugin | None:
    """The ``[glance]`` service credentials, or None when none are set."""
    if not CONF.glance.auth_type:
        return None
    return ks_loading.load_auth_from_conf_options(CONF, GROUP)


@functools.cache
def get_service_user_auth() -> plugin.BaseAuthPlugin | None:
    """The ``[service_user]`` credentials when service tokens are sent."""
    if not CONF.service_user.send_service_user_token:
        return None
    if not CONF.service_user.auth_type:
        raise exception.InvalidConfigurationValue(
            option='[service_user] auth_type',
            value=None,
            reason=_('send_service_user_token needs service credentials'),
        )
    return ks_loading.load_auth_from_conf_options(CONF, 'service_user')


def reset() -> None:
    """Forget the cached session and credentials (after a config change)."""
    get_session.cache_clear()
    get_service_auth.cache_clear()
    get_service_user_auth.cache_clear()


def noauth_identity_headers(context) -> dict[str, str]:
    """Identity headers for a Glance that trusts its callers (no Keystone)."""
    headers = {'X-Identity-Status': 'Confirmed'}
    if context.user_id:
        headers['X-User-Id'] = context.user_id
    if context.project_id:
        headers['X-Project-Id'] = context.project_id
    if context.roles:
        headers['X-Roles'] = ','.join(context.roles)
    return headers


def auth_for(context, privileged: bool) -> plugin.BaseAuthPlugin:
    """The auth plugin for one request made for ``context``."""
    if CONF.auth_strategy == 'noauth':
        return noauth.NoAuth()
    service_auth = get_service_auth() if privileged else None
    if service_auth is not None:
        return service_auth
    # A privileged call without service credentials goes with the caller's
    # own token, as the reference's does: Glance then decides (a member is
    # refused the location API, an admin or service token is not).
    token = getattr(context, 'auth_token', None)
    if not token:
        # Glance answers 401: a caller without a token is never given the
        # agent's own credentials.
        return noauth.NoAuth()
    user_auth = token_endpoint.Token(None, token)
    service_user = get_service_user_auth()
    if service_user is None:
        return user_auth
    # X-Service-Token beside the caller's token: Glance still authorizes
    # the caller, and accepts its token after it expired mid-transfer.
    return service_token.ServiceTokenAuthWrapper(user_auth, service_user)


def token_info(token: str | None) -> dict:
    """Keystone's description of ``token`` (its v3 body), asked with the
    ``[glance]`` service credentials.

    ``NotAuthorized`` when Keystone does not know the token (or there are
    no credentials to ask with); ``TokenValidationFailed`` when Keystone
    could not be asked or failed, which says nothing about the token.
    """
    service_auth = get_service_auth()
    if not token or service_auth is None:
        raise exception.NotAuthorized(
            _('the caller\'s token cannot be checked with Keystone')
        )
    try:
        resp = get_session().get(
            '/auth/tokens',
            endpoint_filter={
                'service_type': 'identity',
                'interface': 'public',
                'version': (3, 0),
            },
            auth=service_auth,
            headers={'X-Subject-Token': token},
            raise_exc=False,
        )
    except ks_exc.ClientException as e:
        raise exception.TokenValidationFailed(reason=str(e)) from e
    if resp.status_code == 404:
        raise exception.NotAuthorized(
            _('Keystone does not accept the caller\'s token')
        )
    if resp.status_code != 200:
        # 401/403: the agent's own credentials may not validate tokens.
        raise exception.TokenValidationFailed(
            reason=_('Keystone answered HTTP %d') % resp.status_code
        )
    return resp.json().get('token') or {}


def token_scope(token: str | None) -> tuple[str | None, frozenset[str]]:
    """The project and role names Keystone says ``token`` carries.

    A request context's ``project_id`` and ``roles`` are what its sender
    claims; before the agent acts with its own service credentials on a
    caller's behalf, it asks Keystone what the token really grants.
    """
    body = token_info(token)
    project_id = (body.get('project') or {}).get('id')
    roles = frozenset(role.get('name') for role in body.get('roles') or ())
    return project_id, roles
