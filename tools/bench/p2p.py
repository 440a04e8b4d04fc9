"""Peer-to-peer pre-cache against the same pre-cache from Glance alone.

    python -m tools.bench.p2p OUTPUT_DIR [--agents 20] [--size-mib 256]
        [--glance-rate-mbs 100] [--fanout 3]

    tools/bench/run.sh --only p2p OUTPUT_DIR   (the same, in the suite)

As root (it starts a private RabbitMQ node), with the test fixtures (like
``tools.bench.fleet``). Run by itself it starts (or reuses) the test
deployment; as the suite's section ``p2p`` it uses the suite's. It starts
a private RabbitMQ node, a relay in front of one Glance server that caps
the image bytes all agents get from Glance at ``--glance-rate-mbs`` MB/s
in all (a shared Glance NIC, scaled down) and counts them, and
``--agents`` agents with ``[peers] enabled``, their roots on a tmpfs
(each host has a disk of its own; here one disk would be the bottleneck
of both runs).

In one run, with the same agents and image: the baseline, one
``ImageAgentAPI.precache`` with ``peer_fanout=0`` (every host from
Glance, today's behaviour); every cache emptied; the same pre-cache with
the agents spreading the image (``peer_fanout``). Each is timed, and the
relay tells how many bytes Glance served. Every cache entry is then
hashed on disk and compared with Glance's ``os_hash_value``.

Writes ``OUTPUT_DIR/p2p.json``: ``hosts``, ``image_bytes``,
``glance_bytes_p2p``, ``glance_bytes_baseline``, ``wall_s_p2p``,
``wall_s_baseline``, ``all_verified``, and the ratios, the outcomes and
how the peer servers answered (``peer_answers``: from complete entries or
from entries still being written).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from image_agent import cache as image_cache
from image_agent import conf
from image_agent import rpc
from image_agent import rpcapi
from image_agent.image import glance
from tests.functional.agent_fixtures import PrivateRabbit
from tests.functional.glance_fixtures import make_context
from tools.bench import fleet
from tools.bench import harness
from tools.bench.environment import RandomStream
from tools.bench.precache import CHUNK
from tools.testenv import Deployment
from tools.testenv.relay import Relay

MiB = 1024 * 1024


def precache(api, ctxt, image_id: str, hosts: list[str], fanout: int):
    """One pre-cache on every host; seconds and the outcome per host."""
    started = time.monotonic()
    result = api.precache(
        ctxt, [image_id], hosts, max_workers=len(hosts), peer_fanout=fanout
    )
    wall = time.monotonic() - started
    return wall, {h: result[h][image_id] for h in hosts}


def verified(agents, image: dict) -> bool:
    """Whether every host's cache entry has Glance's hash."""
    name = image_cache.entry_name(image)
    for agent in agents:
        digest = hashlib.sha512()
        with open(os.path.join(agent.root, 'cache', name), 'rb') as f:
            while block := f.read(8 * MiB):
                digest.update(block)
        if digest.hexdigest() != image['os_hash_value']:
            return False
    return True


def peer_answers(agents) -> dict[str, int]:
    """How the peer servers answered: from complete entries, or from
    entries still being written (their logs)."""
    text = ''.join(agent.log_text() for agent in agents)
    return {
        state: text.count(', %s) to ' % state)
        for state in ('cached', 'growing')
    }


def measure(api, ctxt, agents, image: dict, relay: Relay, fanout: int):
    """Baseline, then peers, on the same agents; the figures."""
    hosts = [a.host for a in agents]
    figures: dict = {}
    for name, spread in (('baseline', 0), ('p2p', fanout)):
        for host in hosts:
            api.evict(ctxt, image['id'], host)
        before = relay.file_bytes
        wall, outcomes = precache(api, ctxt, image['id'], hosts, spread)
        figures['wall_s_' + name] = round(wall, 2)
        figures['glance_bytes_' + name] = relay.file_bytes - before
        figures['outcomes_' + name] = dict(
            collections.Counter(
                '%s/%s' % (o['status'], o.get('source'))
                for o in outcomes.values()
            )
        )
        figures['verified_' + name] = verified(agents, image) and all(
            o['status'] == 'cached' for o in outcomes.values()
        )
    return figures


def run_agents(
    args, deployment, node: PrivateRabbit, ctxt, image: dict
) -> dict:
    base = tempfile.mkdtemp(prefix='image-agent-bench-p2p-', dir='/dev/shm')
    relay = Relay.to(
        deployment.glance_urls[0], total_rate=args.glance_rate_mbs * 10**6
    )
    topic = 'image-agent-p2p-%d' % os.getpid()
    transport = rpc.get_transport(conf.CONF, url=node.url)
    api = rpcapi.ImageAgentAPI(transport=transport, topic=topic, timeout=60)
    agents = []
    try:
        agents = fleet.start_fleet(
            args.agents,
            base,
            deployment,
            node.url,
            topic,
            glance_urls=[relay.url],
            options={'peers': {'enabled': 'true', 'listen_port': '0'}},
        )
        figures = measure(api, ctxt, agents, image, relay, args.fanout)
        figures['peer_answers'] = peer_answers(agents)
    finally:
        api.close()
        transport.cleanup()
        fleet.stop_fleet(agents)
        relay.close()
        shutil.rmtree(base, ignore_errors=True)
    size = image['size']
    figures.update(
        hosts=args.agents,
        image_bytes=size,
        glance_rate_mbs=args.glance_rate_mbs,
        peer_fanout=args.fanout,
        glance_copies_p2p=round(figures['glance_bytes_p2p'] / size, 3),
        glance_copies_baseline=round(
            figures['glance_bytes_baseline'] / size, 3
        ),
        wall_ratio=round(
            figures['wall_s_p2p'] / figures['wall_s_baseline'], 3
        ),
        all_verified=figures['verified_p2p'] and figures['verified_baseline'],
        cpus=os.cpu_count(),
        commit=_commit(),
    )
    return figures


def _commit() -> str:
    try:
        return subprocess.run(
            ['git', 'rev-parse', '--short', 'HEAD'],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def table(figures: dict) -> str:
    size = figures['image_bytes']
    rows = [
        ('', 'Glance alone', 'peers'),
        (
            'wall time (s)',
            '%.1f' % figures['wall_s_baseline'],
            '%.1f (%.2fx)' % (figures['wall_s_p2p'], figures['wall_ratio']),
        ),
        (
            'bytes from Glance (image sizes)',
            '%.2f' % (figures['glance_bytes_baseline'] / size),
            '%.2f' % (figures['glance_bytes_p2p'] / size),
        ),
        (
            'outcomes',
            str(figures['outcomes_baseline']),
            str(figures['outcomes_p2p']),
        ),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return '\n'.join(
        '  '.join(cell.ljust(width[i]) for i, cell in enumerate(row))
        for row in rows
    )


def run(args, deployment) -> dict:
    """Upload the image, measure both pre-caches, write p2p.json."""
    conf.CONF.set_override('api_servers', deployment.glance_urls[:1], 'glance')
    ctxt = make_context(deployment, 'admin')
    images = glance.GlanceImageService()
    image = images.create(
        ctxt,
        {
            'name': 'p2p-bench',
            'disk_format': 'raw',
            'container_format': 'bare',
        },
        data=io.BufferedReader(RandomStream(args.size_mib * MiB), CHUNK),
    )
    image = images.show(ctxt, image['id'])
    node = PrivateRabbit()
    try:
        node.start()
        figures = run_agents(args, deployment, node, ctxt, image)
    finally:
        node.stop()
        images.delete(ctxt, image['id'])
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, 'p2p.json'), 'w') as f:
        json.dump(figures, f, indent=2, sort_keys=True)
    return figures


def section(bench) -> harness.Figures:
    """The suite's ``p2p`` section: the defaults, the suite's deployment."""
    figures = run(parse([bench.args.output_dir]), bench.env.deployment)
    keys = ('glance_copies_p2p', 'glance_copies_baseline', 'wall_ratio')
    return harness.Figures(
        values={'p2p_' + key: figures[key] for key in keys},
        raw={'p2p': figures},
        lines=['p2p (also in p2p.json):', *table(figures).splitlines()],
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('output_dir')
    parser.add_argument('--agents', type=int, default=20)
    parser.add_argument('--size-mib', type=int, default=256)
    parser.add_argument('--glance-rate-mbs', type=int, default=100)
    parser.add_argument(
        '--fanout', type=int, default=rpcapi.ImageAgentAPI.PEER_FANOUT
    )
    parser.add_argument(
        '--state-dir',
        default='/tmp/image-agent-testenv',  # noqa: S108
        help='deployment to reuse or start (default: the shared one)',
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    conf.CONF([], project='image-agent', default_config_files=[])
    figures = run(args, Deployment(args.state_dir).start())
    print(table(figures))
    return 0


if __name__ == '__main__':
    sys.exit(main())
