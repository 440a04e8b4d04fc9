"""GlanceImageService.get_location and add_location."""

from glanceclient import exc as glance_exc
from keystoneauth1 import token_endpoint
import pytest

from image_agent import exception
from image_agent.image import auth as auth_mod
from image_agent.image import glance as glance_mod

IMAGE_ID = '5b1c6e3a-0d4f-4d8e-9a51-7a3c2b1d0e9f'
URL = 'http://web-store.example.com/images/cirros.img'
LOCATIONS = [
    {'url': URL, 'metadata': {'store': 'web'}},
    {'url': 'http://mirror/cirros.img', 'metadata': {}},
]
HASHES = {'os_hash_algo': 'sha512', 'os_hash_value': 'ab' * 64}


@pytest.fixture
def service(glance) -> glance_mod.GlanceImageService:
    return glance_mod.GlanceImageService()


class KeystoneScopes(dict):
    """What Keystone answers about each token: (project, roles)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def grant(self, context, roles=None) -> None:
        self[context.auth_token] = (
            context.project_id,
            frozenset(roles if roles is not None else context.roles or ()),
        )

    def token_scope(self, token):
        self.asked.append(token)
        if token not in self:
            raise exception.NotAuthorized('unknown token')
        return self[token]


@pytest.fixture(autouse=True)
def keystone_scopes(monkeypatch, ctx):
    """Keystone, stubbed at that boundary: the test context's token
    carries the project and roles the context claims, unless a test says
    otherwise."""
    scopes = KeystoneScopes()
    scopes.grant(ctx)
    monkeypatch.setattr(auth_mod, 'token_scope', scopes.token_scope)
    return scopes


# -- get_location -------------------------------------------------------------


def test_get_location_asks_as_the_caller_then_as_the_service_user(
    service, glance, ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID, locations=LOCATIONS)
    # The reference's shape for the location API: no direct_url.
    assert service.get_location(ctx, IMAGE_ID) == (None, LOCATIONS)
    image_calls = [n for n in glance.names if n.startswith('images.')]
    assert image_calls == ['images.get', 'images.get_image_locations']
    (user_call,) = glance.calls_to('images.get')
    assert isinstance(user_call.auth, token_endpoint.Token)
    (call,) = glance.calls_to('images.get_image_locations')
    assert call.args == (IMAGE_ID,)
    assert call.auth is service_credentials


def test_get_location_without_locations_is_none_none(
    service, glance, ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID)
    assert service.get_location(ctx, IMAGE_ID) == (None, None)


@pytest.mark.parametrize(
    'error',
    [
        glance_exc.HTTPNotImplemented('API 2.17 needed'),
        glance_exc.HTTPForbidden('service role needed'),
    ],
    ids=['501', '403'],
)
def test_get_location_falls_back_to_the_image_body(
    service, glance, ctx, service_credentials, error
):
    glance.add_image(id=IMAGE_ID, direct_url=URL, locations=LOCATIONS[:1])
    glance.script('images.get_image_locations', error)
    assert service.get_location(ctx, IMAGE_ID) == (URL, LOCATIONS[:1])
    (body_call,) = glance.calls_to('images.get')
    assert isinstance(body_call.auth, token_endpoint.Token)


def test_get_location_body_without_locations_is_none_none(
    service, glance, ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID)
    glance.script(
        'images.get_image_locations', glance_exc.HTTPNotImplemented()
    )
    assert service.get_location(ctx, IMAGE_ID) == (None, None)


def test_get_location_without_service_credentials_asks_with_the_token(
    service, glance, ctx
):
    glance.add_image(id=IMAGE_ID, direct_url=URL, locations=LOCATIONS)
    assert service.get_location(ctx, IMAGE_ID) == (None, LOCATIONS)
    (call,) = glance.calls_to('images.get_image_locations')
    assert call.auth.get_token(None) == ctx.auth_token


def test_get_location_refused_to_the_caller_reads_the_body(
    service, glance, ctx
):
    # A member's token: Glance refuses the location API (403) and the
    # image body gives both, as Glance shows them.
    glance.add_image(id=IMAGE_ID, direct_url=URL, locations=LOCATIONS)
    glance.script('images.get_image_locations', glance_exc.HTTPForbidden('no'))
    assert service.get_location(ctx, IMAGE_ID) == (URL, LOCATIONS)


def test_get_location_with_an_empty_location_list_reads_the_body(
    service, glance, ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID, locations=[])
    assert service.get_location(ctx, IMAGE_ID) == (None, [])
    assert glance.names.count('images.get') == 1


def test_get_location_of_a_missing_image_is_image_not_found(
    service, glance, ctx, service_credentials
):
    with pytest.raises(exception.ImageNotFound):
        service.get_location(ctx, IMAGE_ID)


# -- add_location -------------------------------------------------------------


def test_add_location_uses_the_location_api_without_metadata(
    service, glance, ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID)
    image = service.add_location(ctx, IMAGE_ID, URL, {})
    (call,) = glance.calls_to('images.add_image_location')
    assert call.args == (IMAGE_ID, URL, {})
    assert call.auth is service_credentials
    assert 'images.add_location' not in glance.names
    assert image['id'] == IMAGE_ID
    assert image['locations'] == [{'url': URL, 'metadata': {}}]


def test_add_location_passes_hashes_as_validation_data(
    service, glance, ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID)
    metadata = dict(HASHES)
    service.add_location(ctx, IMAGE_ID, URL, metadata)
    (call,) = glance.calls_to('images.add_image_location')
    assert call.args == (IMAGE_ID, URL, HASHES)
    assert metadata == HASHES


def test_add_location_with_metadata_uses_the_legacy_patch(
    service, glance, ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID)
    image = service.add_location(ctx, IMAGE_ID, URL, {'store': 'web'})
    assert 'images.add_image_location' not in glance.names
    (call,) = glance.calls_to('images.add_location')
    assert call.args == (IMAGE_ID, URL, {'store': 'web'})
    assert call.kwargs == {'validation_data': None}
    assert isinstance(call.auth, token_endpoint.Token)
    assert image['locations'] == [{'url': URL, 'metadata': {'store': 'web'}}]


def test_add_location_legacy_keeps_metadata_and_validation_apart(
    service, glance, ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID)
    service.add_location(ctx, IMAGE_ID, URL, {'store': 'web', **HASHES})
    (call,) = glance.calls_to('images.add_location')
    assert call.args == (IMAGE_ID, URL, {'store': 'web'})
    assert call.kwargs == {'validation_data': HASHES}


def test_add_location_falls_back_to_legacy_on_501(
    service, glance, ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID)
    glance.script('images.add_image_location', glance_exc.HTTPNotImplemented())
    image = service.add_location(ctx, IMAGE_ID, URL, dict(HASHES))
    (call,) = glance.calls_to('images.add_location')
    assert call.args == (IMAGE_ID, URL, {})
    assert call.kwargs == {'validation_data': HASHES}
    assert image['locations'] == [{'url': URL, 'metadata': {}}]


def test_add_location_without_service_credentials_uses_the_legacy_patch(
    service, glance, ctx
):
    glance.add_image(id=IMAGE_ID)
    service.add_location(ctx, IMAGE_ID, URL, {})
    assert 'images.add_image_location' not in glance.names
    (call,) = glance.calls_to('images.add_location')
    assert call.args == (IMAGE_ID, URL, {})


def test_add_location_returns_the_image_in_the_seed_shape(
    service, glance, ctx
):
    glance.add_image(id=IMAGE_ID, hw_disk_bus='scsi')
    image = service.add_location(ctx, IMAGE_ID, URL, {'store': 'web'})
    assert image['properties'] == {'hw_disk_bus': 'scsi'}
    assert 'schema' not in image


@pytest.mark.parametrize(
    ('error', 'expected', 'message'),
    [
        (
            glance_exc.HTTPBadRequest('Invalid location'),
            exception.Invalid,
            'Unacceptable parameters: Invalid location',
        ),
        (
            glance_exc.HTTPConflict('location already exists'),
            exception.ImageConflict,
            f'Image {IMAGE_ID} is in a state that does not allow this '
            'request: location already exists',
        ),
        (
            glance_exc.HTTPNotFound('no such image'),
            exception.ImageNotFound,
            f'Image {IMAGE_ID} could not be found.',
        ),
    ],
    ids=['400', '409', '404'],
)
@pytest.mark.parametrize(
    'glance_call', ['images.add_image_location', 'images.add_location']
)
def test_add_location_errors_are_translated(
    service,
    glance,
    ctx,
    service_credentials,
    glance_call,
    error,
    expected,
    message,
):
    glance.add_image(id=IMAGE_ID)
    glance.script(glance_call, error)
    metadata = {} if glance_call == 'images.add_image_location' else {'a': 1}
    with pytest.raises(expected) as excinfo:
        service.add_location(ctx, IMAGE_ID, URL, metadata)
    assert str(excinfo.value) == message
    assert excinfo.value.__cause__ is error


# -- the service credentials serve only callers who may see the image -------


def test_get_location_of_an_image_hidden_from_the_caller_is_not_found(
    service, glance, ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID, owner='another-project', locations=LOCATIONS)
    # Glance answers the caller's own request: no such image for you.
    glance.script('images.get', glance_exc.HTTPNotFound('No image found'))
    with pytest.raises(exception.ImageNotFound):
        service.get_location(ctx, IMAGE_ID)


def test_add_location_to_an_image_hidden_from_the_caller_is_refused(
    service, glance, ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID, owner='another-project')
    glance.script('images.get', glance_exc.HTTPNotFound('No image found'))
    with pytest.raises(exception.ImageNotFound):
        service.add_location(ctx, IMAGE_ID, URL, {})
    assert 'images.add_image_location' not in glance.names
    assert glance.images[IMAGE_ID].get('locations') is None


def test_get_location_of_an_image_unavailable_without_token_is_not_found(
    service, glance, anon_ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID, owner='another-project', locations=LOCATIONS)
    with pytest.raises(exception.ImageNotFound):
        service.get_location(anon_ctx, IMAGE_ID)
    assert 'images.get_image_locations' not in glance.names


@pytest.mark.parametrize('visibility', ['public', 'shared'])
def test_location_api_on_another_projects_image_is_not_authorized(
    service, glance, ctx, service_credentials, visibility
):
    glance.add_image(
        id=IMAGE_ID, owner='another-project', visibility=visibility
    )
    with pytest.raises(exception.ImageNotAuthorized) as excinfo:
        service.add_location(ctx, IMAGE_ID, URL, {})
    assert str(excinfo.value) == f'Not authorized for image {IMAGE_ID}.'
    assert 'images.add_image_location' not in glance.names
    assert 'images.add_location' not in glance.names


def test_claiming_the_owners_project_does_not_borrow_the_service_user(
    service, glance, ctx, service_credentials, keystone_scopes
):
    """The context claims the owner's project; Keystone says the token
    belongs to another one: the service credentials are not used."""
    keystone_scopes.grant(ctx)
    ctx.project_id = 'another-project'
    glance.add_image(id=IMAGE_ID, owner='another-project')
    with pytest.raises(exception.ImageNotAuthorized):
        service.add_location(ctx, IMAGE_ID, URL, {})
    assert keystone_scopes.asked == [ctx.auth_token]
    assert 'images.add_image_location' not in glance.names


def test_legacy_add_location_is_made_with_the_callers_token(
    service, glance, ctx, service_credentials, keystone_scopes
):
    """With location metadata the legacy call is the caller's own, so
    Glance's policy decides; Keystone is not asked."""
    glance.add_image(id=IMAGE_ID, owner='another-project')
    service.add_location(ctx, IMAGE_ID, URL, {'store': 'web'})
    (call,) = glance.calls_to('images.add_location')
    assert isinstance(call.auth, token_endpoint.Token)
    assert keystone_scopes.asked == []


def test_an_admin_may_add_a_location_to_any_image(
    service, glance, ctx, service_credentials, keystone_scopes
):
    keystone_scopes.grant(ctx, roles=['admin', 'member', 'reader'])
    glance.add_image(id=IMAGE_ID, owner='another-project')
    image = service.add_location(ctx, IMAGE_ID, URL, {})
    assert image['locations'] == [{'url': URL, 'metadata': {}}]
    assert len(glance.calls_to('images.add_image_location')) == 1


# -- over RPC: the service user acts only for the location roles --------------


def _remote(context):
    from image_agent import context as context_mod

    return context_mod.mark_remote(context)


def test_over_rpc_a_member_gets_the_body_not_the_location_api(
    service, glance, ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID, direct_url=URL, locations=LOCATIONS[:1])
    assert service.get_location(_remote(ctx), IMAGE_ID) == (
        URL,
        LOCATIONS[:1],
    )
    assert 'images.get_image_locations' not in glance.names
    assert all(c.auth is not service_credentials for c in glance.calls)


def test_over_rpc_an_admin_or_service_role_uses_the_location_api(
    service, glance, ctx, service_credentials
):
    glance.add_image(id=IMAGE_ID, locations=LOCATIONS)
    for roles in (['admin'], ['service']):
        ctx.roles = roles
        assert service.get_location(_remote(ctx), IMAGE_ID)[1] == LOCATIONS
    calls = glance.calls_to('images.get_image_locations')
    assert [c.auth for c in calls] == [service_credentials] * 2


def test_over_rpc_add_location_uses_the_callers_own_token(
    service, glance, ctx, service_credentials, keystone_scopes
):
    glance.add_image(id=IMAGE_ID)
    service.add_location(_remote(ctx), IMAGE_ID, URL, {})
    (call,) = glance.calls_to('images.add_image_location')
    assert isinstance(call.auth, token_endpoint.Token)
    assert call.auth is not service_credentials
    assert all(c.auth is not service_credentials for c in glance.calls)
    # Glance judges with the caller's token: the agent did not ask.
    assert keystone_scopes.asked == []


@pytest.mark.parametrize(
    'url',
    [
        'rbd://fsid/images/x/snap',
        'file:///etc/shadow',
        'cinder://5b1c6e3a',
        'FILE:///x',
        'swift+http://x',
    ],
)
def test_over_rpc_a_non_http_location_needs_the_location_roles(
    service, glance, ctx, service_credentials, url
):
    glance.add_image(id=IMAGE_ID)
    with pytest.raises(exception.PolicyNotAuthorized):
        service.add_location(_remote(ctx), IMAGE_ID, url, {})
    assert glance.calls == []
    ctx.roles = ['service']
    service.add_location(_remote(ctx), IMAGE_ID, url, {})
    (call,) = glance.calls_to('images.add_image_location')
    assert call.auth is not service_credentials
