"""Session fixture: the real Keystone + two Glance deployment (tools.testenv).

A plugin of the suites that use it (``pytest_plugins`` in tests/conftest.py).

By default every pytest session gets its own private deployment (state dir
``/tmp/image-agent-testenv-pytest-<pid>``, its own ports and databases),
started at the first use and destroyed at the end, so two sessions on one
machine never stop each other's servers. Private deployments left behind by
a killed session are removed by the next session.

``IMAGE_AGENT_TESTENV_REUSE=1`` uses the shared deployment instead
(``IMAGE_AGENT_TESTENV_DIR`` or ``/tmp/image-agent-testenv``): reused when it
is running and healthy, started otherwise, and left running at the end (a
rerun then starts in no time). ``IMAGE_AGENT_TESTENV_DIR`` alone picks the
state dir of a deployment that is started fresh and stopped at the end.
"""

from __future__ import annotations

import glob
import os

import pytest

from tools.testenv import Deployment

PRIVATE_PREFIX = '/tmp/image-agent-testenv-pytest-'  # noqa: S108

# One deployment per process even if the fixture is collected twice.
_STARTED: dict[str, Deployment] = {}


def _reuse() -> bool:
    flag = os.environ.get('IMAGE_AGENT_TESTENV_REUSE', '')
    return flag.lower() in ('1', 'true', 'yes')


def pid_alive(pid: int) -> bool:
    """Whether a process of that id exists (ours or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_private_deployments() -> None:
    """Destroy private deployments whose pytest process is gone."""
    for path in glob.glob(PRIVATE_PREFIX + '*'):
        suffix = path[len(PRIVATE_PREFIX) :]
        if suffix.isdigit() and not pid_alive(int(suffix)):
            Deployment(path).destroy()


@pytest.fixture(scope='session')
def deployment():
    """The running deployment (a ``tools.testenv.Deployment``)."""
    if _reuse():
        dep = Deployment()
        yield _STARTED.setdefault(dep.state_dir, dep.start())
        return
    private = not os.environ.get('IMAGE_AGENT_TESTENV_DIR')
    if private:
        remove_stale_private_deployments()
        dep = Deployment(PRIVATE_PREFIX + str(os.getpid()))
    else:
        dep = Deployment()
    if dep.state_dir in _STARTED:
        yield _STARTED[dep.state_dir]
        return
    dep.stop()
    _STARTED[dep.state_dir] = dep
    try:
        yield dep.start()
    finally:
        _STARTED.pop(dep.state_dir, None)
        if private:
            dep.destroy()
        else:
            dep.stop()
