"""The isolated, cached virtualenv that runs Keystone and Glance.

Built once from ``constraints.txt`` (a full ``pip freeze`` of a validated
install, so every build installs the same versions) and rebuilt only when
that file's hash changes; the hash is stored inside the venv.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time

from tools.testenv.util import DeploymentError
from tools.testenv.util import lock_file
from tools.testenv.util import progress
from tools.testenv.util import run

CONSTRAINTS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'constraints.txt'
)
DEFAULT_VENV = os.path.join('~', '.cache', 'image-agent', 'testenv-venv')
HASH_FILE = '.image-agent-constraints.sha256'
PIP_TIMEOUT = 900


def venv_path() -> str:
    path = os.environ.get('IMAGE_AGENT_TESTENV_VENV') or DEFAULT_VENV
    return os.path.abspath(os.path.expanduser(path))


def constraints_hash(path: str = CONSTRAINTS) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def bin_path(venv: str, name: str) -> str:
    return os.path.join(venv, 'bin', name)


def is_current(venv: str, wanted: str) -> bool:
    try:
        with open(os.path.join(venv, HASH_FILE)) as f:
            stored = f.read().strip()
    except OSError:
        return False
    return stored == wanted and os.access(bin_path(venv, 'python'), os.X_OK)


def ensure_venv(venv: str | None = None) -> str:
    """Return a venv matching constraints.txt, building it when needed."""
    venv = venv or venv_path()
    wanted = constraints_hash()
    if is_current(venv, wanted):
        progress('venv %s is current (constraints %s)' % (venv, wanted[:12]))
        return venv
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    # Two starts at once (pytest and a shell) must not build it twice.
    with open(venv + '.lock', 'w') as lock:
        lock_file(lock, PIP_TIMEOUT + 300, 'the venv %s' % venv)
        if is_current(venv, wanted):
            return venv
        _build(venv, wanted)
    return venv


def _build(venv: str, wanted: str) -> None:
    started = time.monotonic()
    log = venv + '.build.log'
    if os.path.exists(venv):
        progress('venv %s is stale (constraints changed): rebuilding' % venv)
        shutil.rmtree(venv)
    else:
        progress('building venv %s (first run: about a minute)' % venv)
    open(log, 'w').close()
    python = getattr(sys, '_base_executable', None) or sys.executable
    run([python, '-m', 'venv', venv], log, 120, 'python3 -m venv')
    progress('installing the pinned server stack (pip, log %s)' % log)
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1')
    try:
        run(
            [
                bin_path(venv, 'python'),
                '-m',
                'pip',
                'install',
                '-q',
                '--no-input',
                '-r',
                CONSTRAINTS,
            ],
            log,
            PIP_TIMEOUT,
            'pip install -r constraints.txt',
            env=env,
        )
    except DeploymentError:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    for tool in ('gunicorn', 'keystone-manage', 'glance-manage'):
        if not os.access(bin_path(venv, tool), os.X_OK):
            raise DeploymentError(
                'venv build incomplete: no %s in %s' % (tool, venv)
            )
    with open(os.path.join(venv, HASH_FILE), 'w') as f:
        f.write(wanted + '\n')
    progress('venv built in %.1f s' % (time.monotonic() - started))
