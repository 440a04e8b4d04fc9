"""The cached venv that runs image-agent for the quickstart.

``pip install -c upper-constraints.txt -e <repo>``: an editable install, so
the agent always runs the code of the checkout. One venv per checkout (its
name carries a hash of the checkout's path), so that two clones on one
machine do not rebuild each other's. Rebuilt only when what the install
depends on changes (the Python version, the constraints, requirements and
packaging files); a hash of those is kept in the venv.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import threading
import time

from tools.testenv.util import DeploymentError
from tools.testenv.util import lock_file
from tools.testenv.util import run

HASH_FILE = '.image-agent-quickstart.sha256'
INPUTS = (
    'upper-constraints.txt',
    'requirements.txt',
    'setup.cfg',
    'pyproject.toml',
)
PIP_TIMEOUT = 900
SCRIPTS = ('image-agent', 'image-agent-client')


# Seconds between two "still installing" lines while a venv is built.
BUILD_NOTICE_INTERVAL = 10


def venv_path(repo: str) -> str:
    path = os.environ.get('IMAGE_AGENT_QUICKSTART_VENV')
    if not path:
        cache = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
        checkout = hashlib.sha256(os.path.abspath(repo).encode()).hexdigest()
        path = os.path.join(
            cache, 'image-agent', 'quickstart-venv-' + checkout[:10]
        )
    return os.path.abspath(os.path.expanduser(path))


def bin_path(venv: str, name: str) -> str:
    return os.path.join(venv, 'bin', name)


def wanted_hash(repo: str) -> str:
    digest = hashlib.sha256()
    digest.update(sys.version.encode() + b'\0')
    for name in INPUTS:
        with open(os.path.join(repo, name), 'rb') as f:
            digest.update(name.encode() + b'\0' + f.read() + b'\0')
    return digest.hexdigest()


def is_current(venv: str, wanted: str) -> bool:
    try:
        with open(os.path.join(venv, HASH_FILE)) as f:
            stored = f.read().strip()
    except OSError:
        return False
    return stored == wanted and all(
        os.access(bin_path(venv, s), os.X_OK) for s in SCRIPTS
    )


def ensure(repo: str, say) -> str:
    """A venv running this checkout's image-agent; built when needed."""
    venv = venv_path(repo)
    wanted = wanted_hash(repo)
    if is_current(venv, wanted):
        say('venv %s is current' % venv)
        return venv
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    with open(venv + '.lock', 'w') as lock:
        lock_file(lock, PIP_TIMEOUT + 120, 'the venv %s' % venv)
        if not is_current(venv, wanted):
            _build(venv, repo, wanted, say)
    return venv


def _still_installing(done: threading.Event, started: float, say) -> None:
    """A line now and then, so that a long build is not taken for a hang."""
    while not done.wait(BUILD_NOTICE_INTERVAL):
        say(
            'still installing image-agent and its dependencies (%.0f s)'
            % (time.monotonic() - started)
        )


def _build(venv: str, repo: str, wanted: str, say) -> None:
    started = time.monotonic()
    log = venv + '.build.log'
    if os.path.exists(venv):
        say('venv %s is stale: rebuilding it' % venv)
        shutil.rmtree(venv)
    say(
        'installing image-agent into %s (first run: about a minute; '
        'log %s)' % (venv, log)
    )
    open(log, 'w').close()
    # The base interpreter, not a venv's: the quickstart may itself run
    # from one (tox).
    python = getattr(sys, '_base_executable', None) or sys.executable
    run([python, '-m', 'venv', venv], log, 120, 'python3 -m venv')
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1')
    env.pop('PYTHONPATH', None)
    done = threading.Event()
    threading.Thread(
        target=_still_installing, args=(done, started, say), daemon=True
    ).start()
    try:
        run(
            [
                bin_path(venv, 'python'),
                '-m',
                'pip',
                'install',
                '-q',
                '--no-input',
                '-c',
                os.path.join(repo, 'upper-constraints.txt'),
                '-e',
                repo,
            ],
            log,
            PIP_TIMEOUT,
            'pip install -e %s' % repo,
            env=env,
        )
    except DeploymentError:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    finally:
        done.set()
    missing = [s for s in SCRIPTS if not os.access(bin_path(venv, s), os.X_OK)]
    if missing:
        raise DeploymentError(
            'the install left no %s in %s' % (', '.join(missing), venv)
        )
    with open(os.path.join(venv, HASH_FILE), 'w') as f:
        f.write(wanted + '\n')
    say('venv built in %.0f s' % (time.monotonic() - started))
