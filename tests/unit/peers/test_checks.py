"""``image-agent-status upgrade check`` on [peers]: what the agent would
refuse fails, an open port without TLS is a warning."""

from oslo_upgradecheck import upgradecheck
import pytest

from image_agent import conf
from image_agent.peers import checks

Code = upgradecheck.Code


@pytest.fixture
def peers_on(config, tmp_path):
    config.config(cache_dir=str(tmp_path / 'cache'), group='agent')
    config.config(enabled=True, listen_address='192.0.2.7', group='peers')
    return config


def tls(config, tmp_path):
    for name in ('crt', 'key'):
        (tmp_path / name).write_text('x')
    config.config(
        tls_cert_file=str(tmp_path / 'crt'),
        tls_key_file=str(tmp_path / 'key'),
        group='peers',
    )


def test_peers_off_pass(config):
    assert checks.check_peers(conf.CONF).code == Code.SUCCESS


def test_peers_without_tls_are_a_warning(peers_on):
    result = checks.check_peers(conf.CONF)
    assert result.code == Code.WARNING
    assert 'no TLS' in result.details


def test_peers_with_tls_on_one_address_pass(peers_on, tmp_path):
    tls(peers_on, tmp_path)
    assert checks.check_peers(conf.CONF).code == Code.SUCCESS


def test_every_interface_is_a_warning(peers_on, tmp_path):
    tls(peers_on, tmp_path)
    peers_on.config(listen_address='0.0.0.0', group='peers')  # noqa: S104
    assert checks.check_peers(conf.CONF).code == Code.WARNING


@pytest.mark.parametrize(
    'setting',
    [
        {'group': 'agent', 'cache_dir': None},
        {'auth_strategy': 'noauth'},
        {'group': 'peers', 'tls_cert_file': '/nonexistent/cert.pem'},
    ],
)
def test_what_the_agent_would_refuse_fails(peers_on, setting):
    peers_on.config(**setting)
    assert checks.check_peers(conf.CONF).code == Code.FAILURE


def test_an_unreadable_certificate_fails(peers_on, tmp_path):
    tls(peers_on, tmp_path)
    peers_on.config(tls_ca_file=str(tmp_path / 'missing'), group='peers')
    result = checks.check_peers(conf.CONF)
    assert result.code == Code.FAILURE
    assert 'tls_ca_file' in result.details
