"""A real test deployment of Keystone and Glance API servers on loopback.

Two Glance servers are Keystone's image endpoints; a third one
(``noauth_glance_url``) trusts identity headers instead of tokens.

Stdlib only: usable from the plain system python3 before any project venv
exists, and importable from the project's test venv. The servers run from
their own cached venv (see ``venv.py``). Typical use::

    from tools.testenv import Deployment

    dep = Deployment().start()  # reuses a healthy running deployment
    auth = dep.authenticate('demo')  # token, roles, catalog, catalog_v2
    dep.glance_urls  # ['http://127.0.0.1:P1', ...P2]
    dep.noauth_glance_url  # 'http://127.0.0.1:P3', X-Identity-Status etc.
    dep.stop()

Command line: ``python3 -m tools.testenv start|stop|status|env``.
"""

from tools.testenv.deployment import Deployment
from tools.testenv.deployment import default_state_dir
from tools.testenv.util import DeploymentError

__all__ = ['Deployment', 'DeploymentError', 'default_state_dir']
