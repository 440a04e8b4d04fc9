"""The quickstart's ``image-agent`` process: start, find, stop.

The agent runs in its own session (its pid is its process group: the
oslo.service master and its worker), with its pid in ``<state
dir>/image-agent.pid``. A process is ours when its command line names our
configuration file (oslo.service's process titles keep it for the master,
and they overwrite the memory ``/proc/<pid>/environ`` shows, so an
environment tag is not enough) or it carries our tag in its environment.
``stop`` finds the agent by its pid file or by a scan, so a lost pid file
leaves no agent behind, and a pid reused by another process is never
signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from tools.quickstart import venv as venvmod
from tools.quickstart.layout import Layout
from tools.testenv.util import DeploymentError
from tools.testenv.util import group_members
from tools.testenv.util import owned_by
from tools.testenv.util import spawn
from tools.testenv.util import tail

READY_TIMEOUT = 60.0
READY_LINE = 'listening on'
# Above [DEFAULT] graceful_shutdown_timeout of the quickstart's config.
STOP_GRACE = 25.0


def is_ours(pid: int, layout: Layout) -> bool:
    """Whether ``pid`` is a live agent process of this state dir."""
    stat = _stat(pid)
    if stat is None or stat[0] in ('Z', 'X'):
        return False
    return layout.config in _command(pid) or owned_by(pid, layout.owner)


def our_processes(layout: Layout) -> list[int]:
    me = os.getpid()
    return [
        int(n)
        for n in os.listdir('/proc')
        if n.isdigit() and int(n) != me and is_ours(int(n), layout)
    ]


def running_pid(layout: Layout) -> int | None:
    """The pid of the agent of this state dir, when it runs.

    Read from the pid file, or found again (and written back) when the
    file was lost: the master is the leader of its own process group.
    """
    try:
        with open(layout.pid_file) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        pid = None
    if pid and is_ours(pid, layout):
        return pid
    leaders = [p for p in our_processes(layout) if _group(p) == p]
    if len(leaders) != 1:
        return None
    with open(layout.pid_file, 'w') as f:
        f.write('%d\n' % leaders[0])
    return leaders[0]


def _log_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _log_since(path: str, offset: int) -> str:
    try:
        with open(path, 'rb') as f:
            f.seek(offset)
            return f.read().decode('utf-8', 'replace')
    except OSError:
        return ''


def start(layout: Layout, venv: str) -> int:
    """Start the agent in the background; wait until it listens."""
    offset = _log_size(layout.agent_log)
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    popen = spawn(
        [
            venvmod.bin_path(venv, 'image-agent'),
            '--config-file',
            layout.config,
            '--config-dir',
            layout.config_dir,
        ],
        layout.console_log,
        env,
        layout.state_dir,
        layout.owner,
    )
    with open(layout.pid_file, 'w') as f:
        f.write('%d\n' % popen.pid)
    deadline = time.monotonic() + READY_TIMEOUT
    while READY_LINE not in _log_since(layout.agent_log, offset):
        if popen.poll() is not None or time.monotonic() > deadline:
            why = (
                'exited with status %s' % popen.returncode
                if popen.returncode is not None
                else 'did not start listening in %.0f s' % READY_TIMEOUT
            )
            stop(layout)
            raise DeploymentError(
                'image-agent %s\n%s\n%s'
                % (why, tail(layout.console_log), tail(layout.agent_log))
            )
        time.sleep(0.1)
    return popen.pid


def stop(layout: Layout) -> list[int]:
    """SIGTERM the agent's process groups, SIGKILL what lingers.

    Returns the process groups that were signalled.
    """
    groups = set()
    pid = running_pid(layout)
    if pid:
        groups.add(pid)
    for pid in our_processes(layout):
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    groups.discard(os.getpgid(0))  # never our own group
    _signal(groups, signal.SIGTERM)
    if not _wait_gone(groups, STOP_GRACE):
        _signal(groups, signal.SIGKILL)
        _wait_gone(groups, 5)
    with contextlib.suppress(FileNotFoundError):
        os.remove(layout.pid_file)
    return sorted(groups)


def _signal(groups, signum: int) -> None:
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)


def _wait_gone(groups, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(group_members(g) for g in groups):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# The agent's RPC queues stay on the broker after it stopped (they are not
# auto-delete): calls sent meanwhile would be served by the next start.
_DELETE_QUEUES = """
import sys, kombu
url = sys.argv[1].replace('rabbit://', 'amqp://', 1)
with kombu.Connection(url, connect_timeout=3) as conn:
    conn.ensure_connection(max_retries=1)
    channel = conn.channel()
    for name in sys.argv[2:]:
        channel.queue_delete(name)
"""


def delete_queues(layout: Layout, venv: str, transport_url: str) -> bool:
    """Remove the agent's topic queues from the broker (best effort)."""
    python = venvmod.bin_path(venv, 'python')
    if not os.access(python, os.X_OK):
        return False
    names = [layout.topic, '%s.%s' % (layout.topic, layout.host)]
    try:
        proc = subprocess.run(
            [python, '-c', _DELETE_QUEUES, transport_url, *names],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def leftovers(
    layout: Layout, testenv_owner: str, groups: list[int] = ()
) -> list[str]:
    """``pid command`` of every process of this state dir still alive.

    Ours: tagged for the agent or the test deployment, or in one of the
    agent's process ``groups`` (a worker's title may hide its tag).
    """
    found = []
    for name in os.listdir('/proc'):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        stat = _stat(pid)
        if stat is None or stat[0] in ('Z', 'X'):
            continue
        ours = (
            stat[1] in groups
            or is_ours(pid, layout)
            or owned_by(pid, testenv_owner)
        )
        if ours:
            found.append('%d %s' % (pid, _command(pid)))
    return found


def _command(pid: int) -> str:
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return '?'


def _group(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[1] if stat else None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of ``pid``, None when it is gone."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            fields = f.read().rsplit(b')', 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0].decode(), int(fields[2])
