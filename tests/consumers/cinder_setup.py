"""Cinder's side of the consumers tests: its options, as cinder-volume has
them, on the global ``cfg.CONF``.

Imported by the conftest before anything of image_agent, as in a Cinder
process, where Cinder's options are registered first and
``image_agent.image.glance`` registers its own beside them.
"""

import os

# Native threads, as Cinder runs with OS_CINDER_DISABLE_EVENTLET_PATCHING=1
# (no eventlet monkey-patching in this process).
os.environ.setdefault('OS_CINDER_DISABLE_EVENTLET_PATCHING', '1')

from cinder import context as cinder_context  # noqa: E402
from cinder import objects  # noqa: E402
from cinder.common import config as cinder_config  # noqa: E402,F401

# image_utils first: cinder.image.glance and it import each other, and only
# this order works.
from cinder.image import image_utils  # noqa: E402,F401

# isort: split

from cinder.image import glance as cinder_glance  # noqa: E402

objects.register_all()


def cinder_context_for(creds: dict) -> cinder_context.RequestContext:
    """A Cinder RequestContext as its API service makes it from a token."""
    return cinder_context.RequestContext(
        user_id=creds['user_id'],
        project_id=creds['project_id'],
        project_name=creds.get('project_name'),
        roles=list(creds['roles']),
        is_admin='admin' in creds['roles'],
        auth_token=creds['token'],
        service_catalog=creds['catalog_v2'],
        overwrite=False,
    )


def reset_cinder_session() -> None:
    """Forget Cinder's cached keystoneauth session (after a config change)."""
    cinder_glance._SESSION = None
