"""The whole test deployment: Keystone, three Glance APIs, a file server.

Two Glance APIs authenticate with Keystone and are its image endpoints (in
RegionOne and RegionTwo); the third, ``glance-noauth``, trusts the identity
headers of each request (``X-Identity-Status: Confirmed``, ``X-User-Id``,
``X-Project-Id``, ``X-Roles``) and is in no catalog. All three share the
database and the stores.

Everything a second process needs to reuse a running deployment (ports,
pids, URLs, passwords, paths) lives in ``<state_dir>/deployment.json``.
Every server runs in its own process group and carries a tag derived from
the state dir (in its command line or environment), so ``stop`` finds and
kills exactly what was started for that state dir, from any process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time

from tools.testenv import databases
from tools.testenv import keystone as ks
from tools.testenv import venv as venvmod
from tools.testenv.glance import GlanceInstance
from tools.testenv.startup import NOAUTH_NAME
from tools.testenv.startup import Startup
from tools.testenv.util import DeploymentError
from tools.testenv.util import http_ok
from tools.testenv.util import kill_group
from tools.testenv.util import kill_groups
from tools.testenv.util import lock_file
from tools.testenv.util import owned_by
from tools.testenv.util import owned_processes
from tools.testenv.util import progress
from tools.testenv.util import tail
from tools.testenv.util import wait_for

DEFAULT_STATE_DIR = '/tmp/image-agent-testenv'
STATE_FILE = 'deployment.json'
LOCK_FILE = '.lock'
READY_TIMEOUT = 60.0
# A start that builds the venv holds the lock that long at most.
LOCK_TIMEOUT = 1200.0


def default_state_dir() -> str:
    return os.path.abspath(
        os.environ.get('IMAGE_AGENT_TESTENV_DIR') or DEFAULT_STATE_DIR
    )


class Deployment:
    """Start, reuse, inspect and stop the test deployment of one state dir."""

    def __init__(self, state_dir: str | None = None):
        self.state_dir = os.path.abspath(state_dir or default_state_dir())
        self.state_file = os.path.join(self.state_dir, STATE_FILE)
        self._popens: dict[str, subprocess.Popen] = {}
        self._token_cache: dict = {}

    # -- state --------------------------------------------------------------

    @property
    def owner(self) -> str:
        """Tag carried by every server of this state dir (util.owned_by)."""
        digest = hashlib.sha256(self.state_dir.encode()).hexdigest()[:10]
        return 'ia-testenv-%s' % digest

    @property
    def info(self) -> dict:
        try:
            with open(self.state_file) as f:
                return json.load(f)
        except FileNotFoundError:
            raise DeploymentError(
                'no deployment state in %s: not started' % self.state_dir
            ) from None

    def _save(self, info: dict) -> None:
        tmp = self.state_file + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(info, f, indent=2, sort_keys=True)
        os.replace(tmp, self.state_file)

    @contextlib.contextmanager
    def _locked(self):
        os.makedirs(self.state_dir, exist_ok=True)
        with open(os.path.join(self.state_dir, LOCK_FILE), 'w') as lock:
            lock_file(
                lock, LOCK_TIMEOUT, 'the deployment in %s' % self.state_dir
            )
            yield

    # -- accessors ----------------------------------------------------------

    @property
    def keystone_url(self) -> str:
        return self.info['keystone']['auth_url']

    @property
    def glance_urls(self) -> list[str]:
        return [g['url'] for g in self.info['glance']]

    @property
    def noauth_glance_url(self) -> str:
        """The Glance that trusts identity headers (not in the catalog)."""
        return self.info['glance_noauth']['url']

    @property
    def store_dirs(self) -> dict:
        return dict(self.info['store_dirs'])

    @property
    def fileserver_url(self) -> str:
        return self.info['fileserver']['url']

    @property
    def fileserver_dir(self) -> str:
        return self.info['fileserver']['dir']

    def password(self, user: str) -> str:
        return self.info['users'][user]['password']

    def authenticate(self, user: str, project: str | None = None) -> dict:
        """A fresh project-scoped token for ``user`` (default: its project)."""
        info = self.info
        project = project or info['users'][user]['project']
        tok = ks.password_token(
            self.keystone_url, user, self.password(user), project
        )
        body = tok['body']
        catalog = body.get('catalog', [])
        return {
            'token': tok['token'],
            'user_id': body['user']['id'],
            'project_id': body['project']['id'],
            'project_name': body['project']['name'],
            'roles': [r['name'] for r in body.get('roles', [])],
            'expires_at': body.get('expires_at'),
            'catalog': catalog,
            'catalog_v2': ks.v3_to_v2_catalog(catalog),
        }

    def admin_token(self) -> str:
        """An admin token, reused for five minutes."""
        key = (self.info['started_at'], 'admin')
        cached = self._token_cache.get(key)
        if cached and time.monotonic() - cached[1] < 300:
            return cached[0]
        token = self.authenticate('admin')['token']
        self._token_cache = {key: (token, time.monotonic())}
        return token

    # -- health -------------------------------------------------------------

    def health(self) -> dict:
        """Name -> problem (None when fine) for every server of the state."""
        try:
            info = self.info
        except DeploymentError as e:
            return {'deployment': str(e)}
        checks = [
            (
                'fileserver',
                info['fileserver'],
                info['fileserver']['url'] + '/',
            ),
            ('keystone', info['keystone'], info['keystone']['auth_url']),
        ]
        checks += [
            (g['name'], g, g['url'] + '/healthcheck') for g in info['glance']
        ]
        # A deployment started before the noauth instance existed lacks it:
        # reported as not running, so start() replaces the deployment.
        noauth = info.get('glance_noauth') or {'name': NOAUTH_NAME, 'url': ''}
        checks.append((noauth['name'], noauth, noauth['url'] + '/healthcheck'))
        result = {}
        for name, entry, url in checks:
            if not entry.get('pid') or not owned_by(entry['pid'], self.owner):
                result[name] = 'not running'
            elif not http_ok(url, timeout=5):
                result[name] = 'running but %s does not answer 200' % url
            else:
                result[name] = None
        if info.get('constraints') != venvmod.constraints_hash():
            result['venv'] = 'started from an older constraints.txt'
        return result

    def is_healthy(self) -> bool:
        health = self.health()
        return bool(health) and not any(health.values())

    # -- start / stop -------------------------------------------------------

    def start(self) -> Deployment:
        """Start everything, or reuse what runs already and is healthy."""
        with self._locked():
            if os.path.exists(self.state_file) and self.is_healthy():
                progress(
                    'reusing the healthy deployment in %s' % self.state_dir
                )
                return self
            self._stop_locked(quiet=True)
            try:
                self._start_locked()
            except BaseException:
                progress(
                    'start failed: stopping what was started '
                    '(logs kept in %s)' % os.path.join(self.state_dir, 'logs')
                )
                self._stop_locked(quiet=True, keep_state=True)
                raise
        return self

    def stop(self) -> None:
        """Kill every process started for this state dir."""
        with self._locked():
            self._stop_locked()

    def _stop_locked(
        self, quiet: bool = False, keep_state: bool = False
    ) -> None:
        pids = []
        try:
            info = self.info
            pids = [g.get('pid') for g in info['glance']]
            pids.append(info.get('glance_noauth', {}).get('pid'))
            pids += [
                info['keystone'].get('pid'),
                info['fileserver'].get('pid'),
            ]
        except (DeploymentError, KeyError, ValueError):
            pass
        # Plus anything else carrying our tag (a crash between spawn and
        # save, a worker whose master died).
        for pid in owned_processes(self.owner):
            with contextlib.suppress(ProcessLookupError):
                pids.append(os.getpgid(pid))
        kill_groups(pids, self.owner, popens=self._popens.values())
        self._popens.clear()
        if not keep_state and os.path.exists(self.state_file):
            os.remove(self.state_file)
        if not quiet:
            progress('stopped the deployment in %s' % self.state_dir)

    def destroy(self) -> None:
        """Stop, drop this state dir's databases, remove the state dir.

        For private, throwaway deployments (the pytest fixture's own).
        """
        with self._locked():
            try:
                venv = self.info['venv']
            except (DeploymentError, KeyError, ValueError):
                venv = venvmod.venv_path()
            self._stop_locked(quiet=True)
            databases.drop(
                venvmod.bin_path(venv, 'python'),
                databases.names(self.state_dir, DEFAULT_STATE_DIR),
            )
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _popen_for(self, pid: int):
        for p in self._popens.values():
            if p.pid == pid:
                return p
        return None

    def _start_locked(self) -> None:
        self._clean_state_dir()
        startup = Startup(
            self.state_dir,
            self.owner,
            databases.names(self.state_dir, DEFAULT_STATE_DIR),
            popens=self._popens,
            save=self._save,
            wait_ready=self._wait_ready,
        )
        startup.run()

    def _track(
        self, name: str, popen: subprocess.Popen, info: dict, entry: dict
    ) -> None:
        """Remember a spawned server and save its pid at once."""
        self._popens[name] = popen
        entry['pid'] = popen.pid
        self._save(info)

    def _wait_ready(
        self, name: str, url: str, log: str, timeout: float = READY_TIMEOUT
    ) -> None:
        popen = self._popens.get(name)
        alive = (lambda: popen.poll() is None) if popen else None
        wait_for(
            lambda: http_ok(url),
            timeout,
            '%s (%s)' % (name, url),
            alive=alive,
            on_fail=lambda: tail(log),
        )

    def _clean_state_dir(self) -> None:
        for name in os.listdir(self.state_dir):
            if name == LOCK_FILE:
                continue
            path = os.path.join(self.state_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)

    # -- one Glance instance ------------------------------------------------

    @staticmethod
    def _glance_entry(info: dict, index: int | str) -> dict:
        """The state entry of Glance ``index``: 0, 1, or ``'noauth'``."""
        if index == 'noauth':
            return info['glance_noauth']
        if isinstance(index, str):
            raise ValueError('a Glance index is 0, 1 or "noauth"')
        return info['glance'][index]

    def stop_glance(self, index: int | str) -> None:
        """SIGTERM (then SIGKILL) Glance ``index`` (0, 1 or ``'noauth'``)."""
        with self._locked():
            info = self.info
            entry = self._glance_entry(info, index)
            if entry.get('pid'):
                kill_group(
                    entry['pid'],
                    self.owner,
                    popen=self._popen_for(entry['pid']),
                )
            entry['pid'] = None
            self._save(info)

    def kill_glance(self, index: int | str) -> None:
        """SIGKILL Glance ``index`` at once (a crash, not a stop)."""
        with self._locked():
            info = self.info
            entry = self._glance_entry(info, index)
            if entry.get('pid'):
                kill_group(
                    entry['pid'],
                    self.owner,
                    grace=0,
                    popen=self._popen_for(entry['pid']),
                )
            entry['pid'] = None
            self._save(info)

    def start_glance(self, index: int | str) -> None:
        """(Re)start Glance ``index`` on its port, wait for health."""
        with self._locked():
            info = self.info
            entry = self._glance_entry(info, index)
            if entry.get('pid') and owned_by(entry['pid'], self.owner):
                if http_ok(entry['url'] + '/healthcheck'):
                    return
                kill_group(
                    entry['pid'],
                    self.owner,
                    popen=self._popen_for(entry['pid']),
                )
            g = GlanceInstance(
                2 if index == 'noauth' else index,
                info['venv'],
                self.state_dir,
                os.path.dirname(entry['log']),
                entry['port'],
                self.owner,
                name=entry['name'],
                flavor=entry.get('flavor', 'keystone'),
            )
            self._track(g.name, g.spawn(), info, entry)
            self._wait_ready(g.name, g.health_url, g.log)

    # -- reporting ----------------------------------------------------------

    def summary(self) -> str:
        info = self.info
        lines = [
            'state dir     %s' % self.state_dir,
            'keystone      %s (pid %s)'
            % (info['keystone']['auth_url'], info['keystone']['pid']),
        ]
        for g in info['glance']:
            lines.append(
                '%-13s %s  %s (pid %s)'
                % (g['name'], g['url'], g['region'], g['pid'])
            )
        noauth = info['glance_noauth']
        lines.append(
            '%-13s %s  trusts identity headers, not in the catalog (pid %s)'
            % (noauth['name'], noauth['url'], noauth['pid'])
        )
        lines.append(
            'fileserver    %s -> %s'
            % (info['fileserver']['url'], info['fileserver']['dir'])
        )
        lines.append(
            'stores        fast=%s cheap=%s web=http (default fast)'
            % (info['store_dirs']['fast'], info['store_dirs']['cheap'])
        )
        users = ', '.join(
            '%s/%s@%s' % (u, v['password'], v['project'])
            for u, v in info['users'].items()
        )
        lines.append('users         %s' % users)
        lines.append('logs          %s' % os.path.join(self.state_dir, 'logs'))
        return '\n'.join(lines)
