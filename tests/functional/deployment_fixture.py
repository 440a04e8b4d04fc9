"""Session fixture: the real Keystone + two Glance deployment (tools.testenv).

Import it in a conftest::

    from tests.functional.deployment_fixture import deployment  # noqa: F401

By default the session starts a fresh deployment (stopping whatever ran in
the same state dir) and stops it at the end. With
``IMAGE_AGENT_TESTENV_REUSE=1`` it reuses a healthy running deployment (or
starts one) and leaves it running, which saves about 15 s per run while
writing tests. ``IMAGE_AGENT_TESTENV_DIR`` picks another state dir.
"""

from __future__ import annotations

import os

import pytest

from tools.testenv import Deployment

# One deployment per process even if the fixture is collected twice.
_STARTED: dict[str, Deployment] = {}


def _reuse() -> bool:
    return os.environ.get('IMAGE_AGENT_TESTENV_REUSE', '') in (
        '1',
        'true',
        'yes',
    )


@pytest.fixture(scope='session')
def deployment():
    """The running deployment (a ``tools.testenv.Deployment``)."""
    dep = Deployment()
    if dep.state_dir in _STARTED:
        yield _STARTED[dep.state_dir]
        return
    if _reuse():
        dep.start()
    else:
        dep.stop()
        dep.start()
    _STARTED[dep.state_dir] = dep
    try:
        yield dep
    finally:
        _STARTED.pop(dep.state_dir, None)
        if not _reuse():
            dep.stop()
