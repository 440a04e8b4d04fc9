"""The consumers tests: Cinder's and Nova's own code against image-agent.

Cinder 29 and Nova 34 from PyPI (``tox -e consumers``), the real deployment
of the functional tests (Keystone, two Glance servers) and real agents.
Cinder's options are registered on ``cfg.CONF`` first, as in a Cinder
process; ``image_agent.image.glance`` then registers its own beside them.
Nova's code runs in subprocesses of its own (Cinder's and Nova's options of
the same names differ, so one process cannot hold both).
"""

from tests.consumers import cinder_setup  # noqa: F401 (first: see above)

# isort: split

import os
import sys

import pytest


@pytest.fixture
def cinder_config(deployment, config, tmp_path):
    """Cinder's own options, as a cinder-volume over this deployment has
    them: the same Glance servers, and the ``[glance]`` service
    credentials the ``config`` fixture sets (shared by both services)."""
    config.config(
        glance_api_servers=deployment.glance_urls,
        glance_num_retries=3,
        allowed_direct_url_schemes=[],
        state_path=str(tmp_path),
        image_conversion_dir=str(tmp_path / 'conversion'),
    )
    # Cinder's privileged helper (qemu-img's format checks) without sudo:
    # the tests run as root, as the consumers env does in CI.
    config.config(
        group='cinder_sys_admin',
        helper_command=os.path.join(
            os.path.dirname(sys.executable), 'privsep-helper'
        ),
    )
    cinder_setup.reset_cinder_session()
    yield config
    cinder_setup.reset_cinder_session()


@pytest.fixture
def cinder_image_service(cinder_config):
    """Cinder's own ``cinder.image.glance.GlanceImageService``."""
    return cinder_setup.cinder_glance.GlanceImageService()


def cinder_context(deployment, user):
    return cinder_setup.cinder_context_for(deployment.authenticate(user))


@pytest.fixture
def cinder_demo_context(deployment, cinder_config):
    return cinder_context(deployment, 'demo')


@pytest.fixture
def cinder_admin_context(deployment, cinder_config):
    return cinder_context(deployment, 'admin')


@pytest.fixture
def image_services(image_service, cinder_image_service):
    """image_agent's and Cinder's GlanceImageService, by name."""
    return {'image_agent': image_service, 'cinder': cinder_image_service}
