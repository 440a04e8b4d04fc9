"""Helpers of the fault tests: outcomes, files, processes, mounts.

``Background``, ``wait_until`` and the temporary-file helpers are
``tests.functional.background``'s, named here too for the fault tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import stat
import subprocess
import tempfile
import threading

import oslo_messaging as messaging

from image_agent import exception
from tests.functional.background import Background as Background
from tests.functional.background import (
    download_under_way as download_under_way,
)
from tests.functional.background import largest_temp_file as largest_temp_file
from tests.functional.background import temp_files as temp_files
from tests.functional.background import wait_until as wait_until

MiB = 1024 * 1024
#: Everything this suite creates on the machine is named after this prefix
#: and the pid of the pytest process: a dead pid means a stale leftover.
OWN_PREFIX = 'image-agent-faults-'


# -- outcomes ---------------------------------------------------------------


def is_typed(error: BaseException) -> bool:
    """An error of image_agent's own, raised as itself on the caller's side.

    ``AgentError`` is the agent's catch-all for unexpected failures: not a
    typed answer to bad input or a fault.
    """
    return isinstance(error, exception.ImageAgentException) and not isinstance(
        error, (exception.AgentError, messaging.RemoteError)
    )


def describe(error: BaseException) -> str:
    """Class and message (without the remote traceback), cut short."""
    name = type(error).__name__.removesuffix('_Remote')
    text = getattr(error, 'msg', None) or str(error)
    return '%s: %s' % (name, text.strip().split('\n')[0][:300])


# -- files ------------------------------------------------------------------


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def file_sha512(path: str) -> str:
    digest = hashlib.sha512()
    with open(path, 'rb') as f:
        while chunk := f.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def tree(root: str) -> dict[str, tuple]:
    """Every entry under ``root`` (not following links) with what it holds.

    Files by mode, size and sha512, links by target, directories and
    special files by mode: two equal trees had nothing written to them.
    """
    found: dict[str, tuple] = {}
    for directory, dirnames, names in os.walk(root):
        for name in dirnames + names:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                found[path] = ('link', os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                found[path] = (
                    'file',
                    stat.S_IMODE(st.st_mode),
                    st.st_size,
                    file_sha512(path),
                )
            else:
                found[path] = ('other', st.st_mode)
    return found


def fill_filesystem(path: str, block: int = 256 * 1024) -> int:
    """Write ``path`` until the filesystem is full; return bytes written."""
    written = 0
    data = b'\0' * block
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                n = os.write(fd, data)
            except OSError:
                if block <= 512:
                    return written
                block //= 4
                data = data[:block]
                continue
            if n == 0:
                return written
            written += n
    finally:
        os.close(fd)


def own_tempdir(kind: str) -> str:
    """A new directory of this session (removed at the latest by the next)."""
    prefix = '%s%d-%s-' % (OWN_PREFIX, os.getpid(), kind)
    return tempfile.mkdtemp(prefix=prefix)


def mount_tmpfs(size_mib: int) -> str:
    """Mount a tmpfs of ``size_mib`` MiB on a new directory of ours."""
    path = own_tempdir('fs')
    subprocess.run(
        ['mount', '-t', 'tmpfs', '-o', 'size=%dm,mode=0755' % size_mib]
        + ['image-agent-faults', path],
        check=True,
        timeout=30,
    )
    return path


def unmount(path: str, remove: bool = True) -> None:
    """Unmount (lazily if busy) and remove the mount point."""
    for args in (['umount', path], ['umount', '-l', path]):
        result = subprocess.run(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
        if result.returncode == 0:
            break
    if remove:
        with contextlib.suppress(OSError):
            os.rmdir(path)


# -- processes --------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    raise AssertionError('no VmRSS for %d' % pid)


def kill_agent(agent) -> None:
    """SIGKILL an agent's whole process group (master and worker)."""
    agent.kill()


def restart_agent(agent):
    """Start a stopped agent again with the same config, a fresh log.

    The old log is kept next to it (``agent.log.<n>``), so that waiting for
    "listening on" waits for this start.
    """
    n = 1
    while os.path.exists('%s.%d' % (agent.log, n)):
        n += 1
    os.rename(agent.log, '%s.%d' % (agent.log, n))
    return agent.start()


# -- a Glance that never answers ---------------------------------------------


class HoldingServer:
    """A Glance that never answers: connections are held, then dropped.

    Armed with ``hold(n)``, it keeps the next ``n`` connections open without
    a word and drops them all at once when the ``n``-th arrives; otherwise
    it drops every connection as soon as it is made.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.url = 'http://127.0.0.1:%d' % self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._to_hold = 0
        self.connections = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self, n: int) -> None:
        with self._lock:
            self._to_hold = n

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                if self._to_hold:
                    self._held.append(conn)
                    if len(self._held) < self._to_hold:
                        continue
                    dropped, self._held, self._to_hold = self._held, [], 0
                else:
                    dropped = [conn]
            for sock in dropped:
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._held:
                sock.close()
            self._held = []
