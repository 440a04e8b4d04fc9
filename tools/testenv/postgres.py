"""PostgreSQL for the test deployment: make sure it answers, fresh databases.

The project's machines run PostgreSQL on 127.0.0.1:5432 with trust auth for
user root. When it is down we start the installed cluster; when it is not
installed we install the Debian package and set up that access ourselves.
SQL goes through the server venv's psycopg2, so no client package is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from tools.testenv.util import DeploymentError
from tools.testenv.util import port_open
from tools.testenv.util import progress
from tools.testenv.util import run
from tools.testenv.util import wait_for

HOST = '127.0.0.1'
PORT = 5432
USER = 'root'

# Runs in the server venv (psycopg2): argv = dbname, then statements; prints
# the rows of the last statement as JSON.
_SQL_SCRIPT = r'''
import json, sys, psycopg2
conn = psycopg2.connect(host=%r, port=%d, user=%r, dbname=sys.argv[1],
                        connect_timeout=10)
conn.autocommit = True
cur = conn.cursor()
rows = []
for stmt in sys.argv[2:]:
    cur.execute(stmt)
    rows = cur.fetchall() if cur.description else []
print(json.dumps(rows))
''' % (HOST, PORT, USER)


def url(dbname: str) -> str:
    return 'postgresql+psycopg2://%s@%s:%d/%s' % (USER, HOST, PORT, dbname)


def ensure_running(log: str) -> None:
    """Make PostgreSQL answer on 127.0.0.1:5432, or explain what is missing."""
    if port_open(HOST, PORT):
        return
    clusters = _installed_versions()
    if not clusters:
        _install(log)
        clusters = _installed_versions()
        if not clusters:
            raise DeploymentError(
                'PostgreSQL: the postgresql package installed but no cluster '
                'exists under /etc/postgresql'
            )
        _configure_access(clusters[-1], log)
    version = clusters[-1]
    progress(
        'PostgreSQL not answering on %s:%d: starting cluster %s/main'
        % (HOST, PORT, version)
    )
    if not shutil.which('pg_ctlcluster'):
        raise DeploymentError(
            'PostgreSQL: pg_ctlcluster is missing '
            '(install the postgresql-common package)'
        )
    run(
        [
            'pg_ctlcluster',
            '--skip-systemctl-redirect',
            version,
            'main',
            'start',
        ],
        log,
        60,
        'pg_ctlcluster start',
    )
    wait_for(lambda: port_open(HOST, PORT), 30, 'PostgreSQL on port 5432')


def _installed_versions() -> list[str]:
    try:
        return sorted(os.listdir('/etc/postgresql'), key=_version_key)
    except OSError:
        return []


def _version_key(v: str):
    return [int(p) if p.isdigit() else 0 for p in v.split('.')]


def _install(log: str) -> None:
    if os.geteuid() != 0 or not shutil.which('apt-get'):
        raise DeploymentError(
            'PostgreSQL is not installed and cannot be installed here '
            '(needs root and apt-get): install the Debian package '
            '"postgresql" and make it accept user root on 127.0.0.1:5432 '
            'with trust auth'
        )
    progress(
        'PostgreSQL is not installed: apt-get install postgresql '
        '(log %s)' % log
    )
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    run(['apt-get', 'update'], log, 300, 'apt-get update', env=env)
    run(
        ['apt-get', 'install', '-y', 'postgresql'],
        log,
        600,
        'apt-get install postgresql',
        env=env,
    )


def _configure_access(version: str, log: str) -> None:
    """Freshly installed cluster: listen on loopback, trust root there."""
    conf_dir = '/etc/postgresql/%s/main' % version
    with open(
        os.path.join(conf_dir, 'conf.d', '90-image-agent.conf'), 'w'
    ) as f:
        f.write("listen_addresses = '127.0.0.1'\nport = %d\n" % PORT)
    hba = os.path.join(conf_dir, 'pg_hba.conf')
    with open(hba) as f:
        old = f.read()
    with open(hba, 'w') as f:
        f.write('host all %s 127.0.0.1/32 trust\n' % USER + old)
    run(
        [
            'pg_ctlcluster',
            '--skip-systemctl-redirect',
            version,
            'main',
            'start',
        ],
        log,
        60,
        'pg_ctlcluster start',
    )
    run(
        [
            'runuser',
            '-u',
            'postgres',
            '--',
            'psql',
            '-c',
            'CREATE ROLE %s SUPERUSER LOGIN' % USER,
        ],
        log,
        60,
        'create PostgreSQL role root',
    )


def execute(
    python: str, log: str, stmts: list[str], dbname: str = 'postgres'
) -> list:
    """Run SQL statements (autocommit); the rows of the last one."""
    try:
        proc = subprocess.run(
            [python, '-c', _SQL_SCRIPT, dbname, *stmts],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        raise DeploymentError('PostgreSQL: SQL timed out after 60 s') from None
    with open(log, 'ab') as f:
        f.write(('\n$ SQL on %s: %s\n' % (dbname, '; '.join(stmts))).encode())
        f.write(proc.stderr)
    if proc.returncode != 0:
        raise DeploymentError(
            'PostgreSQL on %s:%d (user %s, trust auth expected) failed: %s'
            % (HOST, PORT, USER, proc.stderr.decode(errors='replace')[-800:])
        )
    return json.loads(proc.stdout.decode() or '[]')


def quote_ident(name: str) -> str:
    return '"%s"' % name.replace('"', '""')


def quote_literal(value: str) -> str:
    return "'%s'" % value.replace("'", "''")


def recreate_databases(
    python: str, log: str, names: list[str], templates: dict | None = None
) -> None:
    """Drop (forcibly: stale servers may hold connections) and create.

    ``templates`` maps a name to the database it is copied from.
    """
    stmts = []
    for name in names:
        stmts.append(
            'DROP DATABASE IF EXISTS %s WITH (FORCE)' % quote_ident(name)
        )
        create = 'CREATE DATABASE %s' % quote_ident(name)
        if templates and name in templates:
            create += ' TEMPLATE %s' % quote_ident(templates[name])
        stmts.append(create)
    execute(python, log, stmts)


def list_databases(python: str, log: str, prefix: str) -> list[str]:
    rows = execute(
        python,
        log,
        [
            'SELECT datname FROM pg_database WHERE datname LIKE %s'  # noqa: S608
            % quote_literal(prefix + '%')
        ],
    )
    return [r[0] for r in rows]
