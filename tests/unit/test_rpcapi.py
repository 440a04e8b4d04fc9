"""The client library: what each method sends, to whom, with which limits."""

from unittest import mock

import oslo_messaging as messaging
import pytest

from image_agent import rpcapi

IMAGE_ID = '9b6ab1f6-56cc-4b4c-9d53-2b3e5e6f5a01'


@pytest.fixture
def transport(config):
    transport = messaging.get_rpc_transport(config.conf, url='fake://')
    yield transport
    transport.cleanup()


@pytest.fixture
def api(transport):
    return rpcapi.ImageAgentAPI(transport=transport)


@pytest.fixture
def sent(api, monkeypatch):
    """The prepare() options and the call of every request."""
    record = mock.Mock()
    cctxt = record.cctxt
    cctxt.call.return_value = {'direct_url': None, 'locations': None}

    def prepare(**options):
        record.options = options
        return cctxt

    monkeypatch.setattr(api.client, 'prepare', prepare)
    return record


class TestTargets:
    def test_the_topic_is_configurable(self, transport, config):
        assert rpcapi.ImageAgentAPI(transport=transport).topic == 'image-agent'
        config.config(group='agent', topic='images-b')
        assert rpcapi.ImageAgentAPI(transport=transport).topic == 'images-b'
        api = rpcapi.ImageAgentAPI(transport=transport, topic='other')
        assert api.client.target.topic == 'other'

    def test_the_default_version_is_the_api_version(self, api):
        assert (
            api.client.target.version == rpcapi.ImageAgentAPI.RPC_API_VERSION
        )

    def test_without_host_any_agent_serves(self, api, sent, ctx):
        api.show(ctx, IMAGE_ID)
        assert 'server' not in sent.options
        assert sent.options['version'] == '1.0'

    def test_host_targets_one_agent(self, api, sent, ctx):
        api.show(ctx, IMAGE_ID, host='node-3')
        assert sent.options['server'] == 'node-3'


class TestTimeouts:
    def test_plain_calls_keep_the_default_timeout(self, api, sent, ctx):
        api.show(ctx, IMAGE_ID)
        assert 'timeout' not in sent.options
        assert 'call_monitor_timeout' not in sent.options

    def test_downloads_wait_long_with_heartbeats(self, api, sent, ctx, config):
        config.config(
            group='agent', transfer_timeout=7200, call_monitor_timeout=12
        )
        api.download(ctx, IMAGE_ID, '/srv/x', host='h')
        assert sent.options['timeout'] == 7200
        assert sent.options['call_monitor_timeout'] == 12
        assert sent.options['server'] == 'h'

    def test_uploads_from_a_path_are_transfers_too(self, api, sent, ctx):
        api.create(ctx, {'name': 'n'}, path='/srv/x')
        assert 'call_monitor_timeout' in sent.options
        api.update(ctx, IMAGE_ID, {}, path='/srv/x')
        assert 'call_monitor_timeout' in sent.options

    def test_metadata_only_writes_are_plain_calls(self, api, sent, ctx):
        api.create(ctx, {'name': 'n'})
        assert 'call_monitor_timeout' not in sent.options
        api.update(ctx, IMAGE_ID, {'name': 'm'})
        assert 'call_monitor_timeout' not in sent.options


class TestVersionCap:
    def test_no_cap_sends_anything_known(self, api):
        assert api.can_send_version('1.0')
        assert api.can_send_version('1.9')

    def test_a_cap_stops_newer_versions(self, transport):
        api = rpcapi.ImageAgentAPI(transport=transport, version_cap='1.0')
        assert api.can_send_version('1.0')
        assert not api.can_send_version('1.1')

    def test_the_cap_comes_from_configuration(self, transport, config):
        config.config(group='agent', version_cap='1.0')
        api = rpcapi.ImageAgentAPI(transport=transport)
        assert not api.can_send_version('1.1')

    def test_a_call_above_the_cap_is_refused_before_sending(
        self, transport, ctx
    ):
        api = rpcapi.ImageAgentAPI(transport=transport, version_cap='1.0')
        with pytest.raises(messaging.RPCVersionCapError):
            api._prepare(None, version='1.1').call(ctx, 'ping')


class TestArguments:
    @pytest.mark.parametrize(
        'method, args, kwargs, expected',
        [
            ('ping', (), {}, {}),
            ('show', (IMAGE_ID,), {}, {'image_id': IMAGE_ID}),
            (
                'detail',
                (),
                {'filters': {'name': 'x'}, 'limit': 2},
                {'filters': {'name': 'x'}, 'limit': 2},
            ),
            (
                'download',
                (IMAGE_ID, '/srv/d'),
                {'overwrite': True},
                {'image_id': IMAGE_ID, 'path': '/srv/d', 'overwrite': True},
            ),
            (
                'create',
                ({'name': 'n'},),
                {'path': '/srv/u'},
                {'image_meta': {'name': 'n'}, 'path': '/srv/u'},
            ),
            (
                'update',
                (IMAGE_ID, {'name': 'n'}),
                {'purge_props': False, 'store_id': 'fast'},
                {
                    'image_id': IMAGE_ID,
                    'image_meta': {'name': 'n'},
                    'path': None,
                    'purge_props': False,
                    'store_id': 'fast',
                    'base_image_ref': None,
                },
            ),
            ('delete', (IMAGE_ID,), {}, {'image_id': IMAGE_ID}),
            ('get_location', (IMAGE_ID,), {}, {'image_id': IMAGE_ID}),
            (
                'add_location',
                (IMAGE_ID, 'http://x/y', {'a': 'b'}),
                {},
                {
                    'image_id': IMAGE_ID,
                    'url': 'http://x/y',
                    'metadata': {'a': 'b'},
                },
            ),
            ('get_stores', (), {}, {}),
            ('list_members', (IMAGE_ID,), {}, {'image_id': IMAGE_ID}),
        ],
    )
    def test_each_method_sends_its_arguments(
        self, api, sent, ctx, method, args, kwargs, expected
    ):
        getattr(api, method)(ctx, *args, **kwargs)
        sent.cctxt.call.assert_called_once_with(ctx, method, **expected)

    def test_get_location_answers_like_the_image_service(self, api, sent, ctx):
        sent.cctxt.call.return_value = {
            'direct_url': 'http://a',
            'locations': [{'url': 'http://a'}],
        }
        assert api.get_location(ctx, IMAGE_ID) == (
            'http://a',
            [{'url': 'http://a'}],
        )


class TestTransport:
    def test_a_client_without_transport_makes_and_closes_its_own(
        self, config, monkeypatch
    ):
        made = mock.Mock()
        monkeypatch.setattr(rpcapi.rpc, 'get_transport', lambda conf: made)
        monkeypatch.setattr(rpcapi.rpc, 'get_client', mock.Mock())
        api = rpcapi.ImageAgentAPI()
        api.close()
        made.cleanup.assert_called_once_with()

    def test_a_given_transport_is_left_open(self, transport, monkeypatch):
        api = rpcapi.ImageAgentAPI(transport=transport)
        monkeypatch.setattr(transport, 'cleanup', mock.Mock())
        api.close()
        transport.cleanup.assert_not_called()
