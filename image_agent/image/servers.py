"""Where the Glance API servers are: configuration, catalog, Keystone.

In-process (a context made behind keystonemiddleware), the order of
precedence is ``[glance] api_servers``, then the caller's service catalog
(``[glance] catalog_info`` and ``region_name``), then Keystone itself
through the service credentials.

A context that arrived over RPC proves nothing: its servers are the
*trusted* ones only, ``[glance] api_servers`` or the agent's own Keystone
catalog (asked with its service credentials, kept ``catalog_cache_time``
seconds). The caller's catalog may at most pick among them (a region), so
the agent's credentials never go to a host a caller named.
"""

from collections.abc import Iterator
import itertools
import random
import re
import threading
import time
from typing import TypeVar
import urllib.parse

from keystoneauth1 import exceptions as ks_exc
from oslo_log import log as logging

from image_agent import conf
from image_agent import context as context_mod
from image_agent import exception
from image_agent.i18n import _

LOG = logging.getLogger(__name__)
T = TypeVar('T')
CONF = conf.CONF

# catalog_info's endpoint_type in the v2 catalog shape -> v3 interface.
_V2_ENDPOINT_TYPES = {
    'publicURL': 'public',
    'internalURL': 'internal',
    'adminURL': 'admin',
}


_HOST_PORT_PATH = re.compile(
    r'(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:(?P<port>[0-9]{1,5}))?'
    r'(?P<path>/[^\s]*)?'
)


def _invalid_server(value: str, reason: str) -> Exception:
    return exception.InvalidConfigurationValue(
        option='[glance] api_servers', value=value, reason=reason
    )


def normalize_server_url(value: str) -> str:
    """Turn one ``api_servers`` entry into a URL without a trailing slash.

    A bare ``host:port`` (IPv6 literals in brackets included) means http;
    the path of a URL is kept because Glance may be served under one.
    """
    text = (value or '').strip()
    scheme, sep, rest = text.partition('://')
    scheme = scheme.lower() if sep else 'http'
    rest = rest if sep else text
    if scheme not in ('http', 'https'):
        raise _invalid_server(value, _('the scheme must be http or https'))
    match = _HOST_PORT_PATH.fullmatch(rest)
    if not match or match['host'].strip('.') == '':
        raise _invalid_server(
            value, _('expected http(s)://host[:port][/path] or host:port')
        )
    if match['port'] is not None and not 0 < int(match['port']) < 65536:
        raise _invalid_server(value, _('the port must be 1 to 65535'))
    return ('%s://%s' % (scheme, rest)).rstrip('/')


def parse_catalog_info(value: str) -> tuple[str, str, str]:
    """Split ``<service_type>:<service_name>:<endpoint_type>``."""
    parts = (value or '').split(':')
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise exception.InvalidConfigurationValue(
            option='[glance] catalog_info',
            value=value,
            reason=_('expected <service_type>:<service_name>:<endpoint_type>'),
        )
    return parts[0], parts[1], parts[2]


def _endpoint_url(endpoint: dict, endpoint_type: str) -> str | None:
    """The URL of one catalog endpoint, in the v2 or the v3 shape."""
    if endpoint_type in endpoint:
        url = endpoint[endpoint_type]
    elif endpoint.get('interface') == _V2_ENDPOINT_TYPES.get(
        endpoint_type, endpoint_type
    ):
        url = endpoint.get('url')
    else:
        return None
    return url if isinstance(url, str) else None


def _endpoint_region(endpoint: dict) -> str | None:
    return endpoint.get('region') or endpoint.get('region_id')


def servers_from_catalog(
    catalog: list | None, catalog_info: str, region_name: str | None
) -> list[str]:
    """Glance URLs from a service catalog, v2 or v3 shaped.

    With a region configured every endpoint of that region is returned;
    without one, or when no endpoint is in that region, the first endpoint
    found (as the reference falls back).
    """
    service_type, service_name, endpoint_type = parse_catalog_info(
        catalog_info
    )
    urls = []
    first = None
    for entry in catalog or []:
        if entry.get('type') != service_type:
            continue
        if service_name and entry.get('name', service_name) != service_name:
            continue
        for endpoint in entry.get('endpoints') or []:
            url = _endpoint_url(endpoint, endpoint_type)
            if not url:
                continue
            first = first or url.rstrip('/')
            if region_name and _endpoint_region(endpoint) == region_name:
                urls.append(url.rstrip('/'))
    if not urls and first:
        if region_name:
            LOG.debug(
                'No image endpoint in region %s; using the first one',
                region_name,
            )
        urls.append(first)
    return urls


def servers_from_keystone() -> list[str]:
    """Ask Keystone, as the service user, for the image endpoints."""
    # Imported here: only deployments without api_servers or a catalog in
    # the request need the service credentials.
    from image_agent.image import auth

    service_auth = auth.get_service_auth()
    if service_auth is None:
        return []
    try:
        access = service_auth.get_access(auth.get_session())
    except ks_exc.ClientException as e:
        raise exception.GlanceServersNotFound(
            reason=_('Keystone could not be asked: %s') % e
        ) from e
    urls = access.service_catalog.get_urls(
        service_type='image',
        interface=CONF.glance.interface,
        region_name=CONF.glance.region_name,
    )
    return [url.rstrip('/') for url in urls or ()]


def _url_key(url: str) -> tuple[str, str, str]:
    """A URL as compared: scheme and host case-insensitive, no end slash."""
    parts = urllib.parse.urlsplit(url.strip())
    return parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip('/')


class _KeystoneServers:
    """The image endpoints of the agent's own Keystone catalog, cached.

    Asked with the service credentials; kept ``[glance]
    catalog_cache_time`` seconds (and for as long as the same credentials
    are configured), so that a burst of calls asks Keystone once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._urls: list[str] = []
        self._expires = 0.0

    def get(self) -> list[str]:
        from image_agent.image import auth

        service_auth = auth.get_service_auth()
        # The plugin itself (not its id, which may be reused) is part of
        # the key: new credentials mean a new catalog.
        key = (service_auth, CONF.glance.interface, CONF.glance.region_name)
        with self._lock:
            if key == self._key and time.monotonic() < self._expires:
                return list(self._urls)
            if service_auth is not None and self._key == key:
                # Past the cache time: a new token brings a new catalog.
                service_auth.invalidate()
            self._urls = servers_from_keystone()
            self._key = key
            self._expires = time.monotonic() + CONF.glance.catalog_cache_time
            return list(self._urls)


_KEYSTONE_SERVERS = _KeystoneServers()


def trusted_servers() -> list[str]:
    """The servers the agent itself vouches for: configured or Keystone's."""
    if CONF.glance.api_servers:
        return [normalize_server_url(s) for s in CONF.glance.api_servers]
    return _KEYSTONE_SERVERS.get()


def _servers_for_remote(context) -> list[str]:
    """Trusted servers only; the caller's catalog may pick among them."""
    trusted = trusted_servers()
    if not trusted:
        raise exception.GlanceServersNotFound(
            reason=_(
                '[glance] api_servers is unset and Keystone gave the agent '
                'no image endpoint (interface %(interface)s, region '
                '%(region)s)'
            )
            % {
                'interface': CONF.glance.interface,
                'region': CONF.glance.region_name,
            }
        )
    if CONF.glance.api_servers:
        return trusted
    wanted = {
        _url_key(url)
        for url in servers_from_catalog(
            getattr(context, 'service_catalog', None),
            CONF.glance.catalog_info,
            CONF.glance.region_name,
        )
    }
    picked = [url for url in trusted if _url_key(url) in wanted]
    if wanted and not picked:
        LOG.info(
            'The request names image endpoints outside the agent\'s own '
            'catalog; they are ignored'
        )
    return picked or trusted


def find_servers(context) -> list[str]:
    """The Glance URLs a call in ``context`` may use, in preference order."""
    if context_mod.is_remote(context):
        return _servers_for_remote(context)
    if CONF.glance.api_servers:
        return [normalize_server_url(s) for s in CONF.glance.api_servers]
    urls = servers_from_catalog(
        getattr(context, 'service_catalog', None),
        CONF.glance.catalog_info,
        CONF.glance.region_name,
    )
    if urls:
        return urls
    urls = servers_from_keystone()
    if urls:
        return urls
    raise exception.GlanceServersNotFound(
        reason=_(
            '[glance] api_servers is unset, the request has no image '
            'endpoint in its catalog (%(info)s, region %(region)s) and '
            'Keystone gave none'
        )
        % {'info': CONF.glance.catalog_info, 'region': CONF.glance.region_name}
    )


def cycle_shuffled(urls: list[T]) -> Iterator[T]:
    """An endless iterator over ``urls``, shuffled once."""
    if not urls:
        raise exception.GlanceServersNotFound(
            reason=_('the server list is empty')
        )
    urls = list(urls)
    random.shuffle(urls)
    return itertools.cycle(urls)


def netloc_and_ssl(url: str) -> tuple[str, bool]:
    """A server URL as the reference gives it: ``(netloc, use_ssl)``, the
    netloc with the port and the path (``'glance:9292/image'``)."""
    parts = urllib.parse.urlsplit(url)
    return parts.netloc + parts.path, parts.scheme == 'https'


def get_api_servers(context) -> Iterator[tuple[str, bool]]:
    """Return an endless iterator over the shuffled Glance servers.

    Each one as a ``(netloc, use_ssl)`` pair, the reference's shape.
    """
    return cycle_shuffled(
        [netloc_and_ssl(url) for url in find_servers(context)]
    )
