"""The message transport and the RPC version pin against the agents.

The real broker and agents are asked in
tests/functional/test_status_cmd.py."""

from oslo_upgradecheck import upgradecheck
import pytest

from image_agent import conf
from image_agent.checks import agents as agents_mod

Code = upgradecheck.Code


@pytest.fixture
def transport_opts(config):
    """The transport's options exist once a transport was made."""
    agents_mod.check_transport(conf.CONF)


def test_unset_transport_url_is_a_warning(config, transport_opts):
    config.config(transport_url='rabbit://')
    assert agents_mod.check_transport(conf.CONF).code == Code.WARNING


def test_an_invalid_transport_url_fails(config, transport_opts):
    config.config(transport_url='carrier-pigeon://coop/')
    assert agents_mod.check_transport(conf.CONF).code == Code.FAILURE


def test_a_cluster_without_quorum_queues_is_a_warning(config, transport_opts):
    config.config(
        transport_url='rabbit://u:p@127.0.0.1:5701,u:p@127.0.0.1:5702/'
    )
    config.config(group='oslo_messaging_rabbit', rabbit_quorum_queue=False)
    result = agents_mod.check_transport(conf.CONF)
    assert result.code == Code.WARNING
    assert 'rabbit_quorum_queue' in result.details


def test_a_cluster_with_quorum_queues_passes(config, transport_opts):
    config.config(
        transport_url='rabbit://u:p@127.0.0.1:5701,u:p@127.0.0.1:5702/'
    )
    config.config(group='oslo_messaging_rabbit', rabbit_quorum_queue=True)
    result = agents_mod.check_transport(conf.CONF)
    assert result.code == Code.SUCCESS
    assert '2 RabbitMQ node(s)' in result.details


@pytest.fixture
def agents(monkeypatch, config):
    """The versions the agents on the topic answer with."""
    answers = {}
    monkeypatch.setattr(agents_mod, '_ping_agents', lambda cfg: dict(answers))
    return answers


def test_agents_older_than_what_callers_send_fail(agents, config):
    agents.update({'node-1': '1.1', 'node-2': '1.0'})
    config.config(group='upgrade_levels', image_agent=None)
    result = agents_mod.check_agents(conf.CONF)
    assert result.code == Code.FAILURE
    assert 'node-2' in result.details
    assert 'image_agent = 1.0' in result.details


def test_a_cap_the_oldest_agent_understands_passes(agents, config):
    agents.update({'node-1': '1.1', 'node-2': '1.0'})
    config.config(group='upgrade_levels', image_agent='1.0')
    assert agents_mod.check_agents(conf.CONF).code == Code.SUCCESS


def test_a_cap_below_every_agent_is_a_warning(agents, config):
    agents.update({'node-1': '1.1'})
    config.config(group='upgrade_levels', image_agent='1.0')
    result = agents_mod.check_agents(conf.CONF)
    assert result.code == Code.WARNING
    assert 'may be removed' in result.details


def test_a_release_name_is_its_version(agents, config):
    agents.update({'node-1': '1.0'})
    config.config(group='upgrade_levels', image_agent='hibiscus')
    assert agents_mod.check_agents(conf.CONF).code == Code.FAILURE


def test_auto_passes_whatever_the_agents(agents, config):
    agents.update({'node-1': '1.1', 'node-2': '1.0'})
    config.config(group='upgrade_levels', image_agent='auto')
    result = agents_mod.check_agents(conf.CONF)
    assert result.code == Code.SUCCESS
    assert 'node-2 1.0' in result.details


def test_no_agent_is_a_warning(agents, config):
    assert agents_mod.check_agents(conf.CONF).code == Code.WARNING
