"""Credentials for Glance requests: the session, the caller's token, ours."""

from keystoneauth1 import noauth
from keystoneauth1 import token_endpoint
from keystoneauth1.identity import generic
import pytest

from image_agent import context as context_mod
from image_agent import exception
from image_agent.image import auth
from tests.unit import conftest


def test_one_session_per_process(config):
    assert auth.get_session() is auth.get_session()


def test_session_takes_tls_and_timeout_options(config):
    config.config(group='glance', insecure=True, timeout=42)
    auth.reset()
    session = auth.get_session()
    assert session.verify is False
    assert session.timeout == 42.0


def test_requests_have_a_read_timeout_by_default(config):
    # A server that stops sending is given up; 0 means none.
    auth.reset()
    assert auth.get_session().timeout == 120.0
    config.config(group='glance', timeout=0)
    auth.reset()
    assert auth.get_session().timeout is None


def test_session_verifies_with_the_configured_ca_and_client_cert(config):
    config.config(
        group='glance',
        cafile='/etc/ssl/ca.pem',
        certfile='/etc/ssl/agent.crt',
        keyfile='/etc/ssl/agent.key',
    )
    auth.reset()
    session = auth.get_session()
    assert session.verify == '/etc/ssl/ca.pem'
    assert session.cert == ('/etc/ssl/agent.crt', '/etc/ssl/agent.key')


def test_reset_forgets_the_cached_session(config):
    first = auth.get_session()
    auth.reset()
    assert auth.get_session() is not first


def test_no_service_auth_without_auth_type(config):
    assert auth.get_service_auth() is None


def test_service_auth_is_loaded_from_the_glance_group(service_credentials):
    assert isinstance(service_credentials, generic.Password)
    assert service_credentials.auth_url == 'http://keystone.test/identity/v3'
    assert auth.get_service_auth() is service_credentials


def test_a_user_call_uses_the_callers_token(ctx):
    plugin = auth.auth_for(ctx, privileged=False)
    assert isinstance(plugin, token_endpoint.Token)
    assert plugin.get_token(None) == ctx.auth_token


def test_a_user_call_without_a_token_gets_no_credentials(
    anon_ctx, service_credentials
):
    assert isinstance(auth.auth_for(anon_ctx, privileged=False), noauth.NoAuth)


def test_a_privileged_call_uses_the_service_credentials(
    ctx, service_credentials
):
    assert auth.auth_for(ctx, privileged=True) is service_credentials


def test_a_privileged_call_without_service_credentials_uses_the_token(ctx):
    # As the reference: Glance, not the library, decides whether the
    # caller's own token may use the location API.
    plugin = auth.auth_for(ctx, privileged=True)
    assert isinstance(plugin, token_endpoint.Token)
    assert plugin.get_token(None) == ctx.auth_token


@pytest.mark.parametrize('privileged', [False, True])
def test_noauth_strategy_sends_no_credentials(config, ctx, privileged):
    config.config(auth_strategy='noauth')
    assert isinstance(auth.auth_for(ctx, privileged), noauth.NoAuth)


def test_noauth_identity_headers_name_user_project_and_roles(ctx):
    assert auth.noauth_identity_headers(ctx) == {
        'X-Identity-Status': 'Confirmed',
        'X-User-Id': ctx.user_id,
        'X-Project-Id': ctx.project_id,
        'X-Roles': 'member,reader',
    }


def test_noauth_identity_headers_leave_out_what_is_unknown():
    ctx = context_mod.RequestContext()
    assert auth.noauth_identity_headers(ctx) == {
        'X-Identity-Status': 'Confirmed'
    }


# -- service tokens ([service_user]) ------------------------------------------


@pytest.fixture
def service_user(config):
    conftest.set_password_credentials(
        config, 'service_user', send_service_user_token=True
    )
    return auth.get_service_user_auth()


def test_no_service_token_unless_asked(config, ctx):
    assert auth.get_service_user_auth() is None
    assert isinstance(auth.auth_for(ctx, False), token_endpoint.Token)


def test_a_user_call_carries_a_service_token_beside_the_callers(
    ctx, service_user, monkeypatch
):
    monkeypatch.setattr(service_user, 'get_token', lambda session: 'svc-tok')
    plugin = auth.auth_for(ctx, privileged=False)
    headers = plugin.get_headers(auth.get_session())
    assert headers == {
        'X-Auth-Token': ctx.auth_token,
        'X-Service-Token': 'svc-tok',
    }


def test_no_service_token_without_a_callers_token(anon_ctx, service_user):
    assert isinstance(auth.auth_for(anon_ctx, False), noauth.NoAuth)


def test_sending_service_tokens_without_credentials_is_an_error(config, ctx):
    config.config(group='service_user', send_service_user_token=True)
    auth.reset()
    with pytest.raises(exception.InvalidConfigurationValue):
        auth.auth_for(ctx, False)
