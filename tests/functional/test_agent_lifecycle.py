"""The agent's life: SIGTERM, a killed worker, a broker restart.

Downloads here go through a throttling proxy in front of Glance, so that a
signal reliably lands while bytes are still flowing.
"""

import io
import os
import signal
import time

import oslo_messaging as messaging
import pytest

from image_agent import conf
from image_agent import exception
from image_agent import rpc
from image_agent import rpcapi
from tests.functional.background import download_under_way
from tests.functional.background import temp_files

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
DATA = os.urandom(6 * MiB)
RATE = 2 * MiB  # bytes/s through the proxy: about 3 s per download


@pytest.fixture
def image(images, demo_context):
    return images(demo_context, data=io.BytesIO(DATA))


def test_sigterm_lets_a_running_download_finish(
    agent_factory,
    slow_glance,
    api,
    demo_context,
    image,
):
    agent = agent_factory(glance_urls=[slow_glance(RATE)])
    call, path = download_under_way(
        api, demo_context, image['id'], agent, 'drained'
    )
    agent.signal(signal.SIGTERM)
    call.join(30)
    assert call.error is None, call.error
    assert call.result['size'] == len(DATA)
    with open(path, 'rb') as f:
        assert f.read() == DATA
    assert agent.popen.wait(30) == 0
    assert temp_files(agent.root) == []


def test_sigterm_past_the_drain_timeout_cancels_cleanly(
    agent_factory,
    slow_glance,
    api,
    demo_context,
    image,
):
    agent = agent_factory(
        glance_urls=[slow_glance(RATE)],
        options={'agent': {'drain_timeout': 0}},
    )
    call, path = download_under_way(
        api, demo_context, image['id'], agent, 'cancelled'
    )
    agent.signal(signal.SIGTERM)
    call.join(30)
    assert isinstance(call.error, exception.ImageDownloadFailed)
    assert 'shutting down' in call.error.msg
    assert not os.path.exists(path)
    assert temp_files(agent.root) == []
    assert agent.popen.wait(30) == 0


def test_a_killed_worker_is_noticed_in_seconds_and_its_leftovers_removed(
    agent_factory,
    slow_glance,
    api,
    config,
    demo_context,
    image,
):
    # The caller's setting: how long it waits without a heartbeat.
    config.config(group='image_agent', call_monitor_timeout=4)
    agent = agent_factory(glance_urls=[slow_glance(RATE // 2)])
    worker = api.ping(demo_context, host=agent.host)['pid']
    call, path = download_under_way(
        api, demo_context, image['id'], agent, 'killed'
    )
    os.kill(worker, signal.SIGKILL)
    killed_at = time.monotonic()
    call.join(30)
    # No heartbeat for call_monitor_timeout: the caller gives up.
    assert isinstance(call.error, messaging.MessagingTimeout)
    assert call.finished_at - killed_at < 4 + 3
    # The master started a new worker, which removed the orphan.
    agent.wait_for_log('listening on', count=2)
    assert temp_files(agent.root) == []
    assert not os.path.exists(path)
    assert agent.alive()
    assert api.ping(demo_context, host=agent.host)['pid'] != worker
    # Its Glance (the throttled proxy) goes with this test: an agent left on
    # the shared topic would answer later calls that name no host.
    agent.stop()


def test_the_agent_survives_a_broker_restart(
    private_rabbit,
    agent_factory,
    topic,
    demo_context,
    image,
):
    agent = agent_factory(transport_url=private_rabbit.url)
    private = rpc.get_transport(conf.CONF, url=private_rabbit.url)
    client = rpcapi.ImageAgentAPI(transport=private, topic=topic, timeout=3)
    try:
        before = client.ping(demo_context, host=agent.host)
        private_rabbit.ctl('stop_app')
        private_rabbit.ctl('start_app')
        deadline = time.monotonic() + 60
        while True:
            try:
                after = client.ping(demo_context, host=agent.host)
                break
            except messaging.MessagingTimeout:
                assert time.monotonic() < deadline, agent.tail()
        assert after['pid'] == before['pid']
        assert after['started_at'] == before['started_at']
        assert agent.alive()
        path = os.path.join(agent.root, 'after-restart')
        result = client.download(
            demo_context, image['id'], path, host=agent.host
        )
        assert result['size'] == len(DATA)
    finally:
        private.cleanup()
        # Before its broker goes away with the fixture.
        agent.stop()
