"""The whole test deployment: Keystone, two Glance APIs, a file server.

Everything a second process needs to reuse a running deployment (ports,
pids, URLs, passwords, paths) lives in ``<state_dir>/deployment.json``.
Every server runs in its own process group and carries a marker in its
environment naming the state dir, so ``stop`` finds and kills exactly what
was started for that state dir, from any process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time

from tools.testenv import keystone as ks
from tools.testenv import postgres, venv as venvmod
from tools.testenv.glance import FILE_STORES, GlanceInstance
from tools.testenv.util import (DeploymentError, free_port, http_ok,
                                kill_group, owned_by, owned_processes,
                                progress, spawn, tail, wait_for)

DEFAULT_STATE_DIR = '/tmp/image-agent-testenv'
STATE_FILE = 'deployment.json'
LOCK_FILE = '.lock'
READY_TIMEOUT = 60.0
FILESERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          'fileserver.py')


def default_state_dir() -> str:
    return os.path.abspath(os.environ.get('IMAGE_AGENT_TESTENV_DIR')
                           or DEFAULT_STATE_DIR)


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
        """Tag carried by every server of this state dir (see util.owned_by)."""
        digest = hashlib.sha256(self.state_dir.encode()).hexdigest()[:10]
        return 'ia-testenv-%s' % digest

    @property
    def info(self) -> dict:
        try:
            with open(self.state_file) as f:
                return json.load(f)
        except FileNotFoundError:
            raise DeploymentError('no deployment state in %s: not started'
                                  % self.state_dir) from None

    def _save(self, info: dict) -> None:
        tmp = self.state_file + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(info, f, indent=2, sort_keys=True)
        os.replace(tmp, self.state_file)

    @contextlib.contextmanager
    def _locked(self):
        os.makedirs(self.state_dir, exist_ok=True)
        with open(os.path.join(self.state_dir, LOCK_FILE), 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # -- accessors ----------------------------------------------------------

    @property
    def keystone_url(self) -> str:
        return self.info['keystone']['auth_url']

    @property
    def glance_urls(self) -> list[str]:
        return [g['url'] for g in self.info['glance']]

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
        tok = ks.password_token(self.keystone_url, user, self.password(user),
                                project)
        body = tok['body']
        catalog = body.get('catalog', [])
        return {'token': tok['token'],
                'user_id': body['user']['id'],
                'project_id': body['project']['id'],
                'project_name': body['project']['name'],
                'roles': [r['name'] for r in body.get('roles', [])],
                'expires_at': body.get('expires_at'),
                'catalog': catalog,
                'catalog_v2': ks.v3_to_v2_catalog(catalog)}

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
        checks = [('fileserver', info['fileserver'],
                   info['fileserver']['url'] + '/'),
                  ('keystone', info['keystone'], info['keystone']['auth_url'])]
        checks += [(g['name'], g, g['url'] + '/healthcheck')
                   for g in info['glance']]
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

    def start(self) -> 'Deployment':
        """Start everything, or reuse what runs already and is healthy."""
        with self._locked():
            if os.path.exists(self.state_file) and self.is_healthy():
                progress('reusing the healthy deployment in %s'
                         % self.state_dir)
                return self
            self._stop_locked(quiet=True)
            try:
                self._start_locked()
            except BaseException:
                progress('start failed: stopping what was started '
                         '(logs kept in %s)' % os.path.join(self.state_dir,
                                                            'logs'))
                self._stop_locked(quiet=True, keep_state=True)
                raise
        return self

    def stop(self) -> None:
        """Kill every process started for this state dir."""
        with self._locked():
            self._stop_locked()

    def _stop_locked(self, quiet: bool = False,
                     keep_state: bool = False) -> None:
        pids = []
        try:
            info = self.info
            pids = [g.get('pid') for g in info['glance']]
            pids += [info['keystone'].get('pid'),
                     info['fileserver'].get('pid')]
        except (DeploymentError, KeyError, ValueError):
            pass
        for pid in pids:
            if pid:
                kill_group(pid, self.owner, popen=self._popen_for(pid))
        # Anything else carrying our marker (a crash between spawn and save).
        for pid in owned_processes(self.owner):
            try:
                kill_group(os.getpgid(pid), self.owner)
            except ProcessLookupError:
                pass
        self._popens.clear()
        if not keep_state and os.path.exists(self.state_file):
            os.remove(self.state_file)
        if not quiet:
            progress('stopped the deployment in %s' % self.state_dir)

    def _popen_for(self, pid: int):
        for p in self._popens.values():
            if p.pid == pid:
                return p
        return None

    def _start_locked(self) -> None:
        t0 = time.monotonic()
        timings: dict = {}
        venv = venvmod.ensure_venv()
        timings['venv'] = round(time.monotonic() - t0, 2)
        self._clean_state_dir()
        logs = os.path.join(self.state_dir, 'logs')
        os.makedirs(logs)
        python = venvmod.bin_path(venv, 'python')

        t = time.monotonic()
        postgres.ensure_running(os.path.join(logs, 'postgres.log'))
        db = self._db_names()
        postgres.recreate_databases(python, list(db.values()),
                                    os.path.join(logs, 'postgres.log'))
        timings['databases'] = round(time.monotonic() - t, 2)

        ports = _distinct_ports(4)
        store_dirs = {name: os.path.join(self.state_dir, 'stores', name)
                      for name in FILE_STORES}
        for d in store_dirs.values():
            os.makedirs(d)
        files_dir = os.path.join(self.state_dir, 'files')
        os.makedirs(files_dir)
        keystone = ks.Keystone(venv, self.state_dir, logs, ports[1],
                               db['keystone'], self.owner)
        glances = [GlanceInstance(i, venv, self.state_dir, logs, ports[2 + i],
                                  self.owner) for i in range(2)]
        info = {
            'state_dir': self.state_dir,
            'started_at': time.time(),
            'venv': venv,
            'constraints': venvmod.constraints_hash(),
            'postgres': {'host': postgres.HOST, 'port': postgres.PORT,
                         'user': postgres.USER, 'databases': db},
            'fileserver': {'url': 'http://127.0.0.1:%d' % ports[0],
                           'port': ports[0], 'dir': files_dir, 'pid': None,
                           'log': os.path.join(logs, 'fileserver.log')},
            'keystone': {'url': keystone.url, 'auth_url': keystone.auth_url,
                         'port': keystone.port, 'pid': None,
                         'config': keystone.conf, 'log': keystone.log},
            'glance': [{'name': g.name, 'url': g.url, 'port': g.port,
                        'region': region, 'pid': None, 'config_dir': g.dir,
                        'log': g.log}
                       for g, region in zip(glances, ks.REGIONS)],
            'store_dirs': store_dirs,
            'default_store': 'fast',
            'stores': ['fast', 'cheap', 'web'],
            'regions': list(ks.REGIONS),
            'users': _users_info(),
        }

        fs = spawn([sys.executable, FILESERVER, '--port', str(ports[0]),
                    '--dir', files_dir, '--tag', self.owner], info['fileserver']['log'],
                   dict(os.environ), self.state_dir, self.owner)
        self._track('fileserver', fs, info, info['fileserver'])

        keystone.write_config()
        for g, region in zip(glances, ks.REGIONS):
            g.write_config(db['glance'], keystone.url,
                           ks.USERS['glance'][0], region, store_dirs,
                           ports[0])
        t = time.monotonic()
        _parallel([keystone.setup_database, glances[0].db_sync])
        timings['db_setup'] = round(time.monotonic() - t, 2)

        t = time.monotonic()
        self._track('keystone', keystone.spawn(), info, info['keystone'])
        for g, entry in zip(glances, info['glance']):
            self._track(g.name, g.spawn(), info, entry)
        self._wait_ready('keystone', keystone.auth_url, keystone.log)
        timings['keystone_ready'] = round(time.monotonic() - t, 2)
        ids = keystone.provision([g.url for g in glances])
        info['keystone'].update(ids)
        for g in glances:
            self._wait_ready(g.name, g.health_url, g.log)
        self._wait_ready('fileserver', info['fileserver']['url'] + '/',
                         info['fileserver']['log'])
        timings['servers_ready'] = round(time.monotonic() - t, 2)
        timings['total'] = round(time.monotonic() - t0, 2)
        info['timings'] = timings
        self._save(info)
        progress('deployment ready in %.1f s (%s)'
                 % (timings['total'], ', '.join('%s %ss' % kv for kv in
                                                timings.items())))

    def _track(self, name: str, popen: subprocess.Popen, info: dict,
               entry: dict) -> None:
        """Remember a spawned server and save its pid at once."""
        self._popens[name] = popen
        entry['pid'] = popen.pid
        self._save(info)

    def _wait_ready(self, name: str, url: str, log: str,
                    timeout: float = READY_TIMEOUT) -> None:
        popen = self._popens.get(name)
        alive = (lambda: popen.poll() is None) if popen else None
        wait_for(lambda: http_ok(url), timeout, '%s (%s)' % (name, url),
                 alive=alive, on_fail=lambda: tail(log))

    def _clean_state_dir(self) -> None:
        for name in os.listdir(self.state_dir):
            if name == LOCK_FILE:
                continue
            path = os.path.join(self.state_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)

    def _db_names(self) -> dict:
        suffix = ''
        if self.state_dir != DEFAULT_STATE_DIR:
            suffix = '_' + hashlib.sha256(
                self.state_dir.encode()).hexdigest()[:8]
        return {'keystone': 'ia_keystone' + suffix,
                'glance': 'ia_glance' + suffix}

    # -- one Glance instance ------------------------------------------------

    def stop_glance(self, index: int) -> None:
        """SIGTERM (then SIGKILL) Glance instance ``index`` (0 or 1)."""
        with self._locked():
            info = self.info
            entry = info['glance'][index]
            if entry.get('pid'):
                kill_group(entry['pid'], self.owner,
                           popen=self._popen_for(entry['pid']))
            entry['pid'] = None
            self._save(info)

    def kill_glance(self, index: int) -> None:
        """SIGKILL Glance instance ``index`` at once (a crash, not a stop)."""
        with self._locked():
            info = self.info
            entry = info['glance'][index]
            if entry.get('pid'):
                kill_group(entry['pid'], self.owner, grace=0,
                           popen=self._popen_for(entry['pid']))
            entry['pid'] = None
            self._save(info)

    def start_glance(self, index: int) -> None:
        """(Re)start Glance instance ``index`` on its port; wait until healthy."""
        with self._locked():
            info = self.info
            entry = info['glance'][index]
            if entry.get('pid') and owned_by(entry['pid'], self.owner):
                if http_ok(entry['url'] + '/healthcheck'):
                    return
                kill_group(entry['pid'], self.owner,
                           popen=self._popen_for(entry['pid']))
            g = GlanceInstance(index, info['venv'], self.state_dir,
                               os.path.dirname(entry['log']), entry['port'],
                               self.owner)
            self._track(g.name, g.spawn(), info, entry)
            self._wait_ready(g.name, g.health_url, g.log)

    # -- reporting ----------------------------------------------------------

    def summary(self) -> str:
        info = self.info
        lines = ['state dir   %s' % self.state_dir,
                 'keystone    %s (pid %s)' % (info['keystone']['auth_url'],
                                              info['keystone']['pid'])]
        for g in info['glance']:
            lines.append('%-11s %s  %s (pid %s)' % (g['name'], g['url'],
                                                    g['region'], g['pid']))
        lines.append('fileserver  %s -> %s' % (info['fileserver']['url'],
                                               info['fileserver']['dir']))
        lines.append('stores      fast=%s cheap=%s web=http (default fast)'
                     % (info['store_dirs']['fast'],
                        info['store_dirs']['cheap']))
        users = ', '.join('%s/%s@%s' % (u, v['password'], v['project'])
                          for u, v in info['users'].items())
        lines.append('users       %s' % users)
        lines.append('logs        %s' % os.path.join(self.state_dir, 'logs'))
        return '\n'.join(lines)


def _users_info() -> dict:
    users = {'admin': {'password': ks.ADMIN_PASSWORD, 'project': 'admin',
                       'roles': ['admin'], 'domain': ks.DOMAIN}}
    for name, (password, project, roles) in ks.USERS.items():
        users[name] = {'password': password, 'project': project,
                       'roles': list(roles), 'domain': ks.DOMAIN}
    return users


def _distinct_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _parallel(funcs) -> None:
    """Run callables in threads; re-raise the first error after all end."""
    errors: list[BaseException] = []

    def call(f):
        try:
            f()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=call, args=(f,), daemon=True)
               for f in funcs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]


