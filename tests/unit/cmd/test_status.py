"""The local checks of ``image-agent-status upgrade check``.

Glance, Keystone and the running agents are checked against the real
deployment in tests/functional/test_status_cmd.py.
"""

import os

from oslo_upgradecheck import upgradecheck
import pytest

from image_agent import conf
from image_agent.cmd import status

Code = upgradecheck.Code


@pytest.fixture
def roots(tmp_path, config):
    download = tmp_path / 'images'
    download.mkdir()
    config.config(group='agent', download_roots=[str(download)])
    return download


def test_existing_writable_roots_pass(roots):
    result = status.check_roots(conf.CONF)
    assert result.code == Code.SUCCESS
    assert str(roots) in result.details


def test_no_download_root_is_a_warning(config):
    config.config(group='agent', download_roots=[])
    assert status.check_roots(conf.CONF).code == Code.WARNING


def test_a_missing_root_fails_and_is_named(roots, config):
    missing = str(roots / 'nope')
    config.config(group='agent', download_roots=[str(roots), missing])
    result = status.check_roots(conf.CONF)
    assert result.code == Code.FAILURE
    assert missing in result.details


def test_an_unreadable_upload_root_fails(roots, config, tmp_path):
    config.config(group='agent', upload_roots=['relative/dir'])
    result = status.check_roots(conf.CONF)
    assert result.code == Code.FAILURE
    assert 'upload_roots' in result.details


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write anywhere')
def test_a_read_only_root_fails(roots):
    roots.chmod(0o555)
    assert status.check_roots(conf.CONF).code == Code.FAILURE


def test_no_cache_is_fine_and_says_what_is_refused(config):
    config.config(group='agent', cache_dir=None)
    result = status.check_cache(conf.CONF)
    assert result.code == Code.SUCCESS
    assert 'precache' in result.details


def test_a_cache_outside_the_roots_fails(roots, config, tmp_path):
    config.config(group='agent', cache_dir=str(tmp_path / 'elsewhere'))
    result = status.check_cache(conf.CONF)
    assert result.code == Code.FAILURE
    assert 'not inside a download root' in result.details


def test_a_cache_without_limit_is_a_warning(roots, config):
    config.config(group='agent', cache_dir=str(roots / 'cache'))
    config.config(group='agent', cache_max_size=0)
    assert status.check_cache(conf.CONF).code == Code.WARNING


def test_a_limit_larger_than_the_disk_is_a_warning(roots, config):
    config.config(group='agent', cache_dir=str(roots / 'cache'))
    config.config(group='agent', cache_max_size=2**40)
    result = status.check_cache(conf.CONF)
    assert result.code == Code.WARNING
    assert 'free' in result.details


def test_a_cache_that_fits_passes(roots, config):
    config.config(group='agent', cache_dir=str(roots / 'cache'))
    config.config(group='agent', cache_max_size=1)
    assert status.check_cache(conf.CONF).code == Code.SUCCESS


@pytest.fixture
def transport_opts(config):
    """The transport's options exist once a transport was made."""
    status.check_transport(conf.CONF)


def test_unset_transport_url_is_a_warning(config, transport_opts):
    config.config(transport_url='rabbit://')
    assert status.check_transport(conf.CONF).code == Code.WARNING


def test_an_invalid_transport_url_fails(config, transport_opts):
    config.config(transport_url='carrier-pigeon://coop/')
    assert status.check_transport(conf.CONF).code == Code.FAILURE


def test_a_cluster_without_quorum_queues_is_a_warning(config, transport_opts):
    config.config(
        transport_url='rabbit://u:p@127.0.0.1:5701,u:p@127.0.0.1:5702/'
    )
    config.config(group='oslo_messaging_rabbit', rabbit_quorum_queue=False)
    result = status.check_transport(conf.CONF)
    assert result.code == Code.WARNING
    assert 'rabbit_quorum_queue' in result.details


def test_a_cluster_with_quorum_queues_passes(config, transport_opts):
    config.config(
        transport_url='rabbit://u:p@127.0.0.1:5701,u:p@127.0.0.1:5702/'
    )
    config.config(group='oslo_messaging_rabbit', rabbit_quorum_queue=True)
    result = status.check_transport(conf.CONF)
    assert result.code == Code.SUCCESS
    assert '2 RabbitMQ node(s)' in result.details


def test_noauth_skips_the_credentials_check(config):
    config.config(auth_strategy='noauth')
    assert status.check_glance(conf.CONF).code == Code.WARNING


def test_missing_service_credentials_are_a_warning(config):
    config.config(auth_strategy='keystone')
    config.config(group='glance', auth_type=None)
    result = status.check_glance(conf.CONF)
    assert result.code == Code.WARNING
    assert 'auth_type' in result.details


@pytest.fixture
def agents(monkeypatch, config):
    """The versions the agents on the topic answer with."""
    answers = {}
    monkeypatch.setattr(status, '_ping_agents', lambda cfg: dict(answers))
    return answers


def test_agents_older_than_what_callers_send_fail(agents, config):
    agents.update({'node-1': '1.1', 'node-2': '1.0'})
    config.config(group='upgrade_levels', image_agent=None)
    result = status.check_agents(conf.CONF)
    assert result.code == Code.FAILURE
    assert 'node-2' in result.details
    assert 'image_agent = 1.0' in result.details


def test_a_cap_the_oldest_agent_understands_passes(agents, config):
    agents.update({'node-1': '1.1', 'node-2': '1.0'})
    config.config(group='upgrade_levels', image_agent='1.0')
    assert status.check_agents(conf.CONF).code == Code.SUCCESS


def test_a_cap_below_every_agent_is_a_warning(agents, config):
    agents.update({'node-1': '1.1'})
    config.config(group='upgrade_levels', image_agent='1.0')
    result = status.check_agents(conf.CONF)
    assert result.code == Code.WARNING
    assert 'may be removed' in result.details


def test_a_release_name_is_its_version(agents, config):
    agents.update({'node-1': '1.0'})
    config.config(group='upgrade_levels', image_agent='hibiscus')
    assert status.check_agents(conf.CONF).code == Code.FAILURE


def test_auto_passes_whatever_the_agents(agents, config):
    agents.update({'node-1': '1.1', 'node-2': '1.0'})
    config.config(group='upgrade_levels', image_agent='auto')
    result = status.check_agents(conf.CONF)
    assert result.code == Code.SUCCESS
    assert 'node-2 1.0' in result.details


def test_no_agent_is_a_warning(agents, config):
    assert status.check_agents(conf.CONF).code == Code.WARNING
