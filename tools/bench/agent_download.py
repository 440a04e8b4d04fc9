"""One image downloaded through the agent vs plain curl, same Glance, same run.

    python -m tools.bench.agent_download [--size-mib 1024] [--runs 3]

Starts (or reuses) a test deployment, uploads an image of random bytes,
starts one ``image-agent`` on the machine's RabbitMQ and then alternates:

* ``agent``: ``ImageAgentAPI.download`` to a file under the agent's root
  (the agent streams from Glance, verifies sha512, fsyncs and renames);
* ``curl -> file``: ``curl -o`` of ``/v2/images/<id>/file`` with the same
  token, then an fsync of the file (``sync FILE``), so both end on disk;
* ``curl -> file (+ sha512sum, fsync)``: the same work as the agent by
  hand: fetch, hash, make durable;
* ``curl -> /dev/null``: the wire speed of Glance itself.

Prints every run and the medians in MB/s (10^6 bytes per second).
"""

import argparse
import contextlib
import io
import os
import shutil
import signal
import statistics
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
from tools.testenv import Deployment

RABBIT_URL = 'rabbit://guest:guest@127.0.0.1:5672/'
CHUNK = 16 * 1024 * 1024


class RandomStream(io.RawIOBase):
    """``size`` random bytes, read by glanceclient without a temp file."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = os.urandom(CHUNK)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left, CHUNK)
        buffer[:n] = self.block[:n]
        self.left -= n
        return n


def start_agent(workdir: str, dep: Deployment, topic: str) -> tuple:
    root = os.path.join(workdir, 'root')
    os.makedirs(root)
    config = os.path.join(workdir, 'image-agent.conf')
    with open(config, 'w') as f:
        f.write(
            '[DEFAULT]\ntransport_url = %s\nhost = bench\n'
            'auth_strategy = keystone\n'
            '[agent]\ntopic = %s\ndownload_roots = %s\n'
            '[glance]\napi_servers = %s\n'
            % (RABBIT_URL, topic, root, dep.glance_urls[0])
        )
    log = open(os.path.join(workdir, 'agent.log'), 'wb')  # noqa: SIM115
    bin_dir = os.path.dirname(sys.executable)
    proc = subprocess.Popen(
        [os.path.join(bin_dir, 'image-agent'), '--config-file', config],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, root


def delete_queues(names: list[str]) -> None:
    """Remove the agent's RPC queues from the shared broker."""
    amqp_url = RABBIT_URL.replace('rabbit://', 'amqp://', 1)
    with contextlib.suppress(Exception), kombu.Connection(amqp_url) as conn:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name)


def timed(func) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size-mib', type=int, default=1024)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument(
        '--state-dir', default='/tmp/image-agent-bench-testenv'
    )
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024

    dep = Deployment(args.state_dir).start()
    creds = dep.authenticate('demo')
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
    workdir = tempfile.mkdtemp(prefix='image-agent-bench-')
    topic = 'image-agent-bench-%d' % os.getpid()
    agent, root = start_agent(workdir, dep, topic)
    transport = rpc.get_transport(conf.CONF, url=RABBIT_URL)
    api = rpcapi.ImageAgentAPI(transport=transport, topic=topic, timeout=3)
    url = '%s/v2/images/%s/file' % (dep.glance_urls[0], image['id'])
    curl = ['curl', '-sf', '-H', 'X-Auth-Token: ' + creds['token'], url]
    results: dict[str, list[float]] = {
        'agent -> file (verified, fsync)': [],
        'curl -> file (+ fsync)': [],
        'curl -> file (+ sha512sum, fsync)': [],
        'curl -> /dev/null': [],
    }
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                api.ping(ctxt, host='bench')
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        for run in range(args.runs):
            path = os.path.join(root, 'agent-%d' % run)
            secs = timed(lambda p=path: api.download(ctxt, image['id'], p))
            results['agent -> file (verified, fsync)'].append(secs)
            os.remove(path)

            path = os.path.join(root, 'curl-%d' % run)
            secs = timed(
                lambda p=path: (
                    subprocess.run([*curl, '-o', p], check=True),
                    subprocess.run(['sync', p], check=True),
                )
            )
            results['curl -> file (+ fsync)'].append(secs)
            os.remove(path)

            secs = timed(
                lambda p=path: (
                    subprocess.run([*curl, '-o', p], check=True),
                    subprocess.run(
                        ['sha512sum', p], check=True, stdout=subprocess.DEVNULL
                    ),
                    subprocess.run(['sync', p], check=True),
                )
            )
            results['curl -> file (+ sha512sum, fsync)'].append(secs)
            os.remove(path)

            secs = timed(
                lambda: subprocess.run([*curl, '-o', '/dev/null'], check=True)
            )
            results['curl -> /dev/null'].append(secs)
            print(
                'run %d: %s'
                % (
                    run + 1,
                    ', '.join(
                        '%s %.0f MB/s' % (name, size / 1e6 / times[-1])
                        for name, times in results.items()
                    ),
                )
            )
        print('\n%d MiB image, %d runs, medians:' % (args.size_mib, args.runs))
        for name, times in results.items():
            median = statistics.median(times)
            print(
                '  %-36s %6.2f s  %6.0f MB/s'
                % (name, median, size / 1e6 / median)
            )
    finally:
        transport.cleanup()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(agent.pid, signal.SIGTERM)
        agent.wait(30)
        images.delete(ctxt, image['id'])
        shutil.rmtree(workdir, ignore_errors=True)
        delete_queues([topic, topic + '.bench'])
    return 0


if __name__ == '__main__':
    sys.exit(main())
