"""The service's life: built in start(), drained and released in stop()."""

import threading
import time
from unittest import mock

import pytest

from image_agent import service


@pytest.fixture
def agent(config, tmp_path, glance, monkeypatch):
    config.config(host='node-1')
    config.config(group='agent', download_roots=[str(tmp_path)])
    # Registered by the agent's entry point, which these tests skip.
    service.reports.register_opts(config.conf)
    real = service.rpc.get_transport
    monkeypatch.setattr(
        service.rpc, 'get_transport', lambda conf: real(conf, url='fake://')
    )
    return service.AgentService(config.conf)


def test_start_listens_and_stop_releases(agent, tmp_path):
    orphan = tmp_path / '.disk.image-agent-tmp-abcdefgh'
    orphan.write_bytes(b'partial')
    agent.start()
    try:
        assert agent._server is not None
        assert not orphan.exists()
    finally:
        agent.stop()
    assert agent._server is None and agent._transport is None
    waiter = threading.Thread(target=agent.wait)
    waiter.start()
    waiter.join(5)
    assert not waiter.is_alive()


def test_stop_waits_for_running_calls(agent, config):
    config.config(group='agent', drain_timeout=5)
    server, transfers = mock.Mock(), mock.Mock()
    server.wait.side_effect = lambda: time.sleep(0.3)
    agent._server, agent._transfers = server, transfers
    agent.stop()
    server.stop.assert_called_once_with()
    transfers.cancel_all.assert_not_called()


def test_stop_cancels_transfers_after_the_drain_timeout(agent, config):
    config.config(group='agent', drain_timeout=0)
    cancelled = threading.Event()
    server, transfers = mock.Mock(), mock.Mock()
    server.wait.side_effect = lambda: cancelled.wait(5)
    transfers.cancel_all.side_effect = cancelled.set
    agent._server, agent._transfers = server, transfers
    started = time.monotonic()
    agent.stop()
    assert time.monotonic() - started < 2
    transfers.cancel_all.assert_called_once_with()


def test_the_drain_stays_below_the_graceful_shutdown_timeout(agent, config):
    config.register_opts(
        [service.cfg.IntOpt('graceful_shutdown_timeout', default=60)]
    )
    config.config(graceful_shutdown_timeout=6)
    config.config(group='agent', drain_timeout=100)
    joined = []
    with mock.patch.object(service.threading, 'Thread') as thread:
        thread.return_value.join.side_effect = joined.append
        thread.return_value.is_alive.return_value = False
        agent._server, agent._transfers = mock.Mock(), mock.Mock()
        agent._drain()
    assert joined == [1]


def test_a_call_stuck_after_the_cancel_is_not_waited_for(agent, config):
    config.config(group='agent', drain_timeout=0)
    stuck = threading.Event()
    server, transfers = mock.Mock(), mock.Mock()
    # The cancel does not reach it (a request waiting for headers).
    server.wait.side_effect = lambda: stuck.wait(30)
    agent._server, agent._transfers = server, transfers
    started = time.monotonic()
    try:
        agent.stop()
    finally:
        stuck.set()
    assert time.monotonic() - started < service._CANCEL_MARGIN + 2
    transfers.cancel_all.assert_called_once_with()
    assert agent._transport is None


def test_it_listens_on_its_exchange_and_the_control_exchange(agent):
    """The agents' own exchange, and for callers of earlier versions the
    topic in [DEFAULT] control_exchange, served by the same endpoint."""
    agent.start()
    try:
        assert agent._server._target.exchange == service.rpc.EXCHANGE
        assert agent._legacy_server._target.exchange is None
        assert agent._legacy_server._target.topic == agent.topic
        assert agent._legacy_server._target.server == 'node-1'
    finally:
        agent.stop()
    assert agent._legacy_server is None


def test_the_control_exchange_listener_can_be_turned_off(agent, config):
    config.config(group='agent', listen_on_control_exchange=False)
    agent.start()
    try:
        assert agent._legacy_server is None
    finally:
        agent.stop()


def test_stop_removes_the_agents_queues(agent, monkeypatch):
    removed = mock.Mock(return_value={'image-agent.node-1': 2})
    monkeypatch.setattr(service.rpc, 'delete_server_queues', removed)
    agent.start()
    transport = agent._transport
    agent.stop()
    removed.assert_called_once_with(transport, 'image-agent', 'node-1')


def test_queues_go_host_first_and_only_when_unused():
    channel = mock.Mock()
    channel.queue_delete.side_effect = [3, Exception('in use')]
    # A connection of its own, cloned from a pooled one.
    broker = mock.MagicMock()
    broker.__enter__.return_value = broker
    broker.channel.return_value = channel
    pooled = mock.MagicMock()
    pooled.__enter__.return_value.connection.connection.clone.return_value = (
        broker
    )
    transport = mock.Mock()
    transport._driver._get_connection.return_value = pooled
    assert service.rpc.delete_server_queues(transport, 't', 'h') == {'t.h': 3}
    assert channel.queue_delete.call_args_list == [
        mock.call('t.h', if_unused=True),
        mock.call('t', if_unused=True),
    ]
    broker.__exit__.assert_called_once()


def test_a_transport_without_queues_has_none_to_remove(config):
    transport = service.rpc.get_transport(config.conf, url='fake://')
    try:
        assert service.rpc.delete_server_queues(transport, 't', 'h') == {}
    finally:
        transport.cleanup()
