"""What the benchmarks run against: the test deployment, images, agents.

Everything is real and on this machine: Keystone and two Glance servers
from ``tools.testenv`` (a state dir of the benchmark's own, so killing a
Glance here disturbs nobody), the machine's RabbitMQ, ``image-agent``
processes started from the installed console script.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import kombu

from image_agent import conf
from image_agent import context as ia_context
from image_agent import rpc
from image_agent import rpcapi
from image_agent.image import glance
from tools.testenv import Deployment

MiB = 1024 * 1024
RABBIT_URL = os.environ.get(
    'IMAGE_AGENT_BENCH_TRANSPORT_URL', 'rabbit://guest:guest@127.0.0.1:5672/'
)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
STATE_DIR = '/tmp/image-agent-bench-testenv'  # noqa: S108
# More [agent] options of the agents, from IMAGE_AGENT_BENCH_AGENT_OPTIONS
# ("name=value,name=value"), to measure another setting.
AGENT_OPTIONS = dict(
    item.split('=', 1)
    for item in os.environ.get('IMAGE_AGENT_BENCH_AGENT_OPTIONS', '').split(
        ','
    )
    if '=' in item
)
_BLOCK = 16 * MiB
_REPORTED_KIB = '/sys/module/page_reporting/parameters/reported_kib'
_REPORTING_DELAY = 2.2  # seconds; the kernel reports free pages after 2 s


def settle() -> None:
    """Wait until the guest has given the memory freed by the last case
    back to its host, before the next case is timed.

    On a virtual machine whose balloon reports free pages to the host (the
    machines this was written on: virtio-balloon free page reporting, whose
    kernel counts the reported memory in ``reported_kib``), memory freed by
    one case (a 1 GiB file removed) is reported about two seconds later:
    a case that starts meanwhile competes with the reporting for the free
    lists and gets pages the host must back again. The same 1 GiB download
    measured 0.65-0.8 GB/s depending on what ran just before it.
    """
    if not os.path.exists(_REPORTED_KIB):
        return
    time.sleep(_REPORTING_DELAY)
    deadline = time.monotonic() + 10
    last = _reported_kib()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = _reported_kib()
        if now == last:
            return
        last = now


def _reported_kib() -> int:
    with open(_REPORTED_KIB) as f:
        return int(f.read())


class RandomStream(io.RawIOBase):
    """``size`` bytes of a random 16 MiB block repeated, for uploads."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = os.urandom(_BLOCK)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left, _BLOCK)
        buffer[:count] = self.block[:count]
        self.left -= count
        return count


def worker_pid(master: int) -> int | None:
    """The oslo.service worker forked by an agent's master process (by
    any of its threads)."""
    tasks = '/proc/%d/task' % master
    with contextlib.suppress(OSError):
        for task in os.listdir(tasks):
            with open(os.path.join(tasks, task, 'children')) as f:
                children = f.read().split()
            if children:
                return int(children[0])
    return None


def rss_bytes(pid: int) -> int:
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    raise ValueError('no VmRSS for %d' % pid)


_TICK = os.sysconf('SC_CLK_TCK')


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) a process has used, in ms."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / _TICK


class Agent:
    """One ``image-agent`` process with its config, roots and log."""

    def __init__(
        self,
        workdir: str,
        host: str,
        topic: str,
        deployment: Deployment,
        glance_urls: list[str],
        roots: list[str],
    ) -> None:
        self.host = host
        self.topic = topic
        self.dir = os.path.join(workdir, host)
        os.makedirs(self.dir)
        self.log = os.path.join(self.dir, 'agent.log')
        self.config = os.path.join(self.dir, 'image-agent.conf')
        with open(self.config, 'w') as f:
            f.write(
                '[DEFAULT]\n'
                'transport_url = %(url)s\nhost = %(host)s\n'
                'auth_strategy = keystone\n'
                '[agent]\ntopic = %(topic)s\ndownload_roots = %(roots)s\n'
                'max_concurrent_downloads = 4\n%(agent_extra)s'
                '[glance]\napi_servers = %(servers)s\n'
                'num_retries = 3\nretry_backoff_base = 0.05\n'
                # The service credentials: the agent asks Keystone about
                # every caller's token with them.
                'auth_type = password\nauth_url = %(keystone)s\n'
                'username = image-agent\npassword = %(password)s\n'
                'project_name = service\nuser_domain_name = Default\n'
                'project_domain_name = Default\n'
                % {
                    'keystone': deployment.keystone_url,
                    'password': deployment.password('image-agent'),
                    'url': RABBIT_URL,
                    'host': host,
                    'topic': topic,
                    'roots': ','.join(roots),
                    'servers': ','.join(glance_urls),
                    'agent_extra': ''.join(
                        '%s = %s\n' % item for item in AGENT_OPTIONS.items()
                    ),
                }
            )
        self.popen: subprocess.Popen | None = None

    def start(self) -> Agent:
        script = os.path.join(os.path.dirname(sys.executable), 'image-agent')
        # The agent of this checkout: the venv is shared, and its
        # editable install may point at another one.
        path = os.environ.get('PYTHONPATH')
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, (REPO, path))),
        )
        with open(self.log, 'ab') as log:
            self.popen = subprocess.Popen(
                [script, '--config-file', self.config],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        deadline = time.monotonic() + 60
        while 'listening on' not in self.log_text():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    'image-agent %s did not start:\n%s'
                    % (self.host, self.log_text()[-3000:])
                )
            time.sleep(0.05)
        return self

    def log_text(self) -> str:
        with open(self.log, errors='replace') as f:
            return f.read()

    @property
    def worker(self) -> int:
        pid = worker_pid(self.popen.pid)
        if pid is None:
            raise RuntimeError('image-agent %s has no worker' % self.host)
        return pid

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


class Environment:
    """The deployment, the caller's context, images and agents of a run."""

    def __init__(self, workdir: str, tmpfs_dir: str, disk_dir: str) -> None:
        self.workdir = workdir
        self.tmpfs = tmpfs_dir
        self.disk = disk_dir
        self.deployment = Deployment(STATE_DIR)
        self.topic = 'image-agent-bench-%s' % uuid.uuid4().hex[:8]
        self.agents: list[Agent] = []
        self.images: dict[str, dict] = {}
        self.token = ''
        self.context = None
        self.transport = None
        self.api = None
        self.service = None

    def start(self) -> Environment:
        self.deployment.start()
        creds = self.deployment.authenticate('demo')
        self.token = creds['token']
        self.context = ia_context.RequestContext(
            auth_token=creds['token'],
            user_id=creds['user_id'],
            project_id=creds['project_id'],
            roles=creds['roles'],
            service_catalog=creds['catalog_v2'],
            overwrite=False,
        )
        conf.CONF([], project='image-agent', default_config_files=[])
        conf.CONF.set_override(
            'api_servers', self.deployment.glance_urls[:1], 'glance'
        )
        self.service = glance.GlanceImageService()
        self.transport = rpc.get_transport(conf.CONF, url=RABBIT_URL)
        self.api = rpcapi.ImageAgentAPI(
            transport=self.transport, topic=self.topic, timeout=60
        )
        return self

    @property
    def glance_url(self) -> str:
        return self.deployment.glance_urls[0]

    def file_url(self, image_id: str) -> str:
        return '%s/v2/images/%s/file' % (self.glance_url, image_id)

    def upload(self, name: str, size: int) -> dict:
        """An image of ``size`` random bytes (kept as ``images[name]``)."""
        image = self.service.create(
            self.context,
            {
                'name': 'bench-%s' % name,
                'disk_format': 'raw',
                'container_format': 'bare',
            },
            data=io.BufferedReader(RandomStream(size), _BLOCK),
        )
        self.images[name] = image
        return image

    def delete(self, *names: str) -> None:
        """Delete the images ``names`` (uploaded by ``upload``)."""
        for name in names:
            self.service.delete(self.context, self.images.pop(name)['id'])

    def agent(self, host: str, glance_urls: list[str]) -> Agent:
        agent = Agent(
            self.workdir,
            host,
            self.topic,
            self.deployment,
            glance_urls,
            [self.tmpfs, self.disk],
        )
        self.agents.append(agent)
        agent.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                self.api.ping(self.context, host=host)
                return agent
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        for agent in self.agents:
            agent.stop()
        for image in self.images.values():
            with contextlib.suppress(Exception):
                self.service.delete(self.context, image['id'])
        if self.transport is not None:
            self.transport.cleanup()
        self._delete_queues()
        for path in (self.tmpfs, self.disk):
            shutil.rmtree(path, ignore_errors=True)
        # Nothing of the run is left running (a next run starts it again in
        # seconds: its venv and template databases are kept).
        self.deployment.stop()

    def _delete_queues(self) -> None:
        names = [self.topic] + [
            '%s.%s' % (self.topic, a.host) for a in self.agents
        ]
        amqp_url = RABBIT_URL.replace('rabbit://', 'amqp://', 1)
        with contextlib.suppress(Exception), kombu.Connection(amqp_url) as c:
            channel = c.channel()
            for name in names:
                with contextlib.suppress(Exception):
                    channel.queue_delete(name)
