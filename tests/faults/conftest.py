"""The fault suite's fixtures, its clean-up guarantees and its summary table.

The suite runs against a deployment of its own (never the shared one: it
kills Glance servers and alters stored bytes), agents on the machine's
RabbitMQ under a topic of its own, a private RabbitMQ node when the broker
must die, and small filesystems it mounts itself. Everything it starts or
mounts is released at the end, also when a test fails; what a killed
session left behind (agents, private brokers, mounts, deployments) is
removed by the next session. ``pytest_terminal_summary`` prints the
figures every scenario collected (``report.REPORT``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import time

import pytest

from tests.faults import helpers
from tests.faults import report as report_mod
from tests.functional.agent_fixtures import PrivateRabbit
from tests.functional.deployment_fixture import PRIVATE_PREFIX
from tests.functional.deployment_fixture import pid_alive
from tests.functional.deployment_fixture import (
    remove_stale_private_deployments,
)
from tests.functional.rabbit_cluster import RabbitCluster
from tools.testenv import Deployment

OWN_PREFIX = helpers.OWN_PREFIX
OWNER_FILE = 'faults-owner'
DEFAULT_TEST_TIMEOUT = 240


# -- the summary table --------------------------------------------------------

_NODE_SCENARIO: dict[str, str] = {}


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'scenario(name): the summary-table row a test reports to'
    )
    config.addinivalue_line(
        'markers', 'test_timeout(seconds): fail a test that runs longer'
    )
    # tox and CI stop a run with SIGTERM: unwind like Ctrl-C, so that the
    # fixtures stop agents, brokers and deployments and unmount.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

        def interrupt(signum, frame):
            raise KeyboardInterrupt('SIGTERM')

        signal.signal(signal.SIGTERM, interrupt)


@pytest.fixture
def row(request) -> report_mod.Row:
    """The summary-table row of this test's scenario."""
    marker = request.node.get_closest_marker('scenario')
    name = marker.args[0] if marker else request.node.name
    _NODE_SCENARIO[request.node.nodeid] = name
    return report_mod.REPORT.row(name)


def pytest_runtest_logreport(report):
    name = _NODE_SCENARIO.get(report.nodeid)
    if name is None:
        return
    row = report_mod.REPORT.row(name)
    row.seconds += report.duration
    if report.when == 'call' or report.outcome != 'passed':
        if hasattr(report, 'wasxfail'):
            outcome = 'xpassed' if report.passed else 'xfailed'
        else:
            outcome = report.outcome
        ranks = ['', 'passed', 'skipped', 'xfailed', 'xpassed', 'failed']
        if ranks.index(outcome) > ranks.index(row.outcome):
            row.outcome = outcome


def pytest_terminal_summary(terminalreporter):
    if not report_mod.REPORT.rows:
        return
    terminalreporter.section('image-agent fault suite: summary')
    for line in report_mod.REPORT.lines():
        terminalreporter.write_line(line)


# -- a watchdog: no test hangs the suite --------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker('test_timeout')
    seconds = marker.args[0] if marker else DEFAULT_TEST_TIMEOUT

    def expired(signum, frame):
        raise TimeoutError(
            '%s ran longer than %d s (watchdog)' % (item.nodeid, seconds)
        )

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return (yield)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- leftovers of killed sessions, and of this one ----------------------------


def _mount_points() -> list[str]:
    with open('/proc/self/mounts') as f:
        return [
            line.split()[1].encode().decode('unicode_escape')
            for line in f
            if line.strip()
        ]


_OWN_PATH = re.compile(
    re.escape(os.path.join(tempfile.gettempdir(), OWN_PREFIX)) + r'(\d+)-'
)


def _our_brokers() -> dict[int, tuple[int, str]]:
    """Private RabbitMQ processes of this suite: pid -> (owner pid, dir)."""
    found = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/environ' % name, 'rb') as f:
                env = f.read().split(b'\0')
        except OSError:
            continue
        for var in env:
            if not var.startswith(b'RABBITMQ_MNESIA_BASE='):
                continue
            base = os.path.dirname(var.split(b'=', 1)[1].decode())
            try:
                with open(os.path.join(base, OWNER_FILE)) as f:
                    owner = int(f.read().strip())
            except (OSError, ValueError):
                continue
            found[int(name)] = (owner, base)
    return found


def remove_leftovers(only_dead: bool = True) -> list[str]:
    """Unmount, kill and remove what sessions of this suite left behind.

    ``only_dead``: only what belongs to pytest processes that are gone;
    otherwise this session's own too (its last line of defence).
    """
    me = os.getpid()
    removed = []

    def stale(owner: int) -> bool:
        return (not only_dead and owner == me) or (
            owner != me and not pid_alive(owner)
        )

    for path in _mount_points():
        match = _OWN_PATH.match(path)
        if match and stale(int(match.group(1))):
            helpers.unmount(path, remove=False)
            removed.append('mount %s' % path)
    for pid, (owner, base) in _our_brokers().items():
        if stale(owner):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            removed.append('broker process %d (%s)' % (pid, base))
            shutil.rmtree(base, ignore_errors=True)
    base = tempfile.gettempdir()
    mounts = set(_mount_points())
    for name in os.listdir(base):
        match = re.fullmatch(re.escape(OWN_PREFIX) + r'(\d+)-.*', name)
        path = os.path.join(base, name)
        if match and stale(int(match.group(1))) and path not in mounts:
            shutil.rmtree(path, ignore_errors=True)
    return removed


@pytest.fixture(scope='session', autouse=True)
def _no_leftovers():
    """Clean what killed sessions left; check this one leaves nothing."""
    remove_leftovers(only_dead=True)
    yield
    left = remove_leftovers(only_dead=False)
    if left:
        report_mod.REPORT.row('clean-up').note(
            'removed at the end: ' + ', '.join(left)
        )


# -- the deployment -----------------------------------------------------------


@pytest.fixture(scope='session')
def deployment():
    """A deployment of this session only, destroyed at the end.

    Never the shared one (``IMAGE_AGENT_TESTENV_REUSE`` is ignored here):
    these tests kill its servers and alter its stores.
    """
    remove_stale_private_deployments()
    dep = Deployment(PRIVATE_PREFIX + str(os.getpid()))
    dep.stop()
    try:
        yield dep.start()
    finally:
        dep.destroy()


@pytest.fixture
def glances_restored(deployment):
    """Both Glance servers run again after the test, whatever it did."""
    yield deployment
    for index in (0, 1):
        deployment.start_glance(index)


# -- a private RabbitMQ node --------------------------------------------------


class FaultsRabbit(PrivateRabbit):
    """A private node that can be crashed and restarted with its data.

    Its directory names this pytest process (``OWNER_FILE``), so that a node
    left by a killed session is found and killed by the next one.
    """

    def __init__(self) -> None:
        super().__init__()
        with open(os.path.join(self.dir, OWNER_FILE), 'w') as f:
            f.write(str(os.getpid()))

    def broker_pid(self) -> int | None:
        try:
            with open(self.env['RABBITMQ_PID_FILE']) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def crash(self) -> None:
        """SIGKILL the node (its Erlang VM) and wait until it is gone."""
        pid = self.broker_pid()
        assert pid, 'the private broker has no pid file'
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pid_alive(pid):
            assert time.monotonic() < deadline, 'the broker did not die'
            time.sleep(0.05)
        # epmd may still list the node for a moment.
        time.sleep(0.5)


@pytest.fixture
def faults_rabbit():
    if not shutil.which('rabbitmq-server') or not shutil.which('rabbitmqctl'):
        pytest.skip('rabbitmq-server is not installed here')
    rabbit = FaultsRabbit()
    try:
        yield rabbit.start()
    finally:
        pid = rabbit.broker_pid()
        rabbit.stop()
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def faults_rabbit_cluster():
    """Three private nodes clustered (``FaultsRabbit``: found if left)."""
    if not shutil.which('rabbitmq-server') or not shutil.which('rabbitmqctl'):
        pytest.skip('rabbitmq-server is not installed here')
    cluster = RabbitCluster(3, node_class=FaultsRabbit)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
