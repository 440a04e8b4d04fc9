"""Fixtures of the tests as Glance's and the agents' callers: the agent
configuration of this process, contexts carrying real Keystone tokens, and
images made for a test and deleted after it.

A plugin of every suite that uses the real deployment (``tests/conftest.py``).
image_agent's modules are imported inside the fixtures: the consumers tests
register Cinder's options on ``cfg.CONF`` first, as a Cinder process does.
"""

import contextlib
import uuid

from keystoneauth1 import loading as ks_loading
from oslo_config import fixture as config_fixture
import pytest

IMAGE_AGENT_USER = 'image-agent'


@pytest.fixture
def config(deployment):
    """Agent configuration pointing at both Glance servers.

    The ``[glance]`` service credentials are those of the image-agent
    service user (used by the location API).
    """
    # Imported here, not with the module: the consumers tests register
    # Cinder's options on cfg.CONF before image_agent registers its own.
    from image_agent import conf
    from image_agent.conf import client as client_conf
    from image_agent.image import auth

    # The client's options too: the tests are the agents' callers.
    client_conf.register_opts(conf.CONF)
    fixture = config_fixture.Config(conf.CONF)
    fixture.setUp()
    fixture.config(auth_strategy='keystone')
    fixture.config(
        group='glance',
        api_servers=deployment.glance_urls,
        num_retries=3,
        retry_backoff_base=0.05,
        retry_backoff_max=0.2,
        region_name=None,
        allowed_direct_url_schemes=[],
    )
    # keystoneauth registers a plugin's options when it first loads it;
    # register them now so that they can be set like any other.
    conf.CONF.register_opts(
        ks_loading.get_auth_plugin_conf_options('password'), group='glance'
    )
    fixture.config(
        group='glance',
        auth_type='password',
        auth_url=deployment.keystone_url,
        username=IMAGE_AGENT_USER,
        password=deployment.password(IMAGE_AGENT_USER),
        project_name='service',
        user_domain_name='Default',
        project_domain_name='Default',
    )
    auth.reset()
    yield fixture
    fixture.cleanUp()
    auth.reset()


def make_context(deployment, user, catalog='catalog_v2'):
    """A RequestContext as a service behind keystonemiddleware has it."""
    from image_agent import context as ia_context

    creds = deployment.authenticate(user)
    return ia_context.RequestContext(
        auth_token=creds['token'],
        user_id=creds['user_id'],
        project_id=creds['project_id'],
        project_name=creds.get('project_name'),
        roles=list(creds['roles']),
        service_catalog=creds[catalog],
        global_request_id='req-' + str(uuid.uuid4()),
        overwrite=False,
    )


@pytest.fixture
def demo_context(deployment, config):
    return make_context(deployment, 'demo')


@pytest.fixture
def alt_context(deployment, config):
    return make_context(deployment, 'alt')


@pytest.fixture
def admin_context(deployment, config):
    return make_context(deployment, 'admin')


@pytest.fixture
def image_service(config):
    from image_agent.image import glance

    return glance.GlanceImageService()


@pytest.fixture
def images(image_service, admin_context):
    """Create images for a test and delete them afterwards."""
    created = []

    def create(context, meta=None, data=None, **extra):
        meta = dict(meta or {})
        meta.setdefault('name', 'test-' + uuid.uuid4().hex[:8])
        meta.setdefault('disk_format', 'raw')
        meta.setdefault('container_format', 'bare')
        meta.update(extra)
        image = image_service.create(context, meta, data=data)
        created.append(image['id'])
        return image

    yield create
    for image_id in created:
        # Already gone is fine.
        with contextlib.suppress(Exception):
            image_service.delete(admin_context, image_id)
