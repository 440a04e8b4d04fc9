"""Server selection and retries against the real Keystone and Glance."""

import io
import uuid

import pytest

from image_agent import exception
from image_agent.image import glance
from tools.testenv import util as testenv_util
from tools.testenv.relay import Relay


def dead_server_url() -> str:
    """A loopback URL on which nothing listens (connections are refused)."""
    return 'http://127.0.0.1:%d' % testenv_util.free_port()


def test_first_server_down_call_served_by_second(
    deployment, config, demo_context, images
):
    image = images(demo_context, data=io.BytesIO(b'x' * 1000))
    config.config(
        group='glance',
        api_servers=[dead_server_url(), deployment.glance_urls[1]],
        num_retries=1,
    )
    service = glance.GlanceImageService()
    # Whatever the shuffle put first, every call must succeed: a refused
    # connection moves the call to the other server at once.
    for _ in range(6):
        assert service.show(demo_context, image['id'])['id'] == image['id']


def test_stopped_glance_server_is_skipped(
    deployment, config, demo_context, images
):
    image = images(demo_context)
    config.config(group='glance', num_retries=1)
    service = glance.GlanceImageService()
    deployment.stop_glance(0)
    try:
        for _ in range(6):
            assert service.show(demo_context, image['id'])['id'] == image['id']
    finally:
        deployment.start_glance(0)


def test_all_servers_down_fails_after_num_retries_plus_one_attempts(
    config, demo_context
):
    dead = [dead_server_url(), dead_server_url()]
    config.config(group='glance', api_servers=dead, num_retries=3)
    service = glance.GlanceImageService()
    with pytest.raises(exception.GlanceConnectionFailed) as info:
        service.show(demo_context, str(uuid.uuid4()))
    message = str(info.value)
    assert 'after 4 attempt(s)' in message
    for url in dead:
        assert url in message


def test_num_retries_zero_makes_one_attempt(config, demo_context):
    dead = dead_server_url()
    config.config(group='glance', api_servers=[dead], num_retries=0)
    with pytest.raises(exception.GlanceConnectionFailed) as info:
        glance.GlanceImageService().show(demo_context, str(uuid.uuid4()))
    assert 'after 1 attempt(s) on %s' % dead in str(info.value)


def test_create_is_not_retried_after_the_response_was_lost(
    deployment, config, demo_context, admin_context, image_service, images
):
    """The request reached Glance, which made the image; the answer was
    lost on the way back. A retry would make a second image."""
    name = 'no-dup-' + uuid.uuid4().hex[:8]
    service = glance.GlanceImageService()
    existing = images(demo_context)['id']
    # Schemas are fetched once per set of servers, in calls of their own
    # that are retried freely; fetch them through the proxy before it
    # loses every answer.
    with Relay.to(deployment.glance_urls[0]) as proxy:
        config.config(group='glance', api_servers=[proxy.url], num_retries=3)
        try:
            service.show(demo_context, existing)
            proxy.lose = True
            with pytest.raises(exception.GlanceConnectionFailed) as info:
                service.create(
                    demo_context,
                    {
                        'name': name,
                        'disk_format': 'raw',
                        'container_format': 'bare',
                    },
                )
            assert 'after 1 attempt(s)' in str(info.value)
            posts = [r for r in proxy.requests if r.method == 'POST']
            assert len(posts) == 1
        finally:
            config.config(group='glance', api_servers=deployment.glance_urls)
    made = image_service.detail(admin_context, filters={'name': name})
    assert len(made) == 1
    image_service.delete(admin_context, made[0]['id'])


def test_show_is_retried_after_the_response_was_lost(
    deployment, config, demo_context, images
):
    image = images(demo_context)
    service = glance.GlanceImageService()
    service.show(demo_context, image['id'])
    with Relay.to(deployment.glance_urls[0], lose=True) as proxy:
        config.config(group='glance', api_servers=[proxy.url], num_retries=2)
        with pytest.raises(exception.GlanceConnectionFailed) as info:
            service.show(demo_context, image['id'])
        assert 'after 3 attempt(s)' in str(info.value)
        gets = [
            r for r in proxy.requests if r.line.startswith(b'GET /v2/images')
        ]
        assert len(gets) == 3


@pytest.mark.parametrize(
    ('region', 'served_by'), [('RegionOne', 0), ('RegionTwo', 1)]
)
def test_catalog_discovery_honours_region_name(
    deployment, config, demo_context, images, region, served_by
):
    image = images(demo_context)
    config.config(
        group='glance', api_servers=None, region_name=region, num_retries=0
    )
    service = glance.GlanceImageService()
    other = 1 - served_by
    deployment.stop_glance(other)
    try:
        assert service.show(demo_context, image['id'])['id'] == image['id']
    finally:
        deployment.start_glance(other)
    deployment.stop_glance(served_by)
    try:
        with pytest.raises(exception.GlanceConnectionFailed) as info:
            service.show(demo_context, image['id'])
        assert deployment.glance_urls[served_by] in str(info.value)
    finally:
        deployment.start_glance(served_by)


def test_catalog_in_v3_shape_is_accepted(deployment, config, images):
    from tests.functional.glance_fixtures import make_context

    context = make_context(deployment, 'demo', catalog='catalog')
    image = images(context)
    config.config(group='glance', api_servers=None, region_name='RegionTwo')
    service = glance.GlanceImageService()
    assert service.show(context, image['id'])['id'] == image['id']


def test_keystone_is_asked_when_neither_config_nor_catalog_names_a_server(
    deployment, config, demo_context, images
):
    image = images(demo_context)
    demo_context.service_catalog = []
    config.config(group='glance', api_servers=None, region_name='RegionTwo')
    service = glance.GlanceImageService()
    deployment.stop_glance(0)
    try:
        assert service.show(demo_context, image['id'])['id'] == image['id']
    finally:
        deployment.start_glance(0)


def test_no_server_anywhere_is_a_configuration_error(config, demo_context):
    demo_context.service_catalog = []
    config.config(group='glance', api_servers=None, region_name='Nowhere')
    with pytest.raises(exception.GlanceServersNotFound):
        glance.GlanceImageService().show(demo_context, str(uuid.uuid4()))


def test_remote_image_service_is_bound_to_the_server_in_the_href(
    deployment, config, demo_context, images
):
    image = images(demo_context)
    config.config(
        group='glance',
        api_servers=[dead_server_url()],
        num_retries=0,
    )
    href = '%s/v2/images/%s' % (deployment.glance_urls[1], image['id'])
    service, image_id = glance.get_remote_image_service(demo_context, href)
    assert image_id == image['id']
    assert service.show(demo_context, image_id)['id'] == image['id']
    # The default service follows api_servers, which points nowhere.
    default, same_id = glance.get_remote_image_service(
        demo_context, image['id']
    )
    assert same_id == image['id']
    with pytest.raises(exception.GlanceConnectionFailed):
        default.show(demo_context, image['id'])


def test_global_request_id_and_caller_token_travel_to_glance(
    deployment, config, demo_context, images
):
    image = images(demo_context)
    with Relay.to(deployment.glance_urls[0]) as proxy:
        config.config(group='glance', api_servers=[proxy.url])
        service = glance.GlanceImageService()
        assert service.show(demo_context, image['id'])['id'] == image['id']
    shows = [r for r in proxy.requests if r.path.startswith('/v2/images/')]
    assert shows
    assert (
        shows[-1].header('X-OpenStack-Request-ID')
        == demo_context.global_request_id
    )
    assert shows[-1].header('X-Auth-Token') == demo_context.auth_token


def test_a_lost_page_of_a_listing_is_retried(
    deployment, config, demo_context, images
):
    """The second page of a listing is lost once; the listing is retried
    inside the call and comes back whole."""
    made = [images(demo_context) for _ in range(3)]
    names = ','.join(m['name'] for m in made)
    lost = []

    def lose_first_second_page(request):
        if b'marker=' in request.line and not lost:
            lost.append(request.line)
            return True
        return False

    service = glance.GlanceImageService()
    service.show(demo_context, made[0]['id'])
    with Relay.to(
        deployment.glance_urls[0], lose=lose_first_second_page
    ) as proxy:
        config.config(group='glance', api_servers=[proxy.url], num_retries=2)
        found = service.detail(
            demo_context, filters={'name': 'in:' + names}, page_size=2
        )
    assert len(lost) == 1
    assert sorted(i['id'] for i in found) == sorted(m['id'] for m in made)
