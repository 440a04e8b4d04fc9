"""GlanceImageService: show, detail, create, update, delete and friends.

The service runs over the real GlanceClientWrapper; only glanceclient is
replaced (the ``glance`` fixture).
"""

import datetime

from glanceclient import exc as glance_exc
import pytest

from image_agent import exception
from image_agent.image import glance as glance_mod
from tests.unit import conftest

IMAGE_ID = '5b1c6e3a-0d4f-4d8e-9a51-7a3c2b1d0e9f'
OTHER_ID = '0b3f5a55-7f5c-4a29-b3c6-1c7fa0a0b6d1'


@pytest.fixture
def service(glance) -> glance_mod.GlanceImageService:
    return glance_mod.GlanceImageService()


# -- show ---------------------------------------------------------------------


def test_show_returns_the_image_in_the_seed_shape(service, glance, ctx):
    glance.add_image(
        id=IMAGE_ID,
        data=b'0123456789',
        kernel_id='k-1',
        hw_disk_bus='scsi',
        mappings='[{"device": "vda"}]',
    )
    image = service.show(ctx, IMAGE_ID)
    assert image['id'] == IMAGE_ID
    assert image['status'] == 'active'
    assert image['size'] == 10
    assert image['created_at'] == datetime.datetime(
        2024, 5, 1, 10, 0, tzinfo=datetime.UTC
    )
    assert image['properties'] == {
        'kernel_id': 'k-1',
        'hw_disk_bus': 'scsi',
        'mappings': [{'device': 'vda'}],
    }
    assert 'schema' not in image


def test_show_of_a_missing_image_is_image_not_found(service, glance, ctx):
    with pytest.raises(exception.ImageNotFound) as excinfo:
        service.show(ctx, IMAGE_ID)
    assert str(excinfo.value) == f'Image {IMAGE_ID} could not be found.'
    assert isinstance(excinfo.value.__cause__, glance_exc.HTTPNotFound)


@pytest.mark.parametrize(
    'error',
    [glance_exc.HTTPForbidden('no'), glance_exc.HTTPUnauthorized('who')],
    ids=['403', '401'],
)
def test_show_refused_is_image_not_authorized(service, glance, ctx, error):
    glance.script('images.get', error)
    with pytest.raises(exception.ImageNotAuthorized) as excinfo:
        service.show(ctx, IMAGE_ID)
    assert str(excinfo.value) == f'Not authorized for image {IMAGE_ID}.'


def test_image_schema_is_fetched_once_per_service(service, glance, ctx):
    glance.add_image(id=IMAGE_ID)
    service.show(ctx, IMAGE_ID)
    service.show(ctx, IMAGE_ID)
    service.detail(ctx)
    assert len(glance.calls_to('schemas.get')) == 1


def test_schema_refused_while_listing_is_not_authorized(service, glance, ctx):
    glance.add_image(id=IMAGE_ID)
    glance.script('schemas.get', glance_exc.HTTPUnauthorized('bad token'))
    with pytest.raises(exception.NotAuthorized) as excinfo:
        service.detail(ctx)
    assert type(excinfo.value) is exception.NotAuthorized
    assert str(excinfo.value) == 'bad token'


def test_show_of_another_projects_private_image_without_token_is_not_found(
    service, glance, anon_ctx
):
    glance.add_image(id=IMAGE_ID, owner=conftest.OTHER_PROJECT_ID)
    with pytest.raises(exception.ImageNotFound):
        service.show(anon_ctx, IMAGE_ID)


def test_show_of_an_accepted_shared_image_without_token(
    service, glance, anon_ctx
):
    glance.add_image(
        id=IMAGE_ID, owner=conftest.OTHER_PROJECT_ID, visibility='shared'
    )
    glance.members[IMAGE_ID].append(
        {'member_id': conftest.PROJECT_ID, 'status': 'accepted'}
    )
    assert service.show(anon_ctx, IMAGE_ID)['id'] == IMAGE_ID
    (member_call,) = glance.calls_to('image_members.get')
    assert member_call.args == (IMAGE_ID, conftest.PROJECT_ID)


@pytest.mark.parametrize('membership', [None, 'pending', 'rejected'])
def test_show_of_a_shared_image_not_accepted_is_not_found(
    service, glance, anon_ctx, membership
):
    glance.add_image(
        id=IMAGE_ID, owner=conftest.OTHER_PROJECT_ID, visibility='shared'
    )
    if membership:
        glance.members[IMAGE_ID].append(
            {'member_id': conftest.PROJECT_ID, 'status': membership}
        )
    with pytest.raises(exception.ImageNotFound):
        service.show(anon_ctx, IMAGE_ID)


def test_show_to_an_admin_without_token(service, glance, admin_ctx):
    glance.add_image(id=IMAGE_ID, owner=conftest.OTHER_PROJECT_ID)
    assert service.show(admin_ctx, IMAGE_ID)['id'] == IMAGE_ID


# -- detail -------------------------------------------------------------------


def test_detail_returns_a_list_of_images_in_the_seed_shape(
    service, glance, ctx
):
    glance.add_image(id=IMAGE_ID, kernel_id='k')
    glance.add_image(id=OTHER_ID)
    images = service.detail(ctx)
    assert type(images) is list
    assert [i['id'] for i in images] == [IMAGE_ID, OTHER_ID]
    assert images[0]['properties'] == {'kernel_id': 'k'}
    assert isinstance(images[1]['updated_at'], datetime.datetime)


def test_detail_passes_listing_parameters_and_drops_none(service, glance, ctx):
    service.detail(
        ctx,
        filters={'status': 'active'},
        marker=IMAGE_ID,
        limit=10,
        page_size=5,
        sort_key='name',
        sort_dir=None,
    )
    (call,) = glance.calls_to('images.list')
    assert call.kwargs == {
        'filters': {'status': 'active'},
        'marker': IMAGE_ID,
        'limit': 10,
        'page_size': 5,
        'sort_key': 'name',
    }


def test_detail_refuses_unknown_parameters_without_calling_glance(
    service, glance, ctx
):
    with pytest.raises(exception.InvalidInput) as excinfo:
        service.detail(ctx, colour='blue', limit=1, is_public=True)
    assert str(excinfo.value) == (
        'Invalid input received: unknown listing parameters: colour, is_public'
    )
    assert glance.calls == []


def test_detail_refuses_filters_that_are_not_a_dict(service, glance, ctx):
    with pytest.raises(exception.InvalidInput) as excinfo:
        service.detail(ctx, filters=['status=active'])
    assert 'filters must be a dict' in str(excinfo.value)
    assert glance.calls == []


def test_detail_drops_images_unavailable_to_a_caller_without_token(
    service, glance, anon_ctx
):
    other = conftest.OTHER_PROJECT_ID
    public = glance.add_image(owner=other, visibility='public')
    own = glance.add_image(owner=conftest.PROJECT_ID)
    glance.add_image(owner=other)  # private to another project
    accepted = glance.add_image(owner=other, visibility='shared')
    pending = glance.add_image(owner=other, visibility='shared')
    glance.members[accepted['id']].append(
        {'member_id': conftest.PROJECT_ID, 'status': 'accepted'}
    )
    glance.members[pending['id']].append(
        {'member_id': conftest.PROJECT_ID, 'status': 'pending'}
    )
    images = service.detail(anon_ctx)
    assert [i['id'] for i in images] == [
        public['id'],
        own['id'],
        accepted['id'],
    ]


def test_detail_to_an_admin_without_token_keeps_every_image(
    service, glance, admin_ctx
):
    for _ in range(3):
        glance.add_image(owner=conftest.OTHER_PROJECT_ID)
    assert len(service.detail(admin_ctx)) == 3


@pytest.mark.parametrize(
    ('error', 'expected', 'message'),
    [
        (glance_exc.HTTPForbidden('nope'), exception.NotAuthorized, 'nope'),
        (
            glance_exc.HTTPBadRequest('Invalid sort key'),
            exception.Invalid,
            'Unacceptable parameters: Invalid sort key',
        ),
        (glance_exc.HTTPNotFound('marker'), exception.NotFound, 'marker'),
    ],
    ids=['403', '400', '404'],
)
def test_detail_errors_are_not_about_one_image(
    service, glance, ctx, error, expected, message
):
    glance.script('images.list', error)
    with pytest.raises(expected) as excinfo:
        service.detail(ctx)
    assert type(excinfo.value) is expected
    assert str(excinfo.value) == message


def test_detail_error_on_a_later_page_is_retried(service, glance, ctx):
    glance.add_image(id=IMAGE_ID)
    glance.add_image(id=OTHER_ID)

    def broken_listing(**kwargs):
        yield dict(glance.images[IMAGE_ID])
        raise glance_exc.HTTPServiceUnavailable('page 2')

    glance.script('images.list', broken_listing)
    images = service.detail(ctx)
    assert [i['id'] for i in images] == [IMAGE_ID, OTHER_ID]
    assert len(glance.calls_to('images.list')) == 2


# -- temp_images ------------------------------------------------------------


def test_a_new_service_has_no_temp_images(service):
    # Cinder's TemporaryImages sets its registry there on first use.
    assert service.temp_images is None
    assert glance_mod.GlanceImageService().temp_images is None


# -- delete -------------------------------------------------------------------


def test_delete_returns_true(service, glance, ctx):
    glance.add_image(id=IMAGE_ID)
    assert service.delete(ctx, IMAGE_ID) is True
    assert glance.images == {}


def test_delete_of_a_missing_image_is_image_not_found(service, glance, ctx):
    with pytest.raises(exception.ImageNotFound) as excinfo:
        service.delete(ctx, IMAGE_ID)
    assert str(excinfo.value) == f'Image {IMAGE_ID} could not be found.'


@pytest.mark.parametrize(
    ('error', 'expected'),
    [
        (
            glance_exc.HTTPConflict('image is protected'),
            exception.ImageConflict,
        ),
        (glance_exc.HTTPForbidden('not yours'), exception.ImageNotAuthorized),
    ],
    ids=['409', '403'],
)
def test_delete_refused(service, glance, ctx, error, expected):
    glance.add_image(id=IMAGE_ID)
    glance.script('images.delete', error)
    with pytest.raises(expected):
        service.delete(ctx, IMAGE_ID)
    assert IMAGE_ID in glance.images


# -- get_stores and list_members ----------------------------------------------


def test_get_stores_returns_glances_body_as_glance_sends_it(
    service, glance, ctx
):
    # Cinder's image_utils does get_stores(ctx)['stores'] and compares the
    # flags with the string 'true', as the reference returns them.
    glance.stores = [
        {'id': 'fast', 'default': 'true', 'description': 'Fast store'},
        {'id': 'web', 'read-only': 'true', 'description': 'HTTP store'},
        {'id': 'cheap', 'description': 'Cheap store'},
    ]
    stores = service.get_stores(ctx)
    assert type(stores) is dict
    assert stores == {'stores': glance.stores}
    assert stores['stores'][0]['default'] == 'true'


@pytest.mark.parametrize(
    ('error', 'expected'),
    [
        (glance_exc.HTTPNotFound('multi-store off'), exception.NotFound),
        (glance_exc.HTTPForbidden('no'), exception.NotAuthorized),
    ],
    ids=['404', '403'],
)
def test_get_stores_errors(service, glance, ctx, error, expected):
    glance.script('images.get_stores_info', error)
    with pytest.raises(expected):
        service.get_stores(ctx)


def test_list_members_returns_a_materialised_list(service, glance, ctx):
    glance.add_image(id=IMAGE_ID, visibility='shared')
    glance.members[IMAGE_ID] = [
        {'member_id': 'p1', 'status': 'accepted'},
        {'member_id': 'p2', 'status': 'pending'},
    ]
    members = service.list_members(ctx, IMAGE_ID)
    assert type(members) is list
    assert members == [
        {'member_id': 'p1', 'status': 'accepted'},
        {'member_id': 'p2', 'status': 'pending'},
    ]


def test_list_members_of_a_missing_image_is_image_not_found(
    service, glance, ctx
):
    with pytest.raises(exception.ImageNotFound):
        service.list_members(ctx, IMAGE_ID)


# -- image ids ----------------------------------------------------------------


def _per_method(service, ctx, image_id):
    return {
        'show': lambda: service.show(ctx, image_id),
        'update': lambda: service.update(ctx, image_id, {'name': 'x'}),
        'delete': lambda: service.delete(ctx, image_id),
        'download': lambda: service.download(ctx, image_id),
        'get_location': lambda: service.get_location(ctx, image_id),
        'add_location': lambda: service.add_location(
            ctx, image_id, 'http://x', {}
        ),
        'list_members': lambda: service.list_members(ctx, image_id),
    }


METHODS = list(_per_method(None, None, None))


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize(
    'image_id', ['', 'cirros', '../../v2/images', IMAGE_ID + '/file']
)
def test_a_non_uuid_id_is_image_not_found_without_any_request(
    service, glance, ctx, method, image_id
):
    with pytest.raises(exception.ImageNotFound):
        _per_method(service, ctx, image_id)[method]()
    assert glance.calls == []


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('image_id', [None, 42, b'bytes'])
def test_a_non_string_id_is_invalid_input(
    service, glance, ctx, method, image_id
):
    with pytest.raises(exception.InvalidInput) as excinfo:
        _per_method(service, ctx, image_id)[method]()
    assert 'an image id must be a string' in str(excinfo.value)
    assert glance.calls == []


def test_a_huge_bad_id_is_cut_short_in_the_message(service, glance, ctx):
    with pytest.raises(exception.ImageNotFound) as excinfo:
        service.show(ctx, 'x' * 5000)
    assert str(excinfo.value) == f'Image {"x" * 100} could not be found.'


# -- get_default_image_service and get_remote_image_service -------------------


def test_default_image_service_uses_the_configured_servers(
    config, glance, ctx
):
    config.config(group='glance', api_servers=['glance-x:9292'])
    glance.add_image(id=IMAGE_ID)
    service = glance_mod.get_default_image_service()
    assert isinstance(service, glance_mod.GlanceImageService)
    service.show(ctx, IMAGE_ID)
    assert set(glance.servers_of('images.get')) == {'http://glance-x:9292'}


def test_remote_service_for_a_plain_id_is_the_default_one(glance, ctx):
    glance.add_image(id=IMAGE_ID)
    service, image_id = glance_mod.get_remote_image_service(ctx, IMAGE_ID)
    assert image_id == IMAGE_ID
    service.show(ctx, image_id)
    assert glance.servers_of('images.get') == [conftest.DEFAULT_SERVER]


@pytest.mark.parametrize(
    ('href', 'server'),
    [
        (f'http://[::1]:444/{IMAGE_ID}', 'http://[::1]:444'),
        (
            f'http://glance.example.com:9292/v2/images/{IMAGE_ID}',
            'http://glance.example.com:9292',
        ),
        (
            f'https://glance.example.com/image/v2/images/{IMAGE_ID}',
            'https://glance.example.com',
        ),
        (
            f'https://[fd00::5]:9292/images/{IMAGE_ID}',
            'https://[fd00::5]:9292',
        ),
    ],
)
def test_remote_service_is_bound_to_the_server_of_the_href(
    glance, ctx, href, server
):
    glance.add_image(id=IMAGE_ID)
    service, image_id = glance_mod.get_remote_image_service(ctx, href)
    assert image_id == IMAGE_ID
    service.show(ctx, image_id)
    assert glance.servers_of('images.get') == [server]
    assert glance.servers_of('schemas.get') == [server]


@pytest.mark.parametrize(
    ('href', 'reason'),
    [
        ('http://glance:9292/', 'no image id in the href'),
        ('http://glance:9292/v2/images/', 'no image id in the href'),
        ('ftp://glance/' + IMAGE_ID, 'the scheme must be http or https'),
        ('/v2/images/' + IMAGE_ID, 'the scheme must be http or https'),
        ('http:///' + IMAGE_ID, 'no server in the href'),
        ('http://[::1/' + IMAGE_ID, 'Invalid IPv6 URL'),
        ('http://glance:port/' + IMAGE_ID, 'Port could not be cast'),
    ],
)
def test_remote_service_refuses_a_bad_href(glance, ctx, href, reason):
    with pytest.raises(exception.InvalidImageRef) as excinfo:
        glance_mod.get_remote_image_service(ctx, href)
    assert str(excinfo.value).startswith(f'Invalid image href {href}: ')
    assert reason in str(excinfo.value)


@pytest.mark.parametrize('href', ['', '   '])
def test_remote_service_refuses_an_empty_href(glance, ctx, href):
    with pytest.raises(exception.InvalidImageRef) as excinfo:
        glance_mod.get_remote_image_service(ctx, href)
    assert 'the href is empty' in str(excinfo.value)


@pytest.mark.parametrize('href', [None, 42, [IMAGE_ID]])
def test_remote_service_refuses_a_non_string_href(glance, ctx, href):
    with pytest.raises(exception.InvalidImageRef) as excinfo:
        glance_mod.get_remote_image_service(ctx, href)
    assert 'not a string' in str(excinfo.value)
