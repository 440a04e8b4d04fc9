"""The agent itself killed or stopped while a download runs.

SIGKILL of the whole agent (master and worker): the caller learns within
the heartbeat window (``[image_agent] call_monitor_timeout``) that the call is
lost, nothing partial is at the destination, and the temporary file is
removed by the next start. SIGTERM: the running download completes and its
reply reaches the caller before the agent exits.

Glance answers through a throttled proxy here, so that the signal lands
while bytes flow.
"""

import io
import os
import signal
import time

import oslo_messaging as messaging
import pytest

from tests.faults import helpers
from tests.faults.helpers import MiB
from tools.testenv.relay import Relay

pytestmark = pytest.mark.slow

DATA = os.urandom(6 * MiB)
DATA_HASH = helpers.sha512(DATA)
RATE = 2 * MiB
HEARTBEAT_WINDOW = 4


@pytest.fixture
def slow_agent(deployment, agent_factory):
    """An agent whose Glance answers at RATE bytes/s; gone at the end."""
    proxy = Relay.to(deployment.glance_urls[0], rate=RATE)
    agent = agent_factory(glance_urls=[proxy.url])
    yield agent
    agent.stop()
    proxy.close()


@pytest.fixture
def image(images, demo_context):
    return images(demo_context, data=io.BytesIO(DATA))


@pytest.mark.scenario('3. Agent SIGKILL mid-download')
def test_a_killed_agent_is_noticed_and_leaves_nothing(
    row,
    config,
    slow_agent,
    api,
    demo_context,
    image,
):
    agent = slow_agent
    # The caller's own setting: how long it waits without a heartbeat.
    config.config(group='image_agent', call_monitor_timeout=HEARTBEAT_WINDOW)
    call, path = helpers.download_under_way(
        api, demo_context, image['id'], agent, 'killed', written=MiB
    )
    helpers.kill_agent(agent)
    killed_at = time.monotonic()
    row.add(faults=1, calls=1)
    call.join(HEARTBEAT_WINDOW + 30)
    noticed = call.finished_at - killed_at
    orphans = helpers.temp_files(agent.root)
    if isinstance(call.error, messaging.MessagingTimeout):
        row.error(call.error)
    else:
        row.add(failures=1)
    if os.path.lexists(path):
        row.add(bytes_lost=len(DATA))
    row.note(
        'agent SIGKILLed with %d bytes written: the caller got %s after '
        '%.1f s (heartbeat window %d s); %d temporary file(s) left'
        % (
            max(os.path.getsize(p) for p in orphans) if orphans else 0,
            type(call.error).__name__,
            noticed,
            HEARTBEAT_WINDOW,
            len(orphans),
        )
    )
    assert isinstance(call.error, messaging.MessagingTimeout), call.error
    assert noticed < HEARTBEAT_WINDOW + 3
    assert not os.path.lexists(path)

    # The next start removes what the dead agent left.
    helpers.restart_agent(agent)
    assert helpers.temp_files(agent.root) == []
    row.note('the next start removed them')
    # Serving again.
    shown = api.show(demo_context, image['id'], host=agent.host)
    row.add(calls=1)
    assert shown['os_hash_value'] == DATA_HASH


@pytest.mark.scenario('3. Agent SIGTERM mid-download')
def test_sigterm_lets_the_download_finish_and_reply(
    row,
    slow_agent,
    api,
    demo_context,
    image,
):
    agent = slow_agent
    call, path = helpers.download_under_way(
        api, demo_context, image['id'], agent, 'drained', written=MiB
    )
    agent.signal(signal.SIGTERM)
    signalled = time.monotonic()
    row.add(faults=1, calls=1)
    call.join(60)
    if call.error is not None:
        row.add(failures=1)
    exit_code = agent.popen.wait(60)
    row.note(
        'SIGTERM with the download in flight: reply after %.1f s (%s), '
        'agent exited %s'
        % (
            call.finished_at - signalled,
            'success' if call.error is None else type(call.error).__name__,
            exit_code,
        )
    )
    assert call.error is None, call.error
    assert call.result['size'] == len(DATA)
    assert helpers.file_sha512(path) == DATA_HASH
    assert exit_code == 0
    assert helpers.temp_files(agent.root) == []
