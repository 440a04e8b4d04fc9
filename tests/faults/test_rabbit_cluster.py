"""A three-node RabbitMQ cluster losing one node, then another, under load.

Two agents and their callers list all three private nodes in
``transport_url`` and declare quorum queues. While pings, shows and small
downloads run, the first node is SIGKILLed and later started again, then
the second. Calls go on: the few caught at a node's death fail with a
typed transport error within their time limit, none hangs, the agents are
the same processes throughout, and every call succeeds once the cluster
is whole again.
"""

from __future__ import annotations

import io
import os
import statistics
import threading
import time

from oslo_config import cfg
import oslo_messaging as messaging
import pytest

from image_agent import rpc
from image_agent import rpcapi
from tests.faults import helpers
from tests.faults.helpers import MiB
from tests.faults.test_broker_faults import TRANSPORT_ERRORS
from tests.faults.test_broker_faults import _pings
from tests.functional.rabbit_cluster import QUORUM_OPTIONS

pytestmark = pytest.mark.slow

TIMEOUT = 10
# Seconds a killed node stays down before it is started again.
DOWN = 5
# A caller whose node died reconnects to another one (oslo.messaging's
# retry interval, 1 s) and a loaded 2-core machine adds its own delays.
SLACK = 8
KINDS = ('ping', 'show', 'download', 'ping')
# Calls in flight when a node dies may be lost: at most this many per
# load thread and killed node.
LOST_PER_THREAD = 2
DATA = os.urandom(MiB // 4)
DATA_HASH = helpers.sha512(DATA)


def client_conf() -> cfg.ConfigOpts:
    """A caller's own configuration with quorum queues on."""
    conf = cfg.ConfigOpts()
    conf([], project='image-agent', default_config_files=[])
    return conf


def quorum_transport(url: str) -> messaging.Transport:
    conf = client_conf()
    transport = rpc.get_transport(conf, url=url)
    # The options exist once the rabbit driver is loaded.
    for name, value in QUORUM_OPTIONS.items():
        conf.set_override(name, value == 'true', 'oslo_messaging_rabbit')
    return transport


class MixedLoad:
    """Threads calling ping, show or download in a loop; every call kept."""

    def __init__(self, client, agents, ctxt, image_id) -> None:
        self.client = client
        self.agents = agents
        self.ctxt = ctxt
        self.image_id = image_id
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.calls: list[tuple] = []  # (kind, started, duration, error)
        self.threads = [
            threading.Thread(target=self._run, args=(kind, i), daemon=True)
            for i, kind in enumerate(KINDS)
        ]

    def _call(self, kind: str, agent, n: int) -> None:
        if kind == 'ping':
            assert self.client.ping(self.ctxt, host=agent.host)
        elif kind == 'show':
            shown = self.client.show(self.ctxt, self.image_id, host=agent.host)
            assert shown['os_hash_value'] == DATA_HASH
        else:
            path = os.path.join(agent.root, 'cl-%06d' % n)
            self.client.download(
                self.ctxt, self.image_id, path, host=agent.host
            )
            assert helpers.file_sha512(path) == DATA_HASH
            os.unlink(path)

    def _run(self, kind: str, i: int) -> None:
        agent = self.agents[i % len(self.agents)]
        n = 0
        while not self.stop.is_set():
            n += 1
            started = time.monotonic()
            error = None
            try:
                self._call(kind, agent, n)
            except Exception as e:  # noqa: BLE001 - judged afterwards
                error = e
            with self.lock:
                self.calls.append(
                    (kind, started, time.monotonic() - started, error)
                )

    def between(self, start: float, end: float) -> list[tuple]:
        with self.lock:
            return [c for c in self.calls if start <= c[1] < end]


def _wait_answering(client, ctxt, agents) -> None:
    for agent in agents:
        helpers.wait_until(
            lambda agent=agent: _pings(client, ctxt, agent),
            60,
            'agent %s to answer' % agent.host,
            interval=0.2,
        )


@pytest.mark.scenario('60. RabbitMQ cluster: one node, then another, dies')
def test_calls_go_on_while_cluster_nodes_die(
    row,
    faults_rabbit_cluster,
    agent_factory,
    images,
    demo_context,
):
    cluster = faults_rabbit_cluster
    image = images(demo_context, data=io.BytesIO(DATA))
    transport = quorum_transport(cluster.url)
    client = rpcapi.ImageAgentAPI(transport=transport, timeout=TIMEOUT)
    agents = []
    try:
        for _ in range(2):
            agents.append(
                agent_factory(
                    transport_url=cluster.url,
                    topic_=client.topic,
                    options={'oslo_messaging_rabbit': QUORUM_OPTIONS},
                )
            )
        before = {
            a.host: client.ping(demo_context, host=a.host) for a in agents
        }
        queues = cluster.nodes[0].ctl_output('list_queues', 'name', 'type')
        assert '%s\tquorum' % client.topic in queues, queues
        load = MixedLoad(client, agents, demo_context, image['id'])
        for t in load.threads:
            t.start()
        time.sleep(3)
        marks = [time.monotonic()]
        killed_nodes: list[int] = []
        for _ in range(2):
            # The busiest node not killed yet: the loss hits connections.
            counts = {
                i: cluster.connections_on(i)
                for i in range(len(cluster.nodes))
                if i not in killed_nodes
            }
            index = max(counts, key=counts.get)
            connections = counts[index]
            assert connections > 0, counts
            killed_nodes.append(index)
            killed = time.monotonic()
            cluster.kill(index)
            row.add(faults=1)
            time.sleep(DOWN)
            cluster.restart(index)
            back = time.monotonic()
            helpers.wait_until(
                lambda: cluster.running_nodes() == 3,
                60,
                'the cluster to be whole again',
                interval=0.5,
            )
            _wait_answering(client, demo_context, agents)
            window = [
                c
                for c in load.between(0, time.monotonic())
                if c[1] + c[2] >= killed
            ]
            row.note(
                'node %d (%d connections) SIGKILLed, down %.1f s, cluster '
                'whole %.1f s later; meanwhile %d calls, %d errors, worst '
                '%.1f s'
                % (
                    index + 1,
                    connections,
                    back - killed,
                    time.monotonic() - back,
                    len(window),
                    sum(1 for c in window if c[3] is not None),
                    max((c[2] for c in window), default=0),
                )
            )
            time.sleep(3)
            marks.append(time.monotonic())
        time.sleep(3)
        load.stop.set()
        for t in load.threads:
            t.join(TIMEOUT + SLACK + 30)
        assert not any(t.is_alive() for t in load.threads), 'a call hangs'
        end = time.monotonic()

        calls = load.calls
        steady = load.between(0, marks[0]) + load.between(marks[-1], end)
        errors = [c for c in calls if c[3] is not None]
        untyped = [c for c in errors if not isinstance(c[3], TRANSPORT_ERRORS)]
        for c in errors:
            if isinstance(c[3], TRANSPORT_ERRORS):
                row.error(c[3])
        hung = [c for c in calls if c[2] > TIMEOUT + SLACK]
        steady_errors = [c for c in steady if c[3] is not None]
        bound = LOST_PER_THREAD * len(KINDS) * 2
        row.add(
            calls=len(calls),
            failures=len(untyped)
            + len(hung)
            + len(steady_errors)
            + max(0, len(errors) - bound),
        )
        durations = sorted(c[2] for c in calls)
        row.note(
            '%d calls (%s), %d typed transport errors (bound %d); call p50 '
            '%.1f ms, worst %.1f s (limit %d s)'
            % (
                len(calls),
                ', '.join(
                    '%s %d' % (k, sum(1 for c in calls if c[0] == k))
                    for k in ('ping', 'show', 'download')
                ),
                len(errors),
                bound,
                statistics.median(durations) * 1000,
                durations[-1],
                TIMEOUT + SLACK,
            )
        )
        after = {
            a.host: client.ping(demo_context, host=a.host) for a in agents
        }
        for agent in agents:
            assert agent.alive()
            assert after[agent.host]['pid'] == before[agent.host]['pid']
            assert agent.log_text().count('listening on') == 1
        assert untyped == [], [helpers.describe(c[3]) for c in untyped[:5]]
        assert hung == [], [(c[0], round(c[2], 1)) for c in hung]
        assert steady_errors == [], [
            helpers.describe(c[3]) for c in steady_errors[:5]
        ]
        assert len(errors) <= bound, len(errors)
        assert len(load.between(marks[-1], end)) > 10
        assert helpers.temp_files(*(a.root for a in agents)) == []
    finally:
        client.close()
        transport.cleanup()
        for agent in agents:
            agent.stop()
