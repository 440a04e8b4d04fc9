"""RabbitMQ crashing under load, on a private node (never the shared one).

The node is SIGKILLed while two agents serve shows, pings and downloads,
then started again. The agents reconnect by themselves (same processes,
no restart), every call returns within its time limit (an answer, or a
transport error while the broker is away), nothing partial is written, and
every call after the broker is back succeeds.
"""

import io
import os
import threading
import time

import oslo_messaging as messaging
import pytest

from image_agent import conf
from image_agent import rpc
from image_agent import rpcapi
from tests.faults import helpers
from tests.faults.helpers import MiB

pytestmark = pytest.mark.slow

TIMEOUT = 5
# oslo.messaging's reconnection delays (rabbit_retry_interval 1 s, then 2 s
# more each time): a caller with retry=2 waits at most 1 + 3 s for the
# broker before it gives up sending.
RETRY = 2
RECONNECT_BUDGET = 1 + 3
# The caller's reply listener reconnects too (its next attempt up to 5 s
# away), and a loaded 2-core machine adds its own delays: a reply timeout
# can be noticed that much late. Beyond it, a call hangs.
SLACK = 5 + 3
# Transport errors a caller may see while the broker is away.
TRANSPORT_ERRORS = (
    messaging.MessagingTimeout,
    messaging.MessageDeliveryFailure,
)
DATA = os.urandom(2 * MiB)
DATA_HASH = helpers.sha512(DATA)


class Load:
    def __init__(self, clients, agents, ctxt, image_id, row) -> None:
        self.clients = clients
        self.agents = agents
        self.ctxt = ctxt
        self.image_id = image_id
        self.row = row
        self.stop = threading.Event()
        self.lock = threading.Lock()
        # (client's retry, kind, started, duration, error)
        self.calls: list[tuple] = []
        self.n = 0

    def one(self, retry, kind: str, agent) -> None:
        client = self.clients[retry]
        with self.lock:
            self.n += 1
            n = self.n
        started = time.monotonic()
        error = None
        try:
            if kind == 'ping':
                assert client.ping(self.ctxt, host=agent.host)
            elif kind == 'show':
                shown = client.show(self.ctxt, self.image_id, host=agent.host)
                assert shown['os_hash_value'] == DATA_HASH
            else:
                path = os.path.join(agent.root, 'bus-%06d' % n)
                client.download(
                    self.ctxt, self.image_id, path, host=agent.host
                )
        except Exception as e:  # noqa: BLE001 - judged afterwards
            error = e
        with self.lock:
            self.calls.append(
                (retry, kind, started, time.monotonic() - started, error)
            )
        self.row.add(calls=1)

    def run(self, retry, kind: str, i: int) -> None:
        agent = self.agents[i % len(self.agents)]
        while not self.stop.is_set():
            self.one(retry, kind, agent)


@pytest.mark.scenario('2. RabbitMQ crash under load')
def test_agents_survive_a_broker_crash(
    row,
    faults_rabbit,
    agent_factory,
    topic,
    images,
    demo_context,
):
    """Callers with the library's default retry=None (wait for the broker)
    and with retry=2 (give up sending after two reconnections) at once."""
    image = images(demo_context, data=io.BytesIO(DATA))
    agents = []
    transport = rpc.get_transport(conf.CONF, url=faults_rabbit.url)
    clients = {
        retry: rpcapi.ImageAgentAPI(
            transport=transport, topic=topic, timeout=TIMEOUT, retry=retry
        )
        for retry in (None, RETRY)
    }
    client = clients[RETRY]
    try:
        for _ in range(2):
            agents.append(agent_factory(transport_url=faults_rabbit.url))
        before = {
            a.host: client.ping(demo_context, host=a.host) for a in agents
        }
        load = Load(clients, agents, demo_context, image['id'], row)
        plan = [
            (retry, kind)
            for retry in (None, RETRY)
            for kind in ('ping', 'show', 'download')
        ]
        threads = [
            threading.Thread(target=load.run, args=(*p, i), daemon=True)
            for i, p in enumerate(plan)
        ]
        for t in threads:
            t.start()
        time.sleep(1.5)
        crashed = time.monotonic()
        faults_rabbit.crash()
        row.add(faults=1)
        faults_rabbit.start()
        back = time.monotonic()
        # Serving again: a ping of each agent answers.
        for agent in agents:
            helpers.wait_until(
                lambda agent=agent: _pings(client, demo_context, agent),
                60,
                'agent %s to answer after the broker restart' % agent.host,
                interval=0.2,
            )
        recovered = time.monotonic()
        time.sleep(3)
        load.stop.set()
        for t in threads:
            t.join(TIMEOUT + 60)
        assert not any(t.is_alive() for t in threads), 'a call hangs'

        calls = load.calls
        before_crash = [c for c in calls if c[2] + c[3] < crashed]
        during = [
            c for c in calls if c[2] + c[3] >= crashed and c[2] < recovered
        ]
        after = [c for c in calls if c[2] >= recovered]
        errors_before = [c for c in before_crash if c[4] is not None]
        errors_after = [c for c in after if c[4] is not None]
        bad = [
            c
            for c in during
            if c[4] is not None and not isinstance(c[4], TRANSPORT_ERRORS)
        ]
        for c in during:
            if c[4] is not None and isinstance(c[4], TRANSPORT_ERRORS):
                row.error(c[4])
        # No call outlived its limit: the reply timeout plus the time the
        # caller is willing to wait for the broker (retry=None: the outage).
        outage = back - crashed
        limits = {
            None: TIMEOUT + outage + (recovered - back) + SLACK,
            RETRY: TIMEOUT + RECONNECT_BUDGET + SLACK,
        }
        hung = [c for c in calls if c[3] > limits[c[0]]]
        row.add(
            failures=len(errors_before)
            + len(errors_after)
            + len(bad)
            + len(hung)
        )

        # Downloads: whatever finished on disk is complete; no temp files.
        for agent in agents:
            for name in os.listdir(agent.root):
                path = os.path.join(agent.root, name)
                if name.startswith('bus-'):
                    if helpers.file_sha512(path) != DATA_HASH:
                        row.add(bytes_lost=os.path.getsize(path))
                    os.unlink(path)
        leftovers = helpers.temp_files(*(a.root for a in agents))

        after_ping = {
            a.host: client.ping(demo_context, host=a.host) for a in agents
        }
        row.note(
            'broker SIGKILLed and restarted: down %.1f s; both agents '
            'answering %.1f s after it was back (same pids, no restart)'
            % (outage, recovered - back)
        )
        for retry in (None, RETRY):
            mine = [c for c in calls if c[0] == retry]
            row.note(
                'caller retry=%s: %d calls (%d during the outage, %d '
                'transport errors), slowest %.1f s (limit %.1f s)'
                % (
                    retry,
                    len(mine),
                    sum(1 for c in during if c[0] == retry),
                    sum(1 for c in mine if c[4] is not None),
                    max(c[3] for c in mine),
                    limits[retry],
                )
            )
        for agent in agents:
            assert agent.alive()
            assert after_ping[agent.host]['pid'] == before[agent.host]['pid']
            assert (
                after_ping[agent.host]['started_at']
                == before[agent.host]['started_at']
            )
            assert agent.log_text().count('listening on') == 1
        assert errors_before == [], errors_before[:3]
        assert bad == [], [helpers.describe(c[4]) for c in bad[:5]]
        assert errors_after == [], [
            helpers.describe(c[4]) for c in errors_after[:5]
        ]
        assert hung == [], [(c[0], c[1], round(c[3], 1)) for c in hung]
        assert len(after) > 10
        assert leftovers == []
        assert row.bytes_lost == 0
    finally:
        transport.cleanup()
        for agent in agents:
            agent.stop()


def _pings(client, ctxt, agent) -> bool:
    try:
        client.ping(ctxt, host=agent.host)
    except TRANSPORT_ERRORS:
        return False
    return True
