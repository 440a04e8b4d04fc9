"""Fixtures for the agent's functional tests: real agents over real RabbitMQ.

A plugin of the suites that use the deployment (``pytest_plugins`` in
tests/conftest.py): a test names the fixtures it needs.

Every agent is a real ``image-agent --config-file ...`` process (a master
and its worker, in their own process group) with its own config file,
roots, host name and log, talking to the real deployment's Keystone and
Glance. Each pytest session uses its own RPC topic, so sessions sharing the
broker never serve each other's calls. Every process started here is killed
by process group at the end of the test module that started it (or of the
session, for the ones made with ``keep=True``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import kombu
import oslo_messaging as messaging
import pytest

from image_agent import conf
from image_agent import rpc
from image_agent import rpcapi
from tests.functional.deployment_fixture import pid_alive
from tools.testenv import util as testenv_util
from tools.testenv.relay import Relay

RABBIT_URL = os.environ.get(
    'IMAGE_AGENT_TEST_TRANSPORT_URL', 'rabbit://guest:guest@127.0.0.1:5672/'
)
SERVICE_USER = 'image-agent'
READY_TIMEOUT = 30.0


def agent_command() -> list[str]:
    """The installed console script, or the module when it is missing."""
    script = os.path.join(os.path.dirname(sys.executable), 'image-agent')
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, '-m', 'image_agent.cmd.agent']


def rabbit_alive(url: str) -> bool:
    parsed = messaging.TransportURL.parse(conf.CONF, url)
    host = parsed.hosts[0]
    with (
        contextlib.suppress(OSError),
        socket.create_connection(
            (host.hostname, host.port or 5672), timeout=2
        ),
    ):
        return True
    return False


class AgentProcess:
    """One ``image-agent`` process group with its own directory."""

    def __init__(
        self,
        base: str,
        host: str,
        topic: str,
        transport_url: str,
        deployment,
        glance_urls: list[str] | None = None,
        options: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.host = host
        self.topic = topic
        self.transport_url = transport_url
        self.dir = os.path.join(base, host)
        self.root = os.path.join(self.dir, 'root')
        self.log = os.path.join(self.dir, 'agent.log')
        self.config_file = os.path.join(self.dir, 'image-agent.conf')
        os.makedirs(self.root)
        sections = {
            'DEFAULT': {
                'transport_url': transport_url,
                'host': host,
                'auth_strategy': 'keystone',
                'graceful_shutdown_timeout': '30',
                'debug': 'false',
            },
            'agent': {
                'topic': topic,
                'download_roots': self.root,
                'drain_timeout': '20',
            },
            'glance': {
                'api_servers': ','.join(glance_urls or deployment.glance_urls),
                'num_retries': '1',
                'retry_backoff_base': '0.05',
                'auth_type': 'password',
                'auth_url': deployment.keystone_url,
                'username': SERVICE_USER,
                'password': deployment.password(SERVICE_USER),
                'project_name': 'service',
                'user_domain_name': 'Default',
                'project_domain_name': 'Default',
            },
        }
        for section, values in (options or {}).items():
            sections.setdefault(section, {}).update(values)
        with open(self.config_file, 'w') as f:
            for section, values in sections.items():
                f.write('[%s]\n' % section)
                for key, value in values.items():
                    f.write('%s = %s\n' % (key, value))
                f.write('\n')
        self.popen: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> AgentProcess:
        """Start the agent; ``wait``: until it listens (else call
        ``wait_for_log('listening on')`` later, to start many at once)."""
        with open(self.log, 'ab') as log:
            self.popen = subprocess.Popen(
                [*agent_command(), '--config-file', self.config_file],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if wait:
            self.wait_for_log('listening on')
        return self

    def log_text(self) -> str:
        with open(self.log, errors='replace') as f:
            return f.read()

    def tail(self, size: int = 3000) -> str:
        return self.log_text()[-size:]

    def wait_for_log(self, text: str, count: int = 1, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while self.log_text().count(text) < count:
            if self.popen.poll() is not None:
                raise AssertionError(
                    'image-agent %s exited (%s):\n%s'
                    % (
                        self.host,
                        self.popen.returncode,
                        self.log_text()[-3000:],
                    )
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    'image-agent %s: no %r in its log after %.0f s:\n%s'
                    % (self.host, text, timeout, self.tail())
                )
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        os.kill(self.popen.pid, signum)

    def terminate(self) -> None:
        """SIGTERM the master (a graceful stop), without waiting."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGTERM)

    def kill(self, wait: bool = True) -> None:
        """SIGKILL the whole process group (master and worker)."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if wait:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(10)

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM the master; SIGKILL the whole group if it lingers."""
        if self.popen is None:
            return None
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        return self.popen.returncode


@pytest.fixture(scope='session')
def rabbit_url() -> str:
    if not rabbit_alive(RABBIT_URL):
        pytest.fail('RabbitMQ does not answer at %s' % RABBIT_URL)
    return RABBIT_URL


@pytest.fixture(scope='session')
def topic() -> str:
    """An RPC topic of this session only."""
    return 'image-agent-test-%s' % uuid.uuid4().hex[:8]


AGENTS_DIR_PREFIX = 'image-agent-ft-'


def remove_stale_agents() -> None:
    """Kill agents left by a test session that was killed itself.

    Their directories are named after the pytest process that made them;
    an agent whose config file lies in the directory of a dead session is
    killed (its process group) and the directory removed.
    """
    base = tempfile.gettempdir()
    stale = re.compile(
        re.escape(os.path.join(base, AGENTS_DIR_PREFIX)) + r'(\d+)-'
    )
    for pid_dir in os.listdir('/proc'):
        if not pid_dir.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid_dir, 'rb') as f:
                cmdline = f.read().decode(errors='replace')
        except OSError:
            continue
        match = stale.search(cmdline)
        orphan = match and not pid_alive(int(match.group(1)))
        if orphan and 'image-agent' in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(int(pid_dir)), signal.SIGKILL)
    for name in os.listdir(base):
        match = re.fullmatch(re.escape(AGENTS_DIR_PREFIX) + r'(\d+)-.*', name)
        if match and not pid_alive(int(match.group(1))):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


@pytest.fixture(scope='session')
def agents_dir():
    remove_stale_agents()
    path = tempfile.mkdtemp(prefix='%s%d-' % (AGENTS_DIR_PREFIX, os.getpid()))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope='session')
def _all_agents():
    started: list[AgentProcess] = []
    yield started
    stop_all(started)
    delete_queues(started)


def stop_all(agents: list[AgentProcess]) -> None:
    """SIGKILL them all at once, then reap each.

    Not a graceful stop: the tests that need one make it themselves, and
    an agent's graceful stop took up to 10 s here, once per module.
    """
    for agent in agents:
        agent.kill(wait=False)
    for agent in agents:
        agent.kill()


# Agents started for the module running now (``make(keep=False)``).
_MODULE_AGENTS: list[AgentProcess] = []


@pytest.fixture(scope='module', autouse=True)
def _agents_end_with_their_module():
    """The agents a test module started stop when the module ends.

    They serve the session's topic: left running, they would answer the
    next modules' calls made without a host (with the Glance relays of
    their own module long closed), so a module's outcome would depend on
    which ran before it.
    """
    yield
    stop_all(_MODULE_AGENTS)
    _MODULE_AGENTS.clear()


def delete_queues(agents: list[AgentProcess]) -> None:
    """Remove the RPC queues our agents declared on the shared broker."""
    by_url: dict[str, set[str]] = {}
    for agent in agents:
        names = by_url.setdefault(agent.transport_url, set())
        names.update({agent.topic, '%s.%s' % (agent.topic, agent.host)})
    for url, names in by_url.items():
        amqp_url = url.replace('rabbit://', 'amqp://', 1)
        with (
            contextlib.suppress(Exception),
            kombu.Connection(amqp_url, connect_timeout=2) as conn,
        ):
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            for name in names:
                with contextlib.suppress(Exception):
                    channel.queue_delete(name)


@pytest.fixture(scope='session')
def agent_factory(deployment, rabbit_url, topic, agents_dir, _all_agents):
    """make(host=None, **options): start an agent; stopped at the end of
    its test module, or of the session with ``keep=True``."""

    def make(
        host: str | None = None,
        topic_: str | None = None,
        transport_url: str | None = None,
        glance_urls: list[str] | None = None,
        options: dict | None = None,
        start: bool = True,
        keep: bool = False,
    ) -> AgentProcess:
        agent = AgentProcess(
            agents_dir,
            host or 'agent-%s' % uuid.uuid4().hex[:6],
            topic_ or topic,
            transport_url or rabbit_url,
            deployment,
            glance_urls=glance_urls,
            options=options,
        )
        _all_agents.append(agent)
        if not keep:
            _MODULE_AGENTS.append(agent)
        return agent.start() if start else agent

    return make


@pytest.fixture(scope='session')
def agent(agent_factory) -> AgentProcess:
    """The agent most tests talk to (host ``agent-a``)."""
    return agent_factory('agent-a', keep=True)


@pytest.fixture(scope='session')
def transport(rabbit_url):
    transport = rpc.get_transport(conf.CONF, url=rabbit_url)
    yield transport
    transport.cleanup()


@pytest.fixture(scope='session')
def api(transport, topic) -> rpcapi.ImageAgentAPI:
    """The client library on this session's topic, as a service uses it."""
    return rpcapi.ImageAgentAPI(transport=transport, topic=topic, timeout=30)


# -- a slow Glance --------------------------------------------------------


@pytest.fixture
def slow_glance(deployment):
    """slow_glance(rate): a URL serving Glance's answers at ``rate`` B/s."""
    relays: list[Relay] = []

    def make(rate: int) -> str:
        relays.append(Relay.to(deployment.glance_urls[0], rate=rate))
        return relays[-1].url

    yield make
    for relay in relays:
        relay.close()


# -- a private RabbitMQ node ----------------------------------------------


class PrivateRabbit:
    """A RabbitMQ node of our own on a free port, to stop and start freely.

    The machine's broker is shared with other test sessions; stopping it
    would break them. This node has its own name, ports and data.
    """

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix='image-agent-rmq-')
        self.port = testenv_util.free_port()
        self.node = 'ia-test-%d@localhost' % self.port
        self.url = 'rabbit://guest:guest@127.0.0.1:%d/' % self.port
        with open(os.path.join(self.dir, 'rabbitmq.conf'), 'w') as f:
            f.write('listeners.tcp.local = 127.0.0.1:%d\n' % self.port)
            f.write('loopback_users = none\n')
        with open(os.path.join(self.dir, 'enabled_plugins'), 'w') as f:
            f.write('[].\n')
        for name in ('', 'rabbitmq.conf', 'enabled_plugins'):
            shutil.chown(os.path.join(self.dir, name), 'rabbitmq', 'rabbitmq')
        self.env = dict(
            os.environ,
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(testenv_util.free_port()),
            RABBITMQ_CONFIG_FILE=os.path.join(self.dir, 'rabbitmq'),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(
                self.dir, 'enabled_plugins'
            ),
            RABBITMQ_MNESIA_BASE=os.path.join(self.dir, 'mnesia'),
            RABBITMQ_LOG_BASE=os.path.join(self.dir, 'log'),
            RABBITMQ_PID_FILE=os.path.join(self.dir, 'pid'),
        )

    def ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            ['rabbitmqctl', '-q', '-n', self.node, *args],
            env=self.env,
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def ctl_output(self, *args: str, timeout: float = 60) -> str:
        return subprocess.run(
            ['rabbitmqctl', '-q', '-n', self.node, *args],
            env=self.env,
            check=True,
            timeout=timeout,
            capture_output=True,
            text=True,
        ).stdout

    def start(self, wait: bool = True) -> PrivateRabbit:
        """Start the node; ``wait``: until it serves (else ``wait_up``)."""
        subprocess.run(
            ['rabbitmq-server', '-detached'],
            env=self.env,
            cwd=self.dir,
            check=True,
            timeout=30,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self.wait_up() if wait else self

    def wait_up(self) -> PrivateRabbit:
        deadline = time.monotonic() + 60
        while True:
            try:
                self.ctl('await_startup', timeout=30)
                return self
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        try:
            self.ctl('stop', timeout=60)
        except Exception:
            # The node we started does not answer: kill it by its pid file.
            pid_file = self.env['RABBITMQ_PID_FILE']
            with contextlib.suppress(OSError, ValueError), open(pid_file) as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_rabbit():
    if not shutil.which('rabbitmq-server') or not shutil.which('rabbitmqctl'):
        pytest.skip('rabbitmq-server is not installed here')
    rabbit = PrivateRabbit()
    try:
        yield rabbit.start()
    finally:
        rabbit.stop()
