"""Cinder's GlanceImageService and image_agent's, side by side.

Every test runs the same calls through ``cinder.image.glance`` (Cinder 29's
own module) and ``image_agent.image.glance`` against the same Glance, with
the same Cinder request context, and compares what they return: the
library is a drop-in for Cinder's module.
"""

import io
import itertools
import uuid

import pytest

from image_agent.image import auth
from image_agent.image import glance
from tests.consumers.cinder_setup import cinder_glance
from tests.consumers.conftest import cinder_context

PROPERTIES = {'hw_disk_bus': 'scsi', 'os_distro': 'debian', 'kept': 'yes'}


@pytest.fixture
def both(image_services):
    """(name, service) for image_agent's and Cinder's image service."""
    return list(image_services.items())


@pytest.fixture
def new_image(images, cinder_demo_context):
    """An image of the demo project, with custom properties."""

    def make(data=None, **extra):
        meta = {'name': 'consumers-' + uuid.uuid4().hex[:8], 'min_ram': 64}
        meta.update(extra)
        return images(
            cinder_demo_context, meta, data=data, properties=dict(PROPERTIES)
        )

    return make


def _comparable(image: dict) -> dict:
    """What both report, without what changes from one call to the next."""
    image = dict(image)
    image.pop('updated_at', None)
    return image


def test_show_returns_the_same_dict(both, cinder_demo_context, new_image):
    made = new_image()
    ours, theirs = (
        _comparable(service.show(cinder_demo_context, made['id']))
        for _, service in both
    )
    assert ours == theirs
    assert ours['properties']['hw_disk_bus'] == 'scsi'


def test_update_with_empty_meta_uploads_and_keeps_every_property(
    both, cinder_demo_context, new_image
):
    # Cinder's upload of a volume to an image: update(ctx, id, {}, data).
    results = {}
    for name, service in both:
        made = new_image()
        updated = service.update(
            cinder_demo_context, made['id'], {}, io.BytesIO(b'volume bytes')
        )
        shown = service.show(cinder_demo_context, made['id'])
        results[name] = (updated, shown)
    for updated, shown in results.values():
        assert updated['status'] == shown['status'] == 'active'
        assert shown['size'] == len(b'volume bytes')
        for key, value in PROPERTIES.items():
            assert updated['properties'][key] == value
            assert shown['properties'][key] == value
    assert (
        results['image_agent'][1]['properties']
        == results['cinder'][1]['properties']
    )


def test_update_with_meta_purges_the_same_properties(
    both, cinder_demo_context, new_image
):
    kept = {}
    for name, service in both:
        made = new_image()
        updated = service.update(
            cinder_demo_context,
            made['id'],
            {'properties': {'kept': 'still'}, 'min_disk': 1},
        )
        kept[name] = (updated['min_disk'], updated['properties'])
    assert kept['image_agent'] == kept['cinder']
    assert kept['cinder'] == (1, {'kept': 'still'})


def test_get_stores_returns_glances_body(both, cinder_demo_context):
    ours, theirs = (
        service.get_stores(cinder_demo_context) for _, service in both
    )
    assert ours == theirs
    stores = {store['id']: store for store in ours['stores']}
    assert stores['fast']['default'] == 'true'
    assert stores['web']['read-only'] == 'true'
    assert 'default' not in stores['cheap']


def test_temp_images_starts_as_none(both):
    for _, service in both:
        assert service.temp_images is None


def _first_pairs(servers, count=6):
    return list(itertools.islice(servers, count))


def test_get_api_servers_yields_netloc_and_ssl_pairs(
    cinder_config, cinder_demo_context
):
    ours = _first_pairs(glance.get_api_servers(cinder_demo_context))
    theirs = _first_pairs(cinder_glance.get_api_servers(cinder_demo_context))
    assert sorted(set(ours)) == sorted(set(theirs))
    for netloc, use_ssl in ours:
        assert '//' not in netloc
        assert use_ssl is False


@pytest.mark.parametrize('region', ['RegionTwo', 'NoSuchRegion', None])
def test_the_catalog_gives_the_same_server_for_a_region(
    cinder_config, cinder_demo_context, region
):
    # No configured servers: the caller's catalog names them; an unknown
    # region falls back to the first endpoint.
    cinder_config.config(glance_api_servers=None)
    cinder_config.config(group='glance', api_servers=None, region_name=region)
    ours = set(_first_pairs(glance.get_api_servers(cinder_demo_context)))
    theirs = set(
        _first_pairs(cinder_glance.get_api_servers(cinder_demo_context))
    )
    assert ours == theirs
    assert len(ours) == 1


def _without_service_credentials(config):
    config.config(group='glance', auth_type=None)
    auth.reset()


@pytest.mark.parametrize('service_credentials', [True, False])
def test_get_location_returns_the_same(
    both, cinder_config, cinder_demo_context, new_image, service_credentials
):
    if not service_credentials:
        _without_service_credentials(cinder_config)
    made = new_image(data=io.BytesIO(b'located bytes'))
    ours, theirs = (
        service.get_location(cinder_demo_context, made['id'])
        for _, service in both
    )
    assert ours == theirs
    direct_url, locations = ours
    if service_credentials:
        assert direct_url is None
    else:
        assert direct_url.startswith('file://')
    assert [loc['metadata']['store'] for loc in locations] == ['fast']


def test_get_location_of_an_image_without_data(
    both, cinder_demo_context, new_image
):
    made = new_image()
    ours, theirs = (
        service.get_location(cinder_demo_context, made['id'])
        for _, service in both
    )
    assert ours == theirs


def _locations_or_error(wrapper, context, image_id):
    try:
        locations = wrapper.call(
            context, 'get_image_locations', image_id, privileged_user=True
        )
    except Exception as e:
        return type(e).__name__
    return [dict(loc) for loc in locations]


@pytest.mark.parametrize(
    ('service_credentials', 'user'),
    [(True, 'demo'), (False, 'demo'), (False, 'admin')],
)
def test_wrapper_call_takes_privileged_user(
    cinder_config, deployment, new_image, service_credentials, user
):
    # Cinder's get_location passes privileged_user=True whether or not
    # [glance] has service credentials; without them the caller's own
    # token goes, and Glance decides.
    if not service_credentials:
        _without_service_credentials(cinder_config)
    made = new_image(data=io.BytesIO(b'located bytes'))
    context = cinder_context(deployment, user)
    ours, theirs = (
        _locations_or_error(wrapper, context, made['id'])
        for wrapper in (
            glance.GlanceClientWrapper(),
            cinder_glance.GlanceClientWrapper(),
        )
    )
    assert ours == theirs
    if service_credentials or user == 'admin':
        assert [loc['metadata']['store'] for loc in ours] == ['fast']
    else:
        assert ours == 'HTTPForbidden'
