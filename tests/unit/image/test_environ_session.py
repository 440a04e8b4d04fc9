"""The HTTP session reads the environment once per server, and decides as
requests does."""

import pytest
import requests

from image_agent.image import auth
from image_agent.image import environ_session

GLANCE = 'http://glance.example:9292/v2/images/abc'
LOOPBACK = 'http://127.0.0.1:9292/v2/images/abc'
PROXY = 'http://proxy.example:3128'


@pytest.fixture
def environ(monkeypatch):
    """A clean proxy environment, and no answer kept from another test."""
    for name in (
        'http_proxy',
        'HTTP_PROXY',
        'https_proxy',
        'HTTPS_PROXY',
        'no_proxy',
        'NO_PROXY',
        'all_proxy',
        'ALL_PROXY',
        'REQUESTS_CA_BUNDLE',
        'CURL_CA_BUNDLE',
    ):
        monkeypatch.delenv(name, raising=False)
    environ_session.environment_for.cache_clear()
    yield monkeypatch
    environ_session.environment_for.cache_clear()


def _settings(session, url, verify=True):
    return session.merge_environment_settings(url, {}, None, verify, None)


@pytest.mark.parametrize('url', [GLANCE, LOOPBACK])
@pytest.mark.parametrize('verify', [True, None, False, '/etc/ssl/ca.pem'])
def test_settings_are_those_requests_gives(environ, url, verify):
    environ.setenv('http_proxy', PROXY)
    environ.setenv('no_proxy', '127.0.0.1,localhost')
    environ.setenv('REQUESTS_CA_BUNDLE', '/etc/ssl/bundle.pem')
    once = environ_session.EnvironmentOnceSession()
    assert _settings(once, url, verify) == _settings(
        requests.Session(), url, verify
    )


def test_no_proxy_bypasses_only_the_servers_it_names(environ):
    environ.setenv('http_proxy', PROXY)
    environ.setenv('no_proxy', '127.0.0.1')
    session = environ_session.EnvironmentOnceSession()
    assert _settings(session, LOOPBACK)['proxies'] == {}
    assert _settings(session, GLANCE)['proxies']['http'] == PROXY


def test_the_ca_bundle_of_the_environment_replaces_only_default_verify(
    environ,
):
    environ.setenv('REQUESTS_CA_BUNDLE', '/etc/ssl/bundle.pem')
    session = environ_session.EnvironmentOnceSession()
    assert _settings(session, GLANCE)['verify'] == '/etc/ssl/bundle.pem'
    # The configured CA file, or insecure, stay as configured.
    assert _settings(session, GLANCE, '/etc/ca.pem')['verify'] == '/etc/ca.pem'
    assert _settings(session, GLANCE, False)['verify'] is False


def test_the_environment_is_read_once_per_server(environ, monkeypatch):
    reads = []
    real = environ_session.requests_utils.get_environ_proxies

    def counting(url, no_proxy=None):
        reads.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(
        environ_session.requests_utils, 'get_environ_proxies', counting
    )
    session = environ_session.EnvironmentOnceSession()
    for path in ('/v2/images/a', '/v2/images/b/file', '/v2/schemas/image'):
        _settings(session, 'http://glance.example:9292' + path)
    _settings(session, 'http://glance.example:9293/v2/images/a')
    assert reads == [
        'http://glance.example:9292/',
        'http://glance.example:9293/',
    ]


def test_without_trust_env_the_environment_is_not_read(environ):
    environ.setenv('http_proxy', PROXY)
    session = environ_session.EnvironmentOnceSession()
    session.trust_env = False
    assert _settings(session, GLANCE)['proxies'] == {}


def test_the_process_session_uses_it_with_the_tls_options(config):
    config.config(group='glance', tls_ciphers='ECDHE+AESGCM')
    auth.reset()
    session = auth.get_session().session
    assert isinstance(session, environ_session.EnvironmentOnceSession)
    assert session.get_adapter(GLANCE).tls_ciphers == 'ECDHE+AESGCM'
    auth.reset()
