"""The start sequence of a deployment, phase by phase.

venv -> PostgreSQL and fresh databases -> file server -> configs ->
database setup (or template copies) -> Keystone, both catalog Glance servers
and the trusted-headers Glance (``glance-noauth``, not in the catalog),
spawned together -> Keystone provisioning over REST -> health checks.
Each spawned server's pid reaches the state file at once, so a failure at
any later point can still be cleaned up by ``Deployment.stop``.
"""

from __future__ import annotations

from collections.abc import Callable
import os
import subprocess
import sys
import threading
import time

from tools.testenv import databases
from tools.testenv import keystone as ks
from tools.testenv import postgres
from tools.testenv import venv as venvmod
from tools.testenv.glance import DEFAULT_STORE
from tools.testenv.glance import FILE_STORES
from tools.testenv.glance import HTTP_STORE
from tools.testenv.glance import GlanceInstance
from tools.testenv.util import free_port
from tools.testenv.util import progress
from tools.testenv.util import spawn

#: The Glance instance that trusts identity headers (no Keystone).
NOAUTH_NAME = 'glance-noauth'

FILESERVER = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'fileserver.py'
)


class Startup:
    """One start of a deployment.

    ``popens`` receives every spawned server by name, ``save`` is called
    with the state whenever it changes (so pids are on disk at once), and
    ``wait_ready(name, url, log)`` blocks until ``url`` answers 200.
    """

    def __init__(
        self,
        state_dir: str,
        owner: str,
        db_names: dict,
        popens: dict,
        save: Callable[[dict], None],
        wait_ready: Callable[[str, str, str], None],
    ):
        self.state_dir = state_dir
        self.owner = owner
        self.db_names = db_names
        self.popens = popens
        self.save = save
        self.wait_ready = wait_ready
        self.logs = os.path.join(state_dir, 'logs')
        self.timings: dict = {}
        self._t0 = self._lap_start = time.monotonic()

    def _lap(self, name: str) -> None:
        now = time.monotonic()
        self.timings[name] = round(now - self._lap_start, 2)
        self._lap_start = now

    def run(self) -> dict:
        """Start everything; returns the state (also passed to ``save``)."""
        venv = venvmod.ensure_venv()
        self._lap('venv')
        os.makedirs(self.logs)
        python = venvmod.bin_path(venv, 'python')
        ports = _distinct_ports(5)
        keystone = ks.Keystone(
            venv,
            self.state_dir,
            self.logs,
            ports[1],
            self.db_names['keystone'],
            self.owner,
        )
        glances = [
            GlanceInstance(
                i, venv, self.state_dir, self.logs, ports[2 + i], self.owner
            )
            for i in range(2)
        ]
        noauth = GlanceInstance(
            2,
            venv,
            self.state_dir,
            self.logs,
            ports[4],
            self.owner,
            name=NOAUTH_NAME,
            flavor='trusted',
        )
        info = self._initial_info(venv, ports[0], keystone, glances, noauth)
        self.save(info)

        self._track(
            'fileserver',
            self._spawn_fileserver(info),
            info,
            info['fileserver'],
        )
        self._write_configs(keystone, [*glances, noauth], info)
        self._setup_databases(python, keystone, glances[0])

        self._track('keystone', keystone.spawn(), info, info['keystone'])
        all_glances = [*glances, noauth]
        entries = [*info['glance'], info['glance_noauth']]
        for g, entry in zip(all_glances, entries, strict=True):
            self._track(g.name, g.spawn(), info, entry)
        self.wait_ready('keystone', keystone.auth_url, keystone.log)
        self._lap('keystone_ready')
        info['keystone'].update(keystone.provision([g.url for g in glances]))
        self._lap('keystone_provisioned')
        for g in all_glances:
            self.wait_ready(g.name, g.health_url, g.log)
        self.wait_ready(
            'fileserver',
            info['fileserver']['url'] + '/',
            info['fileserver']['log'],
        )
        self._lap('glance_ready')
        self.timings['total'] = round(time.monotonic() - self._t0, 2)
        info['timings'] = self.timings
        self.save(info)
        progress(
            'deployment ready in %.1f s (%s)'
            % (
                self.timings['total'],
                ', '.join('%s %ss' % kv for kv in self.timings.items()),
            )
        )
        return info

    def _track(self, name, popen, info, entry) -> None:
        self.popens[name] = popen
        entry['pid'] = popen.pid
        self.save(info)

    def _initial_info(self, venv, fs_port, keystone, glances, noauth) -> dict:
        store_dirs = {
            name: os.path.join(self.state_dir, 'stores', name)
            for name in FILE_STORES
        }
        files_dir = os.path.join(self.state_dir, 'files')
        for d in [files_dir, *store_dirs.values()]:
            os.makedirs(d)
        return {
            'state_dir': self.state_dir,
            'started_at': time.time(),
            'venv': venv,
            'constraints': venvmod.constraints_hash(),
            'postgres': {
                'host': postgres.HOST,
                'port': postgres.PORT,
                'user': postgres.USER,
                'databases': self.db_names,
            },
            'fileserver': {
                'url': 'http://127.0.0.1:%d' % fs_port,
                'port': fs_port,
                'dir': files_dir,
                'pid': None,
                'log': os.path.join(self.logs, 'fileserver.log'),
            },
            'keystone': {
                'url': keystone.url,
                'auth_url': keystone.auth_url,
                'port': keystone.port,
                'pid': None,
                'config': keystone.conf,
                'log': keystone.log,
            },
            'glance': [
                {
                    'name': g.name,
                    'url': g.url,
                    'port': g.port,
                    'region': region,
                    'pid': None,
                    'config_dir': g.dir,
                    'log': g.log,
                }
                for g, region in zip(glances, ks.REGIONS, strict=True)
            ],
            # Trusts identity headers; in no region and not in the catalog.
            'glance_noauth': {
                'name': noauth.name,
                'url': noauth.url,
                'port': noauth.port,
                'flavor': noauth.flavor,
                'pid': None,
                'config_dir': noauth.dir,
                'log': noauth.log,
            },
            'store_dirs': store_dirs,
            'default_store': DEFAULT_STORE,
            'stores': [*FILE_STORES, HTTP_STORE],
            'regions': list(ks.REGIONS),
            'users': ks.users_info(),
        }

    def _spawn_fileserver(self, info: dict) -> subprocess.Popen:
        fs = info['fileserver']
        cmd = [
            sys.executable,
            FILESERVER,
            '--port',
            str(fs['port']),
            '--dir',
            fs['dir'],
            '--tag',
            self.owner,
        ]
        return spawn(
            cmd, fs['log'], dict(os.environ), self.state_dir, self.owner
        )

    def _write_configs(self, keystone, glances, info) -> None:
        keystone.write_config()
        keystone.write_keys()
        # The trusted-headers instance has no region (and no Keystone).
        regions = {entry['name']: entry['region'] for entry in info['glance']}
        for g in glances:
            g.write_config(
                db_name=self.db_names['glance'],
                keystone_url=keystone.url,
                glance_password=ks.USERS['glance'][0],
                region=regions.get(g.name),
                store_dirs=info['store_dirs'],
                fileserver_port=info['fileserver']['port'],
            )

    def _setup_databases(self, python, keystone, glance) -> None:
        """Fresh databases: template copies, or the real setup (then saved
        as templates for the next start)."""
        log = os.path.join(self.logs, 'postgres.log')
        postgres.ensure_running(log)
        templates = databases.template_names(venvmod.constraints_hash())
        copied = databases.create(python, log, self.db_names, templates)
        self._lap('databases')
        if copied:
            keystone.adopt_template(python, log)
            self._lap('db_from_template')
            return
        progress('setting up the databases (db_sync, bootstrap: ~10 s)')
        _parallel([keystone.setup_database, glance.db_sync])
        self._lap('db_setup')
        databases.save_templates(python, log, self.db_names, templates)
        self._lap('db_templates_saved')


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

    threads = [
        threading.Thread(target=call, args=(f,), daemon=True) for f in funcs
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
