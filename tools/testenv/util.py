"""Small stdlib helpers shared by the test deployment modules.

Progress printing, free ports, JSON over urllib, waiting with a deadline,
and starting/stopping server process groups that can be recognised again
from another process (through an owner tag, see ``owned_by``).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any
import urllib.error
import urllib.request

#: Environment variable put into every server we start; its value is the
#: owner tag of the state dir, so ``stop`` never kills a process that merely
#: reuses a pid.
MARKER_ENV = 'IMAGE_AGENT_TESTENV_OWNER'


class DeploymentError(RuntimeError):
    """The test deployment could not be set up or is not healthy."""


def progress(msg: str) -> None:
    """Print one progress line (stderr, so ``env`` output stays clean)."""
    print('[testenv] %s' % msg, file=sys.stderr, flush=True)


def free_port(host: str = '127.0.0.1') -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class HTTPResult:
    def __init__(self, status: int, headers: Any, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body.decode('utf-8')) if self.body else None


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict | None = None,
    timeout: float = 30.0,
    data: bytes | None = None,
) -> HTTPResult:
    """One HTTP request; returns status/headers/body for any status code.

    Connection-level failures raise ``OSError`` (``URLError`` is one).
    """
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode('utf-8')
        hdrs.setdefault('Content-Type', 'application/json')
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HTTPResult(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        return HTTPResult(e.code, e.headers, e.read())


def http_ok(url: str, timeout: float = 2.0, method: str = 'GET') -> bool:
    try:
        return 200 <= http(method, url, timeout=timeout).status < 300
    except (OSError, ValueError):
        return False


def wait_for(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    on_fail: Callable[[], str] | None = None,
    interval: float = 0.1,
) -> None:
    """Poll ``check`` until true; raise DeploymentError after ``timeout``.

    ``alive`` lets the wait stop at once when the server process died.
    ``on_fail`` returns extra text (a log tail) for the error message.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if alive is not None and not alive():
            reason = '%s: process exited before it was ready' % what
            break
        if time.monotonic() > deadline:
            reason = '%s: not ready after %.0f s' % (what, timeout)
            break
        time.sleep(interval)
    extra = on_fail() if on_fail else ''
    raise DeploymentError(reason + ('\n' + extra if extra else ''))


def lock_file(f, timeout: float, what: str) -> None:
    """flock ``f`` exclusively, waiting at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise DeploymentError(
                    '%s: still locked by another start/stop after %.0f s'
                    % (what, timeout)
                ) from None
            time.sleep(0.2)


def tail(path: str, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, framed for an error message."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode('utf-8', 'replace')
    except OSError as e:
        return '(no log %s: %s)' % (path, e)
    body = '\n'.join(text.splitlines()[-lines:])
    return '--- last %d lines of %s ---\n%s\n--- end ---' % (lines, path, body)


def run(
    cmd: list[str],
    log: str,
    timeout: float,
    what: str,
    env: dict | None = None,
    cwd: str | None = None,
) -> None:
    """Run a setup command to completion, output appended to ``log``."""
    with open(log, 'ab') as out:
        out.write(('\n$ %s\n' % ' '.join(cmd)).encode())
        out.flush()
        try:
            proc = subprocess.run(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise DeploymentError(
                '%s: timed out after %.0f s\n%s' % (what, timeout, tail(log))
            ) from None
        except OSError as e:
            msg = '%s: cannot run %s: %s' % (what, cmd[0], e)
            raise DeploymentError(msg) from e
    if proc.returncode != 0:
        raise DeploymentError(
            '%s failed (exit %d)\n%s' % (what, proc.returncode, tail(log))
        )


# -- server processes -------------------------------------------------------


def spawn(
    cmd: list[str], log: str, env: dict, cwd: str, owner: str
) -> subprocess.Popen:
    """Start a server in its own session (pgid == pid), output to ``log``."""
    env = dict(env)
    env[MARKER_ENV] = owner
    with open(log, 'ab') as out:
        out.write(('\n$ %s\n' % ' '.join(cmd)).encode())
        out.flush()
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, pgid) of a pid from /proc, or None when it is gone."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            data = f.read().decode('utf-8', 'replace')
    except OSError:
        return None
    fields = data.rsplit(')', 1)[1].split()
    return fields[0], int(fields[2])


def owned_by(pid: int, owner: str) -> bool:
    """True when ``pid`` is a live process that we started for ``owner``.

    ``owner`` is a tag found either in the process environment (marker
    variable) or in its command line: gunicorn's setproctitle rewrites the
    memory /proc/PID/environ shows, so its servers get the tag in ``--name``.
    """
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ('Z', 'X'):
        return False
    tag = owner.encode()
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            if tag in f.read():
                return True
        with open('/proc/%d/environ' % pid, 'rb') as f:
            env = f.read().split(b'\0')
    except OSError:
        return False
    return ('%s=%s' % (MARKER_ENV, owner)).encode() in env


def owned_processes(owner: str) -> list[int]:
    """Every live process started for ``owner`` (except this one)."""
    me = os.getpid()
    return [
        int(n)
        for n in os.listdir('/proc')
        if n.isdigit() and int(n) != me and owned_by(int(n), owner)
    ]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        stat = _proc_stat(int(name))
        if stat and stat[1] == pgid and stat[0] not in ('Z', 'X'):
            members.append(int(name))
    return members


def kill_group(
    pgid: int,
    owner: str,
    grace: float = 10.0,
    popen: subprocess.Popen | None = None,
) -> None:
    """SIGTERM the process group we started, SIGKILL what is left later."""
    kill_groups([pgid], owner, grace, [popen] if popen else [])


def kill_groups(
    pgids: Iterable[int],
    owner: str,
    grace: float = 10.0,
    popens: Iterable[subprocess.Popen] = (),
) -> None:
    """Stop several process groups at once: SIGTERM all, wait up to
    ``grace`` s, SIGKILL what is left (``grace`` 0: SIGKILL at once).

    Only groups whose leader (or a member) still carries our ``owner`` tag,
    or whose Popen we hold, are touched: a recycled pid is left alone.
    """
    popens = list(popens)
    ours = {p.pid for p in popens}
    targets = [
        g
        for g in set(pgids)
        if g
        and (
            g in ours
            or owned_by(g, owner)
            or any(owned_by(p, owner) for p in group_members(g))
        )
    ]
    if not targets:
        return
    if grace > 0:
        for g in targets:
            _signal_group(g, signal.SIGTERM)
        if _wait_groups_gone(targets, grace, popens):
            return
    for g in targets:
        _signal_group(g, signal.SIGKILL)
    _wait_groups_gone(targets, 5, popens)


def _wait_groups_gone(
    pgids: list[int], timeout: float, popens: list[subprocess.Popen]
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        for popen in popens:
            popen.poll()  # reap our own children, or they linger as zombies
        if not any(group_members(g) for g in pgids):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
