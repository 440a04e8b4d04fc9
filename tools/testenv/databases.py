"""Fresh Keystone and Glance databases for each start, fast.

The first start with a given constraints.txt runs the real setup
(``keystone-manage db_sync`` + ``bootstrap``, ``glance-manage db_sync``,
about 10 s) on empty databases and then copies the results into template
databases. Later starts create their databases as copies of those templates
(``CREATE DATABASE ... TEMPLATE``, well under a second): still a pristine,
freshly bootstrapped database every time. Set
``IMAGE_AGENT_TESTENV_NO_DB_TEMPLATE=1`` to always run the real setup.
"""

from __future__ import annotations

import hashlib
import os

from tools.testenv import postgres
from tools.testenv.util import DeploymentError
from tools.testenv.util import port_open
from tools.testenv.util import progress

#: Bump when what the setup writes into the databases changes.
TEMPLATE_VERSION = '1'
TEMPLATE_PREFIX = 'ia_tpl_'


def names(state_dir: str, default_state_dir: str) -> dict:
    """Database names of a state dir (the default one gets short names)."""
    suffix = ''
    if state_dir != default_state_dir:
        suffix = '_' + hashlib.sha256(state_dir.encode()).hexdigest()[:8]
    return {
        'keystone': 'ia_keystone' + suffix,
        'glance': 'ia_glance' + suffix,
    }


def template_names(constraints_hash: str) -> dict:
    key = hashlib.sha256(
        (constraints_hash + TEMPLATE_VERSION).encode()
    ).hexdigest()[:12]
    return {
        'keystone': '%skeystone_%s' % (TEMPLATE_PREFIX, key),
        'glance': '%sglance_%s' % (TEMPLATE_PREFIX, key),
    }


def templates_enabled() -> bool:
    return os.environ.get('IMAGE_AGENT_TESTENV_NO_DB_TEMPLATE', '') in (
        '',
        '0',
    )


def create(python: str, log: str, dbs: dict, templates: dict) -> bool:
    """Create the databases; True when they were copied from templates."""
    use = templates_enabled() and set(templates.values()) <= set(
        postgres.list_databases(python, log, TEMPLATE_PREFIX)
    )
    copy_from = {dbs[k]: templates[k] for k in dbs} if use else None
    postgres.recreate_databases(python, log, list(dbs.values()), copy_from)
    return use


def drop(python: str, dbs: dict) -> None:
    """Drop a state dir's databases (best effort: used when cleaning up)."""
    if not (
        os.access(python, os.X_OK) and port_open(postgres.HOST, postgres.PORT)
    ):
        return
    stmts = [
        'DROP DATABASE IF EXISTS %s WITH (FORCE)' % postgres.quote_ident(n)
        for n in dbs.values()
    ]
    try:
        postgres.execute(python, os.devnull, stmts)
    except DeploymentError as e:
        progress('could not drop databases %s: %s' % (list(dbs.values()), e))


def save_templates(python: str, log: str, dbs: dict, templates: dict) -> None:
    """Copy freshly set-up databases (nobody connected) into templates.

    Each copy is made under a temporary name and renamed, so a concurrent
    start never sees half a template; older templates are dropped.
    """
    if not templates_enabled():
        return
    existing = postgres.list_databases(python, log, TEMPLATE_PREFIX)
    stmts = []
    for key, template in templates.items():
        if template in existing:
            continue
        tmp = '%s_tmp%d' % (template, os.getpid())
        stmts += [
            'DROP DATABASE IF EXISTS %s' % postgres.quote_ident(tmp),
            'CREATE DATABASE %s TEMPLATE %s'
            % (postgres.quote_ident(tmp), postgres.quote_ident(dbs[key])),
            'ALTER DATABASE %s RENAME TO %s'
            % (postgres.quote_ident(tmp), postgres.quote_ident(template)),
        ]
    stmts += [
        'DROP DATABASE IF EXISTS %s' % postgres.quote_ident(old)
        for old in existing
        if old not in templates.values() and '_tmp' not in old
    ]
    if not stmts:
        return
    try:
        postgres.execute(python, log, stmts)
    except DeploymentError as e:  # a concurrent start saved them first
        progress('template databases not saved: %s' % e)
        return
    progress('saved template databases for the next starts')
