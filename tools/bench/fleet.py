"""A fleet of agents on one private RabbitMQ node: what each agent costs.

    python -m tools.bench.fleet [--agents 100] [--size-mib 64]

Starts (or reuses) the test deployment and a private RabbitMQ node (never
the machine's broker), then ``--agents`` ``image-agent`` processes, each
with its own host name, root and cache. It pre-caches one image of random
bytes on every host with one ``ImageAgentAPI.precache`` call (an admin
token: pre-caching is gated by role), pings every host at once, and
reports:

* how long the agents took to start and the pre-cache to complete, with
  the outcome of every host;
* the agents' resident memory (master and worker of each, summed), in all
  and per agent;
* the broker's queues, connections and resident memory
  (``rabbitmqctl list_queues`` / ``list_connections`` on the private node);
* the ping fan-out: all hosts at once from a pool of threads, its wall
  time and the latency of each call.

On one machine the agents share its CPUs, disk and Glance: the times are
a ceiling of what separate hosts see; memory and broker figures are not
affected. The fault suite runs a small fleet (``tests/faults/test_fleet.py``).
"""

from __future__ import annotations

import argparse
import collections
from concurrent import futures
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time

from image_agent import conf
from image_agent import rpc
from image_agent import rpcapi
from image_agent.image import glance
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.agent_fixtures import PrivateRabbit
from tests.functional.glance_fixtures import make_context
from tests.functional.rabbit_cluster import node_pid
from tools.bench.environment import RandomStream
from tools.bench.environment import rss_bytes
from tools.bench.precache import CHUNK
from tools.testenv import Deployment

PING_WORKERS = 32
# Seconds each agent may take to start, on top of a first minute: on a
# small machine the interpreters of a large fleet start one after another.
START_SECONDS_PER_AGENT = 3


def group_processes(pgid: int) -> list[int]:
    """The pids of a process group (an agent: its master and worker)."""
    pids = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % name) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(name))
    return pids


def group_rss(pgid: int) -> int:
    """Resident bytes of every process of a process group."""
    total = 0
    for pid in group_processes(pgid):
        with contextlib.suppress(OSError, ValueError):
            total += rss_bytes(pid)
    return total


def start_fleet(
    n: int,
    base: str,
    deployment,
    url: str,
    topic: str,
    glance_urls: list[str] | None = None,
    options: dict | None = None,
) -> list[AgentProcess]:
    """Start ``n`` agents at once, then wait until each listens.

    ``options``: more configuration sections for every agent.
    """
    agents = []
    for i in range(1, n + 1):
        host = 'fleet-%03d' % i
        cache = os.path.join(base, host, 'root', 'cache')
        sections = {'agent': {'cache_dir': cache}}
        for section, values in (options or {}).items():
            sections.setdefault(section, {}).update(values)
        agents.append(
            AgentProcess(
                base,
                host,
                topic,
                url,
                deployment,
                glance_urls=glance_urls,
                options=sections,
            ).start(wait=False)
        )
    timeout = 60 + START_SECONDS_PER_AGENT * n
    for agent in agents:
        agent.wait_for_log('listening on', timeout=timeout)
    return agents


def stop_fleet(agents: list[AgentProcess]) -> None:
    for agent in agents:  # all at once, then wait for each
        agent.terminate()
    for agent in agents:
        agent.stop(timeout=30)


def broker_figures(node: PrivateRabbit) -> dict:
    """Queues, consumers, connections and memory of the private node."""
    queues = [
        line.split('\t')
        for line in node.ctl_output(
            'list_queues',
            '--no-table-headers',
            'name',
            'messages',
            'consumers',
        ).splitlines()
        if '\t' in line
    ]
    connections = [
        line
        for line in node.ctl_output(
            'list_connections', '--no-table-headers', 'name'
        ).splitlines()
        if line.strip()
    ]
    pid = node_pid(node)
    return {
        'queues': len(queues),
        'messages': sum(int(q[1]) for q in queues),
        'consumers': sum(int(q[2]) for q in queues),
        'connections': len(connections),
        'rss': rss_bytes(pid) if pid else 0,
    }


def ping_fanout(api, ctxt, hosts: list[str]) -> dict:
    """Ping every host at once; wall time and each call's latency."""

    def one(host: str) -> tuple[float, str | None]:
        started = time.perf_counter()
        try:
            api.ping(ctxt, host=host)
        except Exception as e:  # noqa: BLE001 - reported per host
            return time.perf_counter() - started, type(e).__name__
        return time.perf_counter() - started, None

    started = time.perf_counter()
    with futures.ThreadPoolExecutor(min(PING_WORKERS, len(hosts))) as pool:
        results = list(pool.map(one, hosts))
    wall = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)
    return {
        'wall': wall,
        'p50': statistics.median(latencies),
        'p95': latencies[int(0.95 * (len(latencies) - 1))],
        'max': latencies[-1],
        'errors': collections.Counter(r[1] for r in results if r[1]),
    }


def run(
    n: int, deployment, node: PrivateRabbit, ctxt, image_id: str, base: str
) -> dict:
    """Start the fleet, pre-cache ``image_id`` everywhere, measure, stop."""
    topic = 'image-agent-fleet-%d' % os.getpid()
    figures: dict = {'agents': n}
    started = time.monotonic()
    agents: list[AgentProcess] = []
    transport = rpc.get_transport(conf.CONF, url=node.url)
    api = rpcapi.ImageAgentAPI(transport=transport, topic=topic, timeout=60)
    try:
        agents = start_fleet(n, base, deployment, node.url, topic)
        figures['start'] = time.monotonic() - started
        hosts = [a.host for a in agents]
        figures['processes'] = sum(len(group_processes(a.pid)) for a in agents)
        figures['ping_cold'] = ping_fanout(api, ctxt, hosts)
        rss = sorted(group_rss(a.pid) for a in agents)
        figures['rss'] = {
            'sum': sum(rss),
            'mean': sum(rss) / n,
            'min': rss[0],
            'max': rss[-1],
        }
        started = time.monotonic()
        result = api.precache(ctxt, [image_id], hosts)
        figures['precache'] = time.monotonic() - started
        outcomes = {h: result[h][image_id] for h in hosts}
        figures['outcomes'] = collections.Counter(
            o['status'] for o in outcomes.values()
        )
        figures['failed_hosts'] = {
            h: '%s: %s' % (o.get('error_class'), o.get('error'))
            for h, o in outcomes.items()
            if o['status'] not in ('cached', 'existing')
        }
        figures['ping'] = ping_fanout(api, ctxt, hosts)
        figures['broker'] = broker_figures(node)
        figures['rss_after'] = sum(group_rss(a.pid) for a in agents)
        figures['alive'] = sum(1 for a in agents if a.alive())
    finally:
        api.close()
        transport.cleanup()
        stop_fleet(agents)
    return figures


def table(figures: dict, size_mib: int) -> str:
    """The figures as the rows of a text table."""
    mib = 1024 * 1024
    n = figures['agents']
    rss, broker = figures['rss'], figures['broker']
    rows = [
        ('agents (processes)', '%d (%d)' % (n, figures['processes'])),
        ('start, all listening', '%.1f s' % figures['start']),
        (
            'pre-cache %d MiB on all' % size_mib,
            '%.1f s (%s)'
            % (
                figures['precache'],
                ', '.join(
                    '%s %d' % kv for kv in sorted(figures['outcomes'].items())
                ),
            ),
        ),
        (
            'agent RSS, idle: sum / mean / max',
            '%.0f / %.1f / %.1f MiB'
            % (rss['sum'] / mib, rss['mean'] / mib, rss['max'] / mib),
        ),
        (
            'agent RSS after pre-cache: sum / mean',
            '%.0f / %.1f MiB'
            % (figures['rss_after'] / mib, figures['rss_after'] / mib / n),
        ),
        (
            'broker: queues / consumers / connections',
            '%d / %d / %d'
            % (broker['queues'], broker['consumers'], broker['connections']),
        ),
        ('broker RSS', '%.0f MiB' % (broker['rss'] / mib)),
    ]
    for key, label in (('ping_cold', 'before'), ('ping', 'after')):
        ping = figures[key]
        rows.append(
            (
                'ping fan-out (%s): wall / p50 / p95 / max' % label,
                '%.2f s / %.0f / %.0f / %.0f ms%s'
                % (
                    ping['wall'],
                    ping['p50'] * 1000,
                    ping['p95'] * 1000,
                    ping['max'] * 1000,
                    ', errors %s' % dict(ping['errors'])
                    if ping['errors']
                    else '',
                ),
            )
        )
    rows.append(('agents alive at the end', '%d' % figures['alive']))
    width = max(len(r[0]) for r in rows)
    return '\n'.join('%-*s  %s' % (width, *r) for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--agents', type=int, default=100)
    parser.add_argument('--size-mib', type=int, default=64)
    parser.add_argument(
        '--state-dir',
        default='/tmp/image-agent-testenv',  # noqa: S108
        help='deployment to reuse or start (default: the shared one)',
    )
    args = parser.parse_args()
    dep = Deployment(args.state_dir).start()
    ctxt = make_context(dep, 'admin')
    conf.CONF([], project='image-agent', default_config_files=[])
    conf.CONF.set_override('api_servers', dep.glance_urls[:1], 'glance')
    images = glance.GlanceImageService()
    image = images.create(
        ctxt,
        {'name': 'fleet', 'disk_format': 'raw', 'container_format': 'bare'},
        data=io.BufferedReader(
            RandomStream(args.size_mib * 1024 * 1024), CHUNK
        ),
    )
    base = tempfile.mkdtemp(prefix='image-agent-bench-fleet-')
    node = PrivateRabbit()
    try:
        node.start()
        figures = run(args.agents, dep, node, ctxt, image['id'], base)
        print(table(figures, args.size_mib))
        for host, error in sorted(figures['failed_hosts'].items()):
            print('  %s: %s' % (host, error))
    finally:
        node.stop()
        images.delete(ctxt, image['id'])
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
