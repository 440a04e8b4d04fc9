"""Keystone takes the ``[glance]`` service credentials; Glance answers them."""

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from image_agent import exception
from image_agent.checks import TIMEOUT
from image_agent.checks import Code
from image_agent.checks import Result
from image_agent.i18n import _
from image_agent.image import servers


def service_session(cfg_: cfg.ConfigOpts):
    """A session and the ``[glance]`` service credentials' auth plugin."""
    session = ks_loading.load_session_from_conf_options(
        cfg_, 'glance', timeout=TIMEOUT
    )
    return session, ks_loading.load_auth_from_conf_options(cfg_, 'glance')


def _glance_urls(cfg_: cfg.ConfigOpts, session, auth) -> list[str]:
    if cfg_.glance.api_servers:
        return [
            servers.normalize_server_url(url)
            for url in cfg_.glance.api_servers
        ]
    url = session.get_endpoint(
        auth,
        service_type='image',
        interface=cfg_.glance.interface,
        region_name=cfg_.glance.region_name,
    )
    return [url] if url else []


def check_glance(cfg_: cfg.ConfigOpts) -> Result:
    """Keystone takes the service credentials; every Glance answers them."""
    if cfg_.auth_strategy == 'noauth':
        return Result(
            Code.WARNING,
            _(
                'auth_strategy is noauth: Glance is trusted to run without '
                'Keystone; nothing to check with credentials.'
            ),
        )
    if not cfg_.glance.auth_type:
        return Result(
            Code.WARNING,
            _(
                '[glance] auth_type is unset: without service credentials the '
                'image location API (get_location, add_location) fails.'
            ),
        )
    try:
        session, auth = service_session(cfg_)
        token = session.get_token(auth)
        urls = _glance_urls(cfg_, session, auth)
    except (ks_exceptions.ClientException, exception.ImageAgentException) as e:
        return Result(
            Code.FAILURE,
            _(
                'Keystone refused the [glance] service credentials or could '
                'not be reached: %s'
            )
            % e,
        )
    if not urls:
        return Result(
            Code.FAILURE,
            _(
                'No Glance server: [glance] api_servers is unset and the '
                'catalog has no image endpoint.'
            ),
        )
    failed = []
    for url in urls:
        try:
            resp = session.get(
                url.rstrip('/') + '/v2/images?limit=1',
                headers={'X-Auth-Token': token},
                authenticated=False,
                raise_exc=False,
            )
            if resp.status_code != 200:
                failed.append('%s (HTTP %d)' % (url, resp.status_code))
        except ks_exceptions.ClientException as e:
            failed.append('%s (%s)' % (url, e))
    if failed:
        return Result(
            Code.FAILURE,
            _('Glance did not list images for the service user: %s.')
            % ', '.join(failed),
        )
    return Result(
        Code.SUCCESS,
        _('Keystone issued a token; Glance answered at %s.') % ', '.join(urls),
    )
