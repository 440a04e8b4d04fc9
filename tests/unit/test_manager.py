"""The RPC endpoint: who may call, what comes back, which errors."""

import contextlib
import datetime
import json
import os
import re
import time

import oslo_messaging as messaging
from oslo_messaging.rpc import dispatcher as rpc_dispatcher
import pytest

from image_agent import exception
from image_agent import manager
from image_agent import rpc
from image_agent import transfers
from image_agent.image import glance as glance_mod

DATA = b'image bytes' * 100


@pytest.fixture
def endpoint(glance, glance_http, root, keystone):
    service = glance_mod.GlanceImageService()
    xfers = transfers.Transfers(service, [str(root)], None)
    return manager.ImageAgentManager(
        'node-1', 'image-agent', service, xfers, keystone.validator()
    )


@pytest.fixture
def image(glance):
    return glance.add_image(data=DATA)


@contextlib.contextmanager
def raises(cls, match=None):
    """The error an endpoint method raised, as the RPC server unwraps it."""
    with pytest.raises(rpc_dispatcher.ExpectedException) as e:
        yield
    error = e.value.exc_info[1]
    assert isinstance(error, cls), repr(error)
    if match:
        assert re.search(match, str(error)), str(error)


def as_sent(result):
    """The result as the serializer puts it on the wire."""
    return json.loads(json.dumps(rpc.to_primitive(result)))


class TestAuthorization:
    def test_keystone_mode_refuses_a_call_without_token(
        self, endpoint, anon_ctx, glance
    ):
        with raises(exception.NotAuthorized, match='token'):
            endpoint.ping(anon_ctx)
        with raises(exception.NotAuthorized):
            endpoint.show(anon_ctx, image_id='x')
        assert glance.calls == []

    def test_noauth_mode_accepts_it(self, endpoint, anon_ctx, config):
        config.config(auth_strategy='noauth')
        assert endpoint.ping(anon_ctx)['host'] == 'node-1'

    def test_a_token_is_accepted(self, endpoint, ctx):
        assert endpoint.ping(ctx)['host'] == 'node-1'

    def test_a_token_keystone_does_not_know_is_refused(
        self, endpoint, ctx, admin_token_ctx, glance
    ):
        for token in ('anything', ctx.auth_token + 'x'):
            fake = ctx.from_dict(dict(ctx.to_dict(), auth_token=token))
            for call in (
                lambda fake=fake: endpoint.ping(fake),
                lambda fake=fake: endpoint.list_cache(fake),
                lambda fake=fake: endpoint.evict(fake, image_id='x'),
                lambda fake=fake: endpoint.precache(fake, image_ids=['x']),
                lambda fake=fake: endpoint.show(fake, image_id='x'),
            ):
                with raises(exception.NotAuthorized, match='Keystone'):
                    call()
        assert glance.calls == []

    def test_the_tokens_roles_count_not_the_requests_claims(
        self, endpoint, ctx, keystone
    ):
        claims = dict(ctx.to_dict(), roles=['admin'], is_admin=True)
        liar = ctx.from_dict(claims)
        for call in (
            lambda: endpoint.list_cache(liar),
            lambda: endpoint.evict(liar, image_id='x'),
            lambda: endpoint.precache(liar, image_ids=['x']),
        ):
            with raises(exception.PolicyNotAuthorized, match='admin'):
                call()
        assert endpoint.ping(liar)['transfers'] == []

    def test_roles_are_configurable(self, endpoint, ctx, config):
        config.config(group='policy', precache_roles=['member'])
        assert endpoint.precache(ctx, image_ids=[]) == {}

    def test_keystones_answer_is_kept_briefly(self, endpoint, ctx, keystone):
        for _ in range(5):
            endpoint.ping(ctx)
        assert keystone.asked == 1

    def test_the_token_is_never_logged(self, endpoint, ctx, image, caplog):
        caplog.set_level('DEBUG')
        endpoint.show(ctx, image_id=image['id'])
        with raises(exception.ImageNotFound):
            endpoint.show(ctx, image_id='11111111-2222-3333-4444-555555555555')
        assert ctx.auth_token not in caplog.text


class TestResults:
    def test_ping_tells_who_answers(self, endpoint, ctx, admin_token_ctx):
        status = as_sent(endpoint.ping(ctx))
        assert status['host'] == 'node-1'
        assert status['topic'] == 'image-agent'
        assert status['version'] == manager.RPC_API_VERSION
        assert status['pid'] == os.getpid()
        datetime.datetime.fromisoformat(status['started_at'])
        assert status['transfers'] == []

    def test_ping_shows_other_projects_transfers_to_the_status_roles(
        self, endpoint, ctx, admin_token_ctx
    ):
        board = endpoint._transfers.shared.board
        with contextlib.ExitStack() as running:
            for project in (ctx.project_id, 'another-project'):
                progress = transfers.Progress(
                    'download', 'img', '/p', 1, 'now', project_id=project
                )
                running.enter_context(
                    board.running(ctx, progress, {}, lambda error: error)
                )
            assert len(endpoint.ping(ctx)['transfers']) == 1
            assert len(endpoint.ping(admin_token_ctx)['transfers']) == 2

    def test_show_gives_iso_datetimes_on_the_wire(self, endpoint, ctx, image):
        shown = as_sent(endpoint.show(ctx, image_id=image['id']))
        assert shown['id'] == image['id']
        parsed = datetime.datetime.fromisoformat(shown['created_at'])
        assert parsed.tzinfo is not None

    def test_detail_passes_the_listing_parameters(
        self, endpoint, ctx, image, glance
    ):
        images = endpoint.detail(ctx, limit=5, filters={'name': 'cirros'})
        assert [i['id'] for i in images] == [image['id']]
        assert glance.calls_to('images.list')[-1].kwargs['limit'] == 5

    def test_download_writes_under_the_roots(self, endpoint, ctx, image, root):
        result = endpoint.download(
            ctx, image_id=image['id'], path=str(root / 'd')
        )
        assert result['size'] == len(DATA)
        assert (root / 'd').read_bytes() == DATA

    def test_create_and_update_from_a_path(self, endpoint, ctx, root, glance):
        (root / 'src').write_bytes(DATA)
        created = endpoint.create(
            ctx, image_meta={'name': 'up'}, path=str(root / 'src')
        )
        assert glance.data[created['id']] == DATA
        (root / 'src2').write_bytes(b'other')
        endpoint.update(
            ctx,
            image_id=created['id'],
            image_meta={'name': 'up2'},
            path=str(root / 'src2'),
            purge_props=False,
        )
        assert glance.data[created['id']] == b'other'
        assert glance.images[created['id']]['name'] == 'up2'

    def test_create_and_update_without_path_touch_only_metadata(
        self, endpoint, ctx, glance
    ):
        created = endpoint.create(ctx, image_meta={'name': 'meta-only'})
        updated = endpoint.update(
            ctx, image_id=created['id'], image_meta={'name': 'renamed'}
        )
        assert updated['name'] == 'renamed'
        assert created['id'] not in glance.data

    def test_get_location_is_a_dict_on_the_wire(self, endpoint, ctx, glance):
        image = glance.add_image(
            direct_url='http://store/x', locations=[{'url': 'http://store/x'}]
        )
        # A member over RPC: the body, as Glance shows it to its token.
        assert endpoint.get_location(ctx, image_id=image['id']) == {
            'direct_url': 'http://store/x',
            'locations': [{'url': 'http://store/x'}],
        }

    def test_delete_members_and_stores(self, endpoint, ctx, image, glance):
        glance.stores = [{'id': 'fast', 'default': 'true'}, {'id': 'web'}]
        # The RPC result keeps its 1.0 shape: a list, flags as booleans.
        assert endpoint.get_stores(ctx) == [
            {'id': 'fast', 'default': True, 'read-only': False},
            {'id': 'web', 'default': False, 'read-only': False},
        ]
        assert endpoint.list_members(ctx, image_id=image['id']) == []
        assert endpoint.delete(ctx, image_id=image['id']) is True
        assert image['id'] not in glance.images


class TestErrors:
    def test_project_errors_are_expected_and_keep_their_class(
        self, endpoint, ctx
    ):
        with pytest.raises(rpc_dispatcher.ExpectedException) as e:
            endpoint.show(ctx, image_id='11111111-2222-3333-4444-555555555555')
        assert isinstance(e.value.exc_info[1], exception.ImageNotFound)

    def test_path_errors_are_typed(self, endpoint, ctx, image, tmp_path):
        with pytest.raises(rpc_dispatcher.ExpectedException) as e:
            endpoint.download(ctx, image_id=image['id'], path='relative')
        assert isinstance(e.value.exc_info[1], exception.InvalidPath)

    def test_unexpected_errors_become_agent_errors(
        self, endpoint, ctx, glance, monkeypatch
    ):
        monkeypatch.setattr(
            endpoint._images, 'get_stores', lambda c: {}['boom']
        )
        with pytest.raises(rpc_dispatcher.ExpectedException) as e:
            endpoint.get_stores(ctx)
        error = e.value.exc_info[1]
        assert isinstance(error, exception.AgentError)
        assert 'get_stores' in str(error)

    def test_an_unknown_argument_is_invalid_input(self, endpoint, ctx):
        with pytest.raises(rpc_dispatcher.ExpectedException) as e:
            endpoint.show(ctx, image_id='x', extra=1)
        error = e.value.exc_info[1]
        assert type(error) is exception.InvalidInput
        assert "show: got an unexpected keyword argument 'extra'" in str(error)

    def test_a_missing_argument_is_invalid_input(self, endpoint, ctx):
        with pytest.raises(rpc_dispatcher.ExpectedException) as e:
            endpoint.show(ctx)
        error = e.value.exc_info[1]
        assert type(error) is exception.InvalidInput
        assert "missing a required argument: 'image_id'" in str(error)

    def test_an_argument_named_context_is_invalid_input(self, endpoint, ctx):
        with pytest.raises(rpc_dispatcher.ExpectedException) as e:
            endpoint.show(ctx, image_id='x', context={})
        assert type(e.value.exc_info[1]) is exception.InvalidInput


class TestDispatch:
    def test_only_public_methods_are_callable(self, endpoint):
        policy = rpc_dispatcher.DefaultRPCAccessPolicy()
        assert policy.is_allowed(endpoint, 'download')
        assert not policy.is_allowed(endpoint, '_transfers')

    def test_the_endpoint_speaks_version_1_4(self, endpoint):
        # 1.1 added the image cache (list_cache, evict, precache), 1.2 the
        # idempotency key of create, 1.3 the peers of precache, 1.4
        # conversions (download convert_to, create/update convert_from);
        # older callers are served as before.
        assert endpoint.target.version == '1.4'

    def test_a_call_through_a_fake_transport(self, endpoint, ctx, config):
        transport = rpc.get_transport(config.conf, url='fake://')
        server = rpc.get_server(transport, 'ia-unit', 'node-1', [endpoint])
        server.start()
        try:
            client = rpc.get_client(transport, 'ia-unit', '1.0')
            status = client.prepare(server='node-1', timeout=10).call(
                ctx, 'ping'
            )
            assert status['host'] == 'node-1'
            with pytest.raises(messaging.UnsupportedVersion):
                client.prepare(version='2.0', timeout=10).call(ctx, 'ping')
        finally:
            server.stop()
            server.wait()
            transport.cleanup()


class TestDeadline:
    def test_an_expired_request_is_refused_before_any_work(
        self, endpoint, ctx, glance, root, caplog
    ):
        (root / 'src').write_bytes(DATA)
        ctx.deadline = {'sent_at': time.time() - 60, 'start_within': 4.0}
        with raises(exception.RequestExpired, match='create'):
            endpoint.create(
                ctx, image_meta={'name': 'late'}, path=str(root / 'src')
            )
        assert glance.images == {}
        assert 'Dropped an expired create request' in caplog.text
        assert ctx.auth_token not in caplog.text

    def test_expired_before_the_token_is_looked_at(
        self, endpoint, anon_ctx, config
    ):
        anon_ctx.deadline = {'sent_at': time.time() - 60, 'start_within': 1}
        with raises(exception.RequestExpired):
            endpoint.ping(anon_ctx)

    def test_in_time_it_runs(self, endpoint, ctx):
        ctx.deadline = {'sent_at': time.time(), 'start_within': 4.0}
        assert endpoint.ping(ctx)['host'] == 'node-1'

    def test_the_allowed_clock_skew_is_configurable(
        self, endpoint, ctx, config
    ):
        ctx.deadline = {'sent_at': time.time() - 10, 'start_within': 4.0}
        config.config(group='agent', clock_skew=10)
        assert endpoint.ping(ctx)['host'] == 'node-1'


class TestIdempotentCreate:
    def test_the_key_is_recorded_and_a_second_create_returns_the_image(
        self, endpoint, ctx, glance, root
    ):
        (root / 'src').write_bytes(DATA)
        first = endpoint.create(
            ctx,
            image_meta={'name': 'once', 'properties': {'a': 'b'}},
            path=str(root / 'src'),
            idempotency_key='key-1',
        )
        assert glance.images[first['id']]['image_agent_idempotency_key'] == (
            'key-1'
        )
        assert glance.images[first['id']]['a'] == 'b'
        again = endpoint.create(
            ctx,
            image_meta={'name': 'once'},
            path=str(root / 'src'),
            idempotency_key='key-1',
        )
        assert again['id'] == first['id']
        assert len(glance.images) == 1
        other = endpoint.create(
            ctx, image_meta={'name': 'twice'}, idempotency_key='key-2'
        )
        assert other['id'] != first['id']

    def test_another_projects_key_is_not_the_callers(
        self, endpoint, ctx, glance
    ):
        glance.add_image(
            owner='someone-else', image_agent_idempotency_key='key-1'
        )
        made = endpoint.create(
            ctx, image_meta={'name': 'mine'}, idempotency_key='key-1'
        )
        assert len(glance.images) == 2
        assert glance.images[made['id']]['name'] == 'mine'

    @pytest.mark.parametrize('key', ['', 'x' * 256, 'a\nb', 7])
    def test_a_bad_key_is_invalid_input(self, endpoint, ctx, glance, key):
        with raises(exception.InvalidInput):
            endpoint.create(ctx, image_meta={'name': 'n'}, idempotency_key=key)
        assert glance.images == {}


class TestConversionArguments:
    """What a caller on the bus may ask of a conversion (RPC 1.4)."""

    @pytest.mark.parametrize(
        ('kwargs', 'match'),
        [
            ({'convert_from': 'raw'}, 'needs a path'),
            ({'convert_from': 'qed', 'path': 'src'}, 'convert_from must'),
            ({'convert_from': ['raw'], 'path': 'src'}, 'convert_from must'),
            ({'convert_from': {'x': 1}, 'path': 'src'}, 'convert_from must'),
        ],
    )
    def test_create_refuses_bad_conversions(
        self, endpoint, ctx, root, glance, kwargs, match
    ):
        (root / 'src').write_bytes(DATA)
        if 'path' in kwargs:
            kwargs['path'] = str(root / kwargs['path'])
        with raises(exception.InvalidInput, match):
            endpoint.create(
                ctx, image_meta={'name': 'n', 'disk_format': 'qcow2'}, **kwargs
            )
        assert glance.images == {}

    @pytest.mark.parametrize('disk_format', [None, 'qed', 'ploop', 7])
    def test_the_target_must_be_a_format_qemu_img_writes(
        self, endpoint, ctx, root, glance, disk_format
    ):
        (root / 'src').write_bytes(DATA)
        with raises(exception.InvalidInput, 'disk_format to convert to'):
            endpoint.create(
                ctx,
                image_meta={'name': 'n', 'disk_format': disk_format},
                path=str(root / 'src'),
                convert_from='raw',
            )

    def test_update_converts_to_the_images_own_disk_format(
        self, endpoint, ctx, root, glance
    ):
        target = glance.add_image(disk_format='qcow2')
        (root / 'src').write_bytes(DATA * 100)
        endpoint.update(
            ctx,
            image_id=target['id'],
            image_meta={},
            path=str(root / 'src'),
            convert_from='raw',
        )
        assert glance.data[target['id']][:4] == b'QFI\xfb'

    @pytest.mark.parametrize('convert_to', ['qcow2', 3, {'a': 1}])
    def test_download_refuses_other_conversions(
        self, endpoint, ctx, root, image, convert_to
    ):
        with raises(exception.InvalidInput, 'convert_to'):
            endpoint.download(
                ctx,
                image_id=image['id'],
                path=str(root / 'disk'),
                convert_to=convert_to,
            )
