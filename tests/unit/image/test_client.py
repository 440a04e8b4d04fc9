"""GlanceClientWrapper: which server each attempt hits, what is retried."""

import io

import glanceclient
from glanceclient import exc as glance_exc
from keystoneauth1 import noauth
from keystoneauth1 import token_endpoint
import pytest

from image_agent import context as context_mod
from image_agent import exception
from image_agent.image import auth
from image_agent.image import client as client_mod
from image_agent.image import servers as servers_mod
from tests.unit import conftest

IMAGE_ID = '5b1c6e3a-0d4f-4d8e-9a51-7a3c2b1d0e9f'
SERVERS = ['http://g1:9292', 'http://g2:9292', 'http://g3:9292']
NON_IDEMPOTENT_CALLS = {
    'create': ((), {'name': 'new'}),
    'upload': ((IMAGE_ID, b'bytes'), {}),
    'add_location': ((IMAGE_ID, 'http://store/x', {}), {}),
    'add_image_location': ((IMAGE_ID, 'http://store/x', {}), {}),
}


@pytest.fixture
def three_servers(config, glance):
    config.config(group='glance', api_servers=SERVERS)
    return SERVERS


@pytest.fixture
def wrapper() -> client_mod.GlanceClientWrapper:
    return client_mod.GlanceClientWrapper()


def _unavailable() -> glance_exc.HTTPServiceUnavailable:
    return glance_exc.HTTPServiceUnavailable('Service Unavailable')


# -- which server -------------------------------------------------------------


def test_netloc_binds_every_attempt_to_that_one_server(glance, ctx, config):
    config.config(group='glance', api_servers=SERVERS)
    glance.add_image(id=IMAGE_ID)
    glance.script('images.get', _unavailable(), _unavailable())
    wrapper = client_mod.GlanceClientWrapper(netloc='[::1]:9292')
    wrapper.call(ctx, 'get', IMAGE_ID)
    assert glance.servers_of('images.get') == ['http://[::1]:9292'] * 3


def test_netloc_with_ssl_uses_https(glance, ctx):
    glance.add_image(id=IMAGE_ID)
    wrapper = client_mod.GlanceClientWrapper(
        netloc='glance.example.com:443', use_ssl=True
    )
    wrapper.call(ctx, 'get', IMAGE_ID)
    assert glance.servers_of('images.get') == [
        'https://glance.example.com:443'
    ]


def test_each_attempt_takes_the_next_server(
    three_servers, glance, ctx, wrapper
):
    glance.add_image(id=IMAGE_ID)
    glance.script('images.get', conftest.connection_refused(), _unavailable())
    wrapper.call(ctx, 'get', IMAGE_ID)
    tried = glance.servers_of('images.get')
    assert sorted(tried) == SERVERS


def test_rotation_continues_across_calls(three_servers, glance, ctx, wrapper):
    glance.add_image(id=IMAGE_ID)
    for _ in range(7):
        wrapper.call(ctx, 'get', IMAGE_ID)
    tried = glance.servers_of('images.get')
    assert sorted(tried[:3]) == SERVERS
    assert tried == (tried[:3] * 3)[:7]


def test_rotation_continues_after_a_retry(three_servers, glance, ctx, wrapper):
    glance.add_image(id=IMAGE_ID)
    glance.script('images.get', _unavailable())
    wrapper.call(ctx, 'get', IMAGE_ID)
    wrapper.call(ctx, 'get', IMAGE_ID)
    tried = glance.servers_of('images.get')
    assert sorted(tried) == SERVERS


def test_rotation_continues_when_the_catalog_lists_servers_in_another_order(
    config, glance, ctx, wrapper, monkeypatch
):
    # Keystone does not keep the order of endpoints stable; the
    # shuffle is made a no-op so that the outcome does not depend on luck.
    monkeypatch.setattr(servers_mod.random, 'shuffle', lambda urls: None)
    config.config(group='glance', api_servers=None, region_name='RegionOne')
    endpoints = [
        {'region': 'RegionOne', 'publicURL': 'http://g1:9292'},
        {'region': 'RegionOne', 'publicURL': 'http://g2:9292'},
    ]
    contexts = [
        context_mod.RequestContext(
            auth_token='t',
            service_catalog=[
                {'type': 'image', 'name': 'glance', 'endpoints': order}
            ],
        )
        for order in (endpoints, endpoints[::-1])
    ]
    glance.add_image(id=IMAGE_ID)
    for i in range(4):
        wrapper.call(contexts[i % 2], 'get', IMAGE_ID)
    tried = glance.servers_of('images.get')
    assert all(a != b for a, b in zip(tried, tried[1:], strict=False)), tried


def test_servers_are_found_from_the_callers_catalog(glance, config):
    config.config(group='glance', api_servers=None)
    ctx = context_mod.RequestContext(
        auth_token='t',
        service_catalog=[
            {
                'type': 'image',
                'name': 'glance',
                'endpoints': [{'publicURL': 'http://from-catalog:9292/'}],
            }
        ],
    )
    glance.add_image(id=IMAGE_ID)
    client_mod.GlanceClientWrapper().call(ctx, 'get', IMAGE_ID)
    assert glance.servers_of('images.get') == ['http://from-catalog:9292']


# -- how many attempts, what is retried ---------------------------------------


@pytest.mark.parametrize('num_retries', [0, 1, 3, 5])
def test_attempts_are_num_retries_plus_one(
    config, glance, ctx, wrapper, num_retries
):
    config.config(group='glance', num_retries=num_retries)
    glance.script('images.get', *[_unavailable()] * 10)
    with pytest.raises(exception.GlanceConnectionFailed) as excinfo:
        wrapper.call(ctx, 'get', IMAGE_ID)
    assert len(glance.calls_to('images.get')) == num_retries + 1
    assert f'after {num_retries + 1} attempt(s)' in str(excinfo.value)


def test_default_is_three_retries(glance, ctx, wrapper):
    glance.script('images.get', *[_unavailable()] * 10)
    with pytest.raises(exception.GlanceConnectionFailed):
        wrapper.call(ctx, 'get', IMAGE_ID)
    assert len(glance.calls_to('images.get')) == 4


@pytest.mark.parametrize(
    'make_error',
    [
        _unavailable,
        conftest.connection_refused,
        conftest.connect_timeout,
        conftest.read_timeout,
        conftest.connection_reset,
        lambda: glance_exc.CommunicationError('Unable to communicate'),
        lambda: glance_exc.InvalidEndpoint('bad endpoint'),
    ],
    ids=[
        '503',
        'refused',
        'connect-timeout',
        'read-timeout',
        'reset',
        'communication-error',
        'invalid-endpoint',
    ],
)
def test_idempotent_call_is_retried_on_the_next_server(
    three_servers, glance, ctx, wrapper, make_error
):
    image = glance.add_image(id=IMAGE_ID)
    glance.script('images.get', make_error())
    assert wrapper.call(ctx, 'get', IMAGE_ID) == image
    first, second = glance.servers_of('images.get')
    assert first != second


def test_exhausted_retries_raise_connection_failed_naming_servers_and_error(
    config, glance, ctx, wrapper
):
    config.config(group='glance', api_servers=SERVERS[:2], num_retries=3)
    glance.script(
        'images.get',
        _unavailable(),
        _unavailable(),
        _unavailable(),
        glance_exc.CommunicationError('Error finding address for g-last'),
    )
    with pytest.raises(exception.GlanceConnectionFailed) as excinfo:
        wrapper.call(ctx, 'get', IMAGE_ID)
    tried = glance.servers_of('images.get')
    message = str(excinfo.value)
    assert message == (
        'Connection to Glance failed after 4 attempt(s) on '
        f'{tried[0]}, {tried[1]}: Error finding address for g-last'
    )
    assert sorted(set(tried)) == SERVERS[:2]
    assert isinstance(excinfo.value.__cause__, glance_exc.CommunicationError)
    assert excinfo.value.code == 503


def test_413_is_image_limit_exceeded_at_once(
    three_servers, glance, ctx, wrapper
):
    error = glance_exc.HTTPOverLimit('Image storage media is full')
    glance.script('images.upload', error)
    with pytest.raises(exception.ImageLimitExceeded) as excinfo:
        wrapper.call(ctx, 'upload', IMAGE_ID, io.BytesIO(b'data'))
    assert str(excinfo.value) == (
        'Image quota or size limit exceeded: Image storage media is full'
    )
    assert excinfo.value.__cause__ is error
    assert len(glance.calls_to('images.upload')) == 1


@pytest.mark.parametrize(
    'error',
    [
        glance_exc.HTTPNotFound('gone'),
        glance_exc.HTTPBadRequest('bad'),
        glance_exc.HTTPUnauthorized('who are you'),
        glance_exc.HTTPForbidden('not yours'),
        glance_exc.HTTPConflict('busy'),
        glance_exc.HTTPInternalServerError('oops'),
    ],
    ids=lambda e: type(e).__name__,
)
def test_http_errors_other_than_503_are_not_retried(
    three_servers, glance, ctx, wrapper, error
):
    glance.script('images.get', error)
    with pytest.raises(type(error)) as excinfo:
        wrapper.call(ctx, 'get', IMAGE_ID)
    assert excinfo.value is error
    assert len(glance.calls_to('images.get')) == 1


# -- requests that create something -------------------------------------------


@pytest.mark.parametrize('method', NON_IDEMPOTENT_CALLS)
@pytest.mark.parametrize(
    'make_error',
    [conftest.connection_refused, conftest.connect_timeout, _unavailable],
    ids=['refused', 'connect-timeout', '503'],
)
def test_unsent_non_idempotent_request_is_retried_on_next_server(
    three_servers, glance, ctx, wrapper, method, make_error
):
    args, kwargs = NON_IDEMPOTENT_CALLS[method]
    glance.script(f'images.{method}', make_error(), 'done')
    assert wrapper.call(ctx, method, *args, **kwargs) == 'done'
    first, second = glance.servers_of(f'images.{method}')
    assert first != second


def test_connect_refused_create_is_retried_on_next_server(
    three_servers, glance, ctx, wrapper
):
    glance.script('images.create', conftest.connection_refused())
    image = wrapper.call(ctx, 'create', name='new', disk_format='raw')
    assert image['name'] == 'new'
    assert len(glance.images) == 1
    first, second = glance.servers_of('images.create')
    assert first != second


@pytest.mark.parametrize('method', NON_IDEMPOTENT_CALLS)
@pytest.mark.parametrize(
    'make_error',
    [
        conftest.read_timeout,
        conftest.connection_reset,
        conftest.remote_disconnected,
        lambda: glance_exc.CommunicationError('Unable to communicate'),
    ],
    ids=['read-timeout', 'reset', 'remote-disconnected', 'unknown-cause'],
)
def test_maybe_sent_non_idempotent_request_is_not_retried(
    three_servers, glance, ctx, wrapper, method, make_error
):
    args, kwargs = NON_IDEMPOTENT_CALLS[method]
    error = make_error()
    glance.script(f'images.{method}', error, 'duplicate')
    with pytest.raises(exception.GlanceConnectionFailed) as excinfo:
        wrapper.call(ctx, method, *args, **kwargs)
    assert len(glance.calls_to(f'images.{method}')) == 1
    assert excinfo.value.__cause__ is error


def test_a_connection_failure_not_retried_is_still_connection_failed(
    three_servers, glance, ctx, wrapper
):
    glance.script('images.create', conftest.read_timeout())
    with pytest.raises(exception.GlanceConnectionFailed) as excinfo:
        wrapper.call(ctx, 'create', name='new')
    server = glance.servers_of('images.create')[0]
    assert f'after 1 attempt(s) on {server}' in str(excinfo.value)


def test_image_member_create_after_a_reset_is_not_retried(
    three_servers, glance, ctx, wrapper
):
    glance.script('image_members.create', conftest.connection_reset(), {})
    with pytest.raises(exception.GlanceConnectionFailed):
        wrapper.call(ctx, 'create', IMAGE_ID, 'p2', controller='image_members')
    assert len(glance.calls_to('image_members.create')) == 1


# -- lazy listings ------------------------------------------------------------


def _pages_then(error, *images):
    def listing(**kwargs):
        yield from images
        raise error

    return listing


@pytest.mark.parametrize(
    ('controller', 'args'),
    [('images', ()), ('image_members', (IMAGE_ID,))],
)
def test_listing_error_on_a_later_page_is_retried(
    three_servers, glance, ctx, wrapper, controller, args
):
    first = {'id': 'one'}
    glance.script(
        f'{controller}.list',
        lambda *a, **k: _pages_then(_unavailable(), first)(),
        lambda *a, **k: iter([first, {'id': 'two'}]),
    )
    result = wrapper.call(ctx, 'list', *args, controller=controller)
    assert result == [first, {'id': 'two'}]
    assert type(result) is list
    assert len(glance.calls_to(f'{controller}.list')) == 2


def test_listing_error_on_a_later_page_is_raised_by_call(
    three_servers, glance, ctx, wrapper
):
    error = glance_exc.HTTPForbidden('page two is not yours')
    glance.script('images.list', lambda **k: _pages_then(error, {'id': 'a'})())
    with pytest.raises(glance_exc.HTTPForbidden):
        wrapper.call(ctx, 'list')
    assert len(glance.calls_to('images.list')) == 1


def test_listing_arguments_reach_glanceclient(glance, ctx, wrapper):
    wrapper.call(ctx, 'list', filters={'status': 'active'}, limit=5)
    (call,) = glance.calls_to('images.list')
    assert call.kwargs == {'filters': {'status': 'active'}, 'limit': 5}


# -- consumed kwargs ----------------------------------------------------------


def test_controller_kwarg_selects_the_controller(glance, ctx, wrapper):
    glance.add_image(id=IMAGE_ID)
    glance.members[IMAGE_ID].append({'member_id': 'p2', 'status': 'accepted'})
    member = wrapper.call(
        ctx, 'get', IMAGE_ID, 'p2', controller='image_members'
    )
    assert member == {'member_id': 'p2', 'status': 'accepted'}
    (call,) = glance.calls_to('image_members.get')
    assert call.args == (IMAGE_ID, 'p2')
    assert call.kwargs == {}


def test_store_id_and_base_image_ref_become_headers(glance, ctx, wrapper):
    glance.add_image(id=IMAGE_ID)
    wrapper.call(
        ctx,
        'upload',
        IMAGE_ID,
        io.BytesIO(b'abc'),
        store_id='fast',
        base_image_ref='0b3f5a55-7f5c-4a29-b3c6-1c7fa0a0b6d1',
    )
    (call,) = glance.calls_to('images.upload')
    assert call.kwargs == {}
    assert call.headers == {
        'x-image-meta-store': 'fast',
        'x-openstack-base-image-ref': '0b3f5a55-7f5c-4a29-b3c6-1c7fa0a0b6d1',
    }


def test_without_store_id_no_store_header_is_sent(glance, ctx, wrapper):
    glance.add_image(id=IMAGE_ID)
    wrapper.call(
        ctx,
        'upload',
        IMAGE_ID,
        io.BytesIO(b'abc'),
        store_id=None,
        base_image_ref=None,
    )
    (call,) = glance.calls_to('images.upload')
    assert call.headers == {}
    assert call.kwargs == {}


def test_user_calls_carry_the_callers_token(glance, ctx, wrapper):
    glance.add_image(id=IMAGE_ID)
    wrapper.call(ctx, 'get', IMAGE_ID)
    (call,) = glance.calls_to('images.get')
    assert isinstance(call.auth, token_endpoint.Token)
    assert call.auth.get_token(None) == conftest.USER_TOKEN


def test_a_caller_without_token_never_gets_the_service_credentials(
    glance, anon_ctx, wrapper, service_credentials
):
    glance.add_image(id=IMAGE_ID)
    wrapper.call(anon_ctx, 'get', IMAGE_ID)
    (call,) = glance.calls_to('images.get')
    assert isinstance(call.auth, noauth.NoAuth)


def test_privileged_user_calls_use_the_service_credentials(
    glance, ctx, wrapper, service_credentials
):
    glance.add_image(id=IMAGE_ID)
    wrapper.call(ctx, 'get_image_locations', IMAGE_ID, privileged_user=True)
    (call,) = glance.calls_to('images.get_image_locations')
    assert call.auth is service_credentials
    assert call.kwargs == {}


def test_privileged_user_call_without_credentials_goes_with_the_token(
    glance, ctx, wrapper
):
    # Cinder's get_location calls so whether or not [glance] has service
    # credentials; without them the caller's token goes, as in Cinder.
    glance.add_image(
        id=IMAGE_ID, locations=[{'url': 'http://x', 'metadata': {}}]
    )
    locations = wrapper.call(
        ctx, 'get_image_locations', IMAGE_ID, privileged_user=True
    )
    assert [loc['url'] for loc in locations] == ['http://x']
    (call,) = glance.calls_to('images.get_image_locations')
    assert isinstance(call.auth, token_endpoint.Token)
    assert call.auth.get_token(None) == ctx.auth_token


def test_global_request_id_travels_to_glance(glance, ctx, wrapper):
    glance.add_image(id=IMAGE_ID)
    wrapper.call(ctx, 'get', IMAGE_ID)
    (call,) = glance.calls_to('images.get')
    assert call.global_request_id == conftest.GLOBAL_REQUEST_ID


def test_every_client_shares_the_process_session(glance, ctx, wrapper):
    glance.add_image(id=IMAGE_ID)
    wrapper.call(ctx, 'get', IMAGE_ID)
    client_mod.GlanceClientWrapper().call(ctx, 'get', IMAGE_ID)
    first, second = glance.clients
    assert first['session'] is second['session'] is auth.get_session()


def test_noauth_strategy_sends_identity_headers(config, glance, wrapper):
    config.config(auth_strategy='noauth')
    ctx = context_mod.RequestContext(
        user_id='u-1', project_id='p-1', roles=['member', 'reader']
    )
    glance.add_image(id=IMAGE_ID)
    wrapper.call(ctx, 'get', IMAGE_ID, privileged_user=True)
    (call,) = glance.calls_to('images.get')
    assert isinstance(call.auth, noauth.NoAuth)
    assert call.headers == {
        'X-Identity-Status': 'Confirmed',
        'X-User-Id': 'u-1',
        'X-Project-Id': 'p-1',
        'X-Roles': 'member,reader',
    }


def test_keystone_strategy_sends_no_identity_headers(glance, ctx, wrapper):
    glance.add_image(id=IMAGE_ID)
    wrapper.call(ctx, 'get', IMAGE_ID)
    (call,) = glance.calls_to('images.get')
    assert call.headers == {}


# -- data arguments -----------------------------------------------------------


def _read_some_then(error):
    def upload(image_id, image_data, **kwargs):
        image_data.read(3)
        raise error

    return upload


def test_seekable_data_is_rewound_before_a_retry(
    three_servers, glance, ctx, wrapper
):
    glance.add_image(id=IMAGE_ID)
    data = io.BytesIO(b'--0123456789')
    data.seek(2)
    glance.script('images.upload', _read_some_then(_unavailable()))
    wrapper.call(ctx, 'upload', IMAGE_ID, data)
    assert glance.data[IMAGE_ID] == b'0123456789'
    assert len(glance.calls_to('images.upload')) == 2


def test_seekable_data_passed_by_keyword_is_rewound(
    three_servers, glance, ctx, wrapper
):
    glance.add_image(id=IMAGE_ID)
    data = io.BytesIO(b'0123456789')
    glance.script('images.upload', _read_some_then(_unavailable()))
    wrapper.call(ctx, 'upload', IMAGE_ID, image_data=data)
    assert glance.data[IMAGE_ID] == b'0123456789'


class _Pipe(io.RawIOBase):
    """A readable stream that cannot tell where it is (like a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def tell(self) -> int:
        raise OSError(29, 'Illegal seek')


def test_data_that_cannot_be_rewound_is_not_retried(
    three_servers, glance, ctx, wrapper
):
    glance.add_image(id=IMAGE_ID)
    error = _unavailable()
    glance.script('images.upload', _read_some_then(error))
    with pytest.raises(exception.GlanceConnectionFailed) as excinfo:
        wrapper.call(ctx, 'upload', IMAGE_ID, _Pipe(b'0123456789'))
    assert excinfo.value.__cause__ is error
    assert len(glance.calls_to('images.upload')) == 1


def test_an_iterator_of_chunks_is_not_retried(
    three_servers, glance, ctx, wrapper
):
    glance.add_image(id=IMAGE_ID)

    def consume_then_fail(image_id, image_data, **kwargs):
        next(image_data)
        raise _unavailable()

    glance.script('images.upload', consume_then_fail)
    with pytest.raises(exception.GlanceConnectionFailed):
        wrapper.call(ctx, 'upload', IMAGE_ID, iter([b'0123', b'4567']))
    assert len(glance.calls_to('images.upload')) == 1
    assert IMAGE_ID not in glance.data


# -- back-off -----------------------------------------------------------------


def test_first_attempt_never_waits(glance, ctx, wrapper, backoff_log, config):
    config.config(group='glance', retry_backoff_base=0.5)
    glance.add_image(id=IMAGE_ID)
    wrapper.call(ctx, 'get', IMAGE_ID)
    assert backoff_log.ranges == []
    assert backoff_log.sleeps == []


def test_servers_not_yet_tried_are_tried_without_waiting(
    three_servers, glance, ctx, wrapper, backoff_log, config
):
    config.config(group='glance', retry_backoff_base=0.5, num_retries=2)
    glance.script('images.get', *[_unavailable()] * 3)
    with pytest.raises(exception.GlanceConnectionFailed):
        wrapper.call(ctx, 'get', IMAGE_ID)
    assert len(set(glance.servers_of('images.get'))) == 3
    assert backoff_log.sleeps == []


def test_a_server_tried_again_waits_with_exponential_jitter(
    config, glance, ctx, wrapper, backoff_log
):
    config.config(
        group='glance',
        api_servers=SERVERS[:2],
        num_retries=5,
        retry_backoff_base=0.5,
        retry_backoff_max=1.5,
    )
    glance.script('images.get', *[_unavailable()] * 6)
    with pytest.raises(exception.GlanceConnectionFailed):
        wrapper.call(ctx, 'get', IMAGE_ID)
    tried = glance.servers_of('images.get')
    assert tried == tried[:2] * 3
    # Attempt 2 is the other server's first try: no wait. Then each server
    # comes back for its 2nd and 3rd try: ceilings 0.5 and min(1.5, 1.0).
    assert backoff_log.ranges == [(0, 0.5), (0, 0.5), (0, 1.0), (0, 1.0)]
    assert backoff_log.sleeps == [0.5, 0.5, 1.0, 1.0]


def test_one_server_backs_off_exponentially_up_to_the_maximum(
    glance, ctx, backoff_log, config
):
    config.config(
        group='glance',
        num_retries=4,
        retry_backoff_base=0.5,
        retry_backoff_max=1.5,
    )
    wrapper = client_mod.GlanceClientWrapper(netloc='glance:9292')
    glance.script('images.get', *[_unavailable()] * 5)
    with pytest.raises(exception.GlanceConnectionFailed):
        wrapper.call(ctx, 'get', IMAGE_ID)
    assert backoff_log.ranges == [(0, 0.5), (0, 1.0), (0, 1.5), (0, 1.5)]
    assert backoff_log.sleeps == [0.5, 1.0, 1.5, 1.5]


# -- schemas ----------------------------------------------------------------


def test_schemas_are_fetched_once_per_wrapper(glance, ctx, wrapper):
    glance.add_image(id=IMAGE_ID)
    for _ in range(3):
        wrapper.call(ctx, 'get', IMAGE_ID)
    wrapper.call(ctx, 'list')
    assert [c.args for c in glance.calls_to('schemas.get')] == [('image',)]
    client_mod.GlanceClientWrapper().call(ctx, 'get', IMAGE_ID)
    assert len(glance.calls_to('schemas.get')) == 2


def test_models_built_by_one_client_are_given_to_the_next():
    """glanceclient builds a model class per controller; the wrapper makes
    a client per call and must not rebuild it every time."""
    cache = client_mod._SchemaCache()
    first = glanceclient.Client('2', endpoint='http://glance.test:9292')
    cache.install(first)
    model = object()
    first.images._lazy_once_unvalidated_model = model
    cache.keep_models(first)
    second = glanceclient.Client('2', endpoint='http://glance.test:9292')
    cache.install(second)
    assert second.images.unvalidated_model is model
    assert not hasattr(second.image_members, '_lazy_once_model')


def test_a_create_fetches_its_schema_in_a_call_of_its_own(
    three_servers, glance, ctx, wrapper
):
    # glanceclient reads the schema inside create(); a failure there would
    # leave the create unretriable although nothing was created yet.
    glance.script('schemas.get', conftest.read_timeout())
    image = wrapper.call(ctx, 'create', name='new')
    assert image['name'] == 'new'
    assert len(glance.calls_to('schemas.get')) == 2
    assert len(glance.calls_to('images.create')) == 1
    assert glance.names.index('images.create') > 1


def test_an_image_member_create_fetches_the_member_schema_first(
    glance, ctx, wrapper
):
    glance.script('image_members.create', {'member_id': 'p2'})
    wrapper.call(ctx, 'create', IMAGE_ID, 'p2', controller='image_members')
    assert glance.names == ['schemas.get', 'image_members.create']
    assert glance.calls_to('schemas.get')[0].args == ('member',)


def test_a_retry_skips_the_server_that_failed_even_under_concurrency(
    config,
):
    """Concurrent calls advance one rotation; a call's next attempt still
    goes to a server it has not tried while there is one."""
    config.config(
        group='glance', api_servers=['http://a:9292', 'http://b:9292']
    )
    wrapper = client_mod.GlanceClientWrapper()
    count, next_server = wrapper.server_picker(None)
    assert count == 2
    first = next_server()
    other_call = next_server()
    assert other_call != first
    # The rotation would now give ``first`` again; this call avoids it.
    assert next_server([first]) != first
    # With every server tried, the rotation simply goes on.
    assert next_server([first, other_call]) in (first, other_call)


def test_schemas_are_kept_per_set_of_servers(glance, ctx, config):
    """The schema one set of servers gave is never used for another."""
    wrapper = client_mod.GlanceClientWrapper()
    glance.add_image(id=IMAGE_ID)
    wrapper.call(ctx, 'get', IMAGE_ID)
    config.config(group='glance', api_servers=['http://other:9292'])
    wrapper.call(ctx, 'get', IMAGE_ID)
    wrapper.call(ctx, 'get', IMAGE_ID)
    assert glance.servers_of('schemas.get') == [
        conftest.DEFAULT_SERVER,
        'http://other:9292',
    ]


def test_a_wrapper_keeps_a_bounded_number_of_server_sets(glance, ctx, config):
    wrapper = client_mod.GlanceClientWrapper()
    for n in range(client_mod.MAX_ROTATIONS * 3):
        config.config(group='glance', api_servers=['http://g%d:9292' % n])
        wrapper.server_picker(ctx)
    assert len(wrapper._rotations) == client_mod.MAX_ROTATIONS
