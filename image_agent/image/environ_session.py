"""A requests session that reads the process environment once per server.

requests looks at the environment on every request: the proxy variables
(each variable of the process, twice: to find the proxies, then to see
whether ``no_proxy`` bypasses them) and ``REQUESTS_CA_BUNDLE`` /
``CURL_CA_BUNDLE``. That was a third of the agent's CPU per ``show``
beyond the Glance call itself. A daemon's environment is set when it
starts, so the answer for a server (scheme, host and port: nothing else of
a URL changes it) is kept; every decision stays the one requests makes.
"""

import functools
import os
from typing import Any
from urllib import parse

from keystoneauth1 import session as ks_session
import requests
from requests import sessions as requests_sessions
from requests import utils as requests_utils

# Servers whose answers are kept at once (a process talks to a few).
MAX_SERVERS = 64


@functools.lru_cache(maxsize=MAX_SERVERS)
def environment_for(
    origin: str, no_proxy: str | None
) -> tuple[dict[str, str], str | None]:
    """The proxies and the CA bundle the environment gives for requests
    to ``origin`` (``scheme://host:port``), as requests finds them."""
    proxies = requests_utils.get_environ_proxies(origin, no_proxy=no_proxy)
    ca_bundle = os.environ.get('REQUESTS_CA_BUNDLE') or os.environ.get(
        'CURL_CA_BUNDLE'
    )
    return proxies, ca_bundle


def _origin(url: str) -> str:
    parts = parse.urlsplit(url)
    return '%s://%s/' % (parts.scheme, parts.netloc)


class EnvironmentOnceSession(requests.Session):
    """``requests.Session`` whose environment settings are read once per
    server (see the module's docstring); the rest is requests' own."""

    def __init__(
        self, tls_ciphers: str | None = None, tls_min_version: Any = None
    ) -> None:
        super().__init__()
        # What keystoneauth mounts on a session of its own: keep-alive
        # probes on idle connections, and the TLS options it was given.
        adapter = ks_session.TCPKeepAliveAdapter(
            tls_ciphers=tls_ciphers, tls_min_version=tls_min_version
        )
        for scheme in list(self.adapters):
            self.mount(scheme, adapter)

    def merge_environment_settings(
        self,
        url: str,
        proxies: dict[str, str] | None,
        stream: bool | None,
        verify: Any,
        cert: Any,
    ) -> dict[str, Any]:
        if not self.trust_env:
            return super().merge_environment_settings(
                url, proxies, stream, verify, cert
            )
        no_proxy = proxies.get('no_proxy') if proxies is not None else None
        env_proxies, ca_bundle = environment_for(_origin(url), no_proxy)
        if proxies is not None:
            for key, value in env_proxies.items():
                proxies.setdefault(key, value)
        if verify is True or verify is None:
            verify = ca_bundle or verify
        merge = requests_sessions.merge_setting
        return {
            'proxies': merge(proxies, self.proxies),
            'stream': merge(stream, self.stream),
            'verify': merge(verify, self.verify),
            'cert': merge(cert, self.cert),
        }
