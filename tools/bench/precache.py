"""Pre-caching one image on six hosts: fan-out vs one host after another.

    python -m tools.bench.precache [--size-mib 256] [--hosts 6] [--runs 1]

Starts (or reuses) the test deployment, uploads an image of random bytes,
starts ``--hosts`` ``image-agent`` processes on this machine (each its own
host name, root and cache, on the machine's RabbitMQ) and times, per run:

* ``sequential downloads``: ``ImageAgentAPI.download`` to each host in
  turn (what a caller does without pre-caching);
* ``sequential pre-cache``: ``precache`` of one host at a time;
* ``fan-out pre-cache``: one ``ImageAgentAPI.precache`` call for every
  host (bounded thread pool on the caller's side).

The caches are emptied (``evict``) before each step. Every step takes the
image ``--hosts`` times from Glance; the fan-out overlaps the hosts. On one
machine the hosts share its CPUs and disk, so the speed-up is a floor of
what separate hosts get.
"""

import argparse
import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import kombu

from image_agent import conf
from image_agent import context as ia_context
from image_agent import rpc
from image_agent import rpcapi
from image_agent.image import glance
from tools.bench.environment import RABBIT_URL
from tools.bench.environment import RandomStream
from tools.testenv import Deployment

CHUNK = 16 * 1024 * 1024


def start_agent(workdir: str, host: str, dep, topic: str):
    base = os.path.join(workdir, host)
    root = os.path.join(base, 'root')
    os.makedirs(root)
    config = os.path.join(base, 'image-agent.conf')
    with open(config, 'w') as f:
        f.write(
            '[DEFAULT]\ntransport_url = %s\nhost = %s\n'
            'auth_strategy = keystone\n'
            '[agent]\ntopic = %s\ndownload_roots = %s\ncache_dir = %s\n'
            '[glance]\napi_servers = %s\n'
            % (
                RABBIT_URL,
                host,
                topic,
                root,
                os.path.join(root, 'cache'),
                dep.glance_urls[0],
            )
        )
    log = open(os.path.join(base, 'agent.log'), 'wb')  # noqa: SIM115
    bin_dir = os.path.dirname(sys.executable)
    proc = subprocess.Popen(
        [os.path.join(bin_dir, 'image-agent'), '--config-file', config],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size-mib', type=int, default=256)
    parser.add_argument('--hosts', type=int, default=6)
    parser.add_argument('--runs', type=int, default=1)
    parser.add_argument(
        '--state-dir',
        default='/tmp/image-agent-testenv',  # noqa: S108
        help='deployment to reuse or start (default: the shared one)',
    )
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    dep = Deployment(args.state_dir).start()
    # Pre-caching needs the admin role ([policy] precache_roles).
    creds = dep.authenticate('admin')
    ctxt = ia_context.RequestContext(
        auth_token=creds['token'],
        user_id=creds['user_id'],
        project_id=creds['project_id'],
        roles=creds['roles'],
        service_catalog=creds['catalog_v2'],
        overwrite=False,
    )
    conf.CONF([], project='image-agent', default_config_files=[])
    conf.CONF.set_override('api_servers', dep.glance_urls[:1], 'glance')
    images = glance.GlanceImageService()
    print('uploading %d MiB of random bytes...' % args.size_mib)
    image = images.create(
        ctxt,
        {'name': 'bench', 'disk_format': 'raw', 'container_format': 'bare'},
        data=io.BufferedReader(RandomStream(size), CHUNK),
    )
    workdir = tempfile.mkdtemp(prefix='image-agent-bench-precache-')
    topic = 'image-agent-bench-pc-%d' % os.getpid()
    hosts = ['bench-%d' % n for n in range(1, args.hosts + 1)]
    agents = {h: start_agent(workdir, h, dep, topic) for h in hosts}
    transport = rpc.get_transport(conf.CONF, url=RABBIT_URL)
    api = rpcapi.ImageAgentAPI(transport=transport, topic=topic, timeout=5)

    def empty_caches() -> None:
        for host in hosts:
            api.evict(ctxt, image['id'], host)

    def sequential_downloads() -> None:
        for host in hosts:
            path = os.path.join(agents[host][1], 'disk-%d' % time.time_ns())
            api.download(ctxt, image['id'], path, host=host)
            os.remove(path)

    def sequential_precache() -> None:
        for host in hosts:
            api.precache(ctxt, [image['id']], [host])

    def fan_out() -> None:
        result = api.precache(ctxt, [image['id']], hosts)
        statuses = {r[image['id']]['status'] for r in result.values()}
        assert statuses == {'cached'}, result

    steps = {
        'sequential downloads': sequential_downloads,
        'sequential pre-cache': sequential_precache,
        'fan-out pre-cache': fan_out,
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    try:
        deadline = time.monotonic() + 60
        for host in hosts:
            while True:
                try:
                    api.ping(ctxt, host=host)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        for run in range(args.runs):
            for name, step in steps.items():
                empty_caches()
                started = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - started)
            print(
                'run %d: %s'
                % (
                    run + 1,
                    ', '.join(
                        '%s %.2f s' % (name, t[-1])
                        for name, t in times.items()
                    ),
                )
            )
        best = {name: min(t) for name, t in times.items()}
        print(
            '\n%d MiB image on %d hosts (%d MiB from Glance per step), best '
            'of %d:'
            % (
                args.size_mib,
                len(hosts),
                args.size_mib * len(hosts),
                args.runs,
            )  # fmt: skip
        )
        for name, secs in best.items():
            print(
                '  %-24s %6.2f s  %6.0f MB/s aggregate'
                % (name, secs, size * len(hosts) / 1e6 / secs)
            )
        print(
            '\nfan-out speed-up: %.2f x sequential downloads, %.2f x '
            'sequential pre-cache'
            % (
                best['sequential downloads'] / best['fan-out pre-cache'],
                best['sequential pre-cache'] / best['fan-out pre-cache'],
            )
        )
    finally:
        transport.cleanup()
        for proc, _ in agents.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in agents.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        images.delete(ctxt, image['id'])
        shutil.rmtree(workdir, ignore_errors=True)
        amqp_url = RABBIT_URL.replace('rabbit://', 'amqp://', 1)
        with (
            contextlib.suppress(Exception),
            kombu.Connection(amqp_url) as connection,
        ):
            channel = connection.channel()
            for name in [topic] + ['%s.%s' % (topic, h) for h in hosts]:
                channel.queue_delete(name)
    return 0


if __name__ == '__main__':
    sys.exit(main())
