"""Load: many callers at once, then a mixed soak with memory watched.

* 2,000 ``show`` calls from 32 threads through two agents: no error.
* A mixed soak (shows, listings, pings, downloads, updates, creates and
  deletes) for ``IMAGE_AGENT_SOAK_SECONDS`` (default 40; 600 by hand):
  no error, and the resident memory of each agent's worker grows by less
  than 10% from the end of the warm-up (12 s) to the end.
"""

import io
import itertools
import os
import statistics
import threading
import time
import uuid

import pytest

from tests.faults import helpers
from tests.faults.helpers import MiB

pytestmark = pytest.mark.slow

SHOW_CALLS = 2000
SHOW_THREADS = 32
# At least 20 s: the warm-up and the baseline come first.
SOAK_SECONDS = max(
    20.0, float(os.environ.get('IMAGE_AGENT_SOAK_SECONDS', '40'))
)
# Caches, connection pools, the allocator's arenas: the first seconds.
WARM_UP_SECONDS = 12
SOAK_THREADS = 6
MAX_GROWTH = 0.10
DATA = os.urandom(MiB)
DATA_HASH = helpers.sha512(DATA)


@pytest.fixture(scope='module')
def load_agents(agent_factory):
    agents = [
        agent_factory('load-a-%s' % uuid.uuid4().hex[:4]),
        agent_factory('load-b-%s' % uuid.uuid4().hex[:4]),
    ]
    yield agents
    for agent in agents:
        agent.stop()


def _percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.scenario('8. 2,000 shows, 32 threads')
def test_two_thousand_shows_from_32_threads(
    row,
    load_agents,
    api,
    images,
    demo_context,
):
    image = images(demo_context, data=io.BytesIO(b'load' * 1024))
    tickets = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    served: dict[str, int] = {a.host: 0 for a in load_agents}

    def worker() -> None:
        while (n := next(tickets)) < SHOW_CALLS:
            agent = load_agents[n % 2]
            started = time.monotonic()
            try:
                shown = api.show(demo_context, image['id'], host=agent.host)
                assert shown['id'] == image['id']
            except Exception as e:  # noqa: BLE001 - counted
                with lock:
                    errors.append(helpers.describe(e))
                row.add(failures=1)
            else:
                with lock:
                    served[agent.host] += 1
            with lock:
                latencies.append(time.monotonic() - started)
            row.add(calls=1)

    threads = [
        threading.Thread(target=worker, daemon=True)
        for _ in range(SHOW_THREADS)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    elapsed = time.monotonic() - started
    assert not any(t.is_alive() for t in threads)
    row.note(
        '%d shows in %.1f s (%.0f/s), p50 %.0f ms, p99 %.0f ms, max %.0f '
        'ms; served %s'
        % (
            len(latencies),
            elapsed,
            len(latencies) / elapsed,
            1000 * statistics.median(latencies),
            1000 * _percentile(latencies, 0.99),
            1000 * max(latencies),
            ' / '.join(str(v) for v in served.values()),
        )
    )
    assert errors == [], errors[:5]
    assert len(latencies) == SHOW_CALLS
    assert all(served.values())


class Soak:
    def __init__(self, api, agents, ctxt, image, row) -> None:
        self.api = api
        self.agents = agents
        self.ctxt = ctxt
        self.image = image
        self.row = row
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}
        self.n = itertools.count()
        self.turn = itertools.count()

    def step(self, op: str, agent, i: int) -> None:
        n = next(self.n)
        ctxt, image_id = self.ctxt, self.image['id']
        if op == 'show':
            assert self.api.show(ctxt, image_id, host=agent.host)
        elif op == 'detail':
            self.api.detail(ctxt, host=agent.host, filters={'name': 'x'})
        elif op == 'ping':
            self.api.ping(ctxt, host=agent.host)
        elif op == 'download':
            path = os.path.join(agent.root, 'soak-%d-%d' % (i, n % 4))
            result = self.api.download(
                ctxt, image_id, path, host=agent.host, overwrite=True
            )
            if not result['reused'] and (
                helpers.file_sha512(path) != DATA_HASH
            ):
                self.row.add(bytes_lost=len(DATA))
            if n % 3 == 0:
                os.unlink(path)  # the next one downloads again
        elif op == 'update':
            self.api.update(
                ctxt,
                image_id,
                {'properties': {'soak': str(n)}},
                purge_props=False,
                host=agent.host,
            )
        elif op == 'create':
            made = self.api.create(
                ctxt,
                {
                    'name': 'soak-%d' % n,
                    'disk_format': 'raw',
                    'container_format': 'bare',
                },
                host=agent.host,
            )
            self.api.delete(ctxt, made['id'], host=agent.host)

    def run(self, ops: list[str], i: int) -> None:
        cycle = itertools.cycle(ops)
        while not self.stop.is_set():
            op = next(cycle)
            agent = self.agents[next(self.turn) % len(self.agents)]
            try:
                self.step(op, agent, i)
            except Exception as e:  # noqa: BLE001 - counted
                with self.lock:
                    self.errors.append('%s: %s' % (op, helpers.describe(e)))
                self.row.add(failures=1)
            with self.lock:
                self.counts[op] = self.counts.get(op, 0) + 1
            self.row.add(calls=1)


@pytest.mark.scenario('8. Mixed soak, memory')
@pytest.mark.test_timeout(int(SOAK_SECONDS) + 240)
def test_mixed_soak_keeps_memory_flat(
    row,
    load_agents,
    api,
    images,
    demo_context,
):
    image = images(demo_context, data=io.BytesIO(DATA))
    soak = Soak(api, load_agents, demo_context, image, row)
    workers = {
        a.host: api.ping(demo_context, host=a.host)['pid'] for a in load_agents
    }
    plans = [
        ['show', 'detail', 'ping'],
        ['show', 'download'],
        ['download', 'show', 'ping'],
        ['update', 'show'],
        ['create', 'detail'],
        ['ping', 'show', 'download', 'detail'],
    ]
    threads = [
        threading.Thread(target=soak.run, args=(plans[i % 6], i), daemon=True)
        for i in range(SOAK_THREADS)
    ]
    samples: dict[str, list[tuple[float, int]]] = {h: [] for h in workers}
    started = time.monotonic()
    for t in threads:
        t.start()
    try:
        while time.monotonic() - started < SOAK_SECONDS:
            now = time.monotonic() - started
            for host, pid in workers.items():
                samples[host].append((now, helpers.rss_bytes(pid)))
            time.sleep(0.5)
    finally:
        soak.stop.set()
        for t in threads:
            t.join(120)
    assert not any(t.is_alive() for t in threads)

    # Baseline: the median of the 4 s after the warm-up; end: of the last
    # tenth of the soak.
    growth = {}
    for host, points in samples.items():
        base = [
            r for t, r in points if WARM_UP_SECONDS <= t < WARM_UP_SECONDS + 4
        ]
        end = [r for t, r in points if t >= 0.9 * SOAK_SECONDS]
        growth[host] = statistics.median(end) / statistics.median(base) - 1
        row.note(
            '%s worker RSS: %.1f MiB after warm-up -> %.1f MiB at the end '
            '(%+.1f%%), peak %.1f MiB'
            % (
                host,
                statistics.median(base) / MiB,
                statistics.median(end) / MiB,
                100 * growth[host],
                max(r for _, r in points) / MiB,
            )
        )
    total = sum(soak.counts.values())
    row.note(
        '%.0f s soak, %d threads, %d calls (%s)'
        % (
            SOAK_SECONDS,
            SOAK_THREADS,
            total,
            ', '.join('%s %d' % kv for kv in sorted(soak.counts.items())),
        )
    )
    for agent in load_agents:
        assert (
            api.ping(demo_context, host=agent.host)['pid']
            == (workers[agent.host])
        )
    assert soak.errors == [], soak.errors[:5]
    assert row.bytes_lost == 0
    assert all(g < MAX_GROWTH for g in growth.values()), growth
