"""How a call reaches an agent: target, timeouts, version cap, transport,
typed errors, deadlines."""

from unittest import mock

from kombu import exceptions as kombu_exceptions
import oslo_messaging as messaging
import pytest

from image_agent import deadline
from image_agent import exception
from image_agent import rpc
from image_agent import rpcapi

IMAGE_ID = '9b6ab1f6-56cc-4b4c-9d53-2b3e5e6f5a01'


class TestTargets:
    def test_the_topic_is_configurable(self, transport, config):
        assert rpcapi.ImageAgentAPI(transport=transport).topic == 'image-agent'
        config.config(group='image_agent', topic='images-b')
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
            group='image_agent',
            transfer_timeout=7200,
            call_monitor_timeout=12,
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
        config.config(group='upgrade_levels', image_agent='1.0')
        api = rpcapi.ImageAgentAPI(transport=transport)
        assert not api.can_send_version('1.1')

    def test_a_call_above_the_cap_is_refused_before_sending(
        self, transport, ctx
    ):
        api = rpcapi.ImageAgentAPI(transport=transport, version_cap='1.0')
        with pytest.raises(messaging.RPCVersionCapError):
            api._prepare(None, version='1.1').cctxt.call(ctx, 'ping')


class TestTransport:
    def test_a_client_without_transport_makes_and_closes_its_own(
        self, config, monkeypatch
    ):
        made = mock.Mock()
        monkeypatch.setattr(rpc, 'get_transport', lambda conf: made)
        monkeypatch.setattr(rpc, 'get_client', mock.Mock())
        api = rpcapi.ImageAgentAPI()
        api.close()
        made.cleanup.assert_called_once_with()

    def test_a_given_transport_is_left_open(self, transport, monkeypatch):
        api = rpcapi.ImageAgentAPI(transport=transport)
        monkeypatch.setattr(transport, 'cleanup', mock.Mock())
        api.close()
        transport.cleanup.assert_not_called()


class TestTypedErrorsOnAnyTransport:
    """A consumer's transport, made without image_agent.exception among its
    allowed remote modules, gives the agent's errors as RemoteError: the
    client raises them as the classes the agent raised."""

    def _remote(self, exc_type, value='Image x could not be found.'):
        return messaging.RemoteError(exc_type, value, ['Traceback...'])

    def test_an_agent_error_arrives_as_its_class(self, api, sent, ctx):
        sent.cctxt.call.side_effect = self._remote('ImageNotFound')
        with pytest.raises(exception.ImageNotFound) as info:
            api.show(ctx, IMAGE_ID)
        assert str(info.value) == 'Image x could not be found.'
        assert info.value.kwargs['code'] == 404
        assert isinstance(info.value.__cause__, messaging.RemoteError)

    @pytest.mark.parametrize(
        'name, base',
        [
            ('PathNotAllowed', exception.InvalidPath),
            ('ImageChecksumMismatch', exception.ImageDownloadFailed),
            ('OutOfSpace', exception.InsufficientSpace),
            ('AgentError', exception.ImageAgentException),
            ('ImageFormatMismatch', exception.ImageUnacceptable),
            ('ConversionLimitExceeded', exception.ImageConversionFailed),
        ],
    )
    def test_subclasses_keep_their_bases(self, api, sent, ctx, name, base):
        sent.cctxt.call.side_effect = self._remote(name, 'it failed')
        with pytest.raises(base) as info:
            api.download(ctx, IMAGE_ID, '/srv/x', host='h')
        assert type(info.value) is getattr(exception, name)

    @pytest.mark.parametrize(
        'name', ['NoSuchMethod', 'ValueError', 'LOG', '_', 'Any', None]
    )
    def test_other_remote_errors_are_left_alone(self, api, sent, ctx, name):
        sent.cctxt.call.side_effect = self._remote(name)
        with pytest.raises(messaging.RemoteError) as info:
            api.ping(ctx)
        assert info.value.exc_type == name

    def test_a_typed_error_is_raised_as_it_came(self, api, sent, ctx):
        error = exception.ImageNotFound(image_id=IMAGE_ID)
        sent.cctxt.call.side_effect = error
        with pytest.raises(exception.ImageNotFound) as info:
            api.show(ctx, IMAGE_ID)
        assert info.value is error

    def test_precache_reports_the_class(self, api, sent, ctx):
        sent.cctxt.call.side_effect = [
            {'version': '1.1'},
            self._remote('CacheDisabled', 'no cache'),
        ]
        results = api.precache(ctx, [IMAGE_ID], ['h'], notifier=mock.Mock())
        assert results['h'][IMAGE_ID]['error_class'] == 'CacheDisabled'


class TestUpgradeLevels:
    def test_a_release_name_pins_its_version(self, transport, config):
        config.config(group='upgrade_levels', image_agent='hibiscus')
        api = rpcapi.ImageAgentAPI(transport=transport)
        assert api.version_cap == '1.1'

    def test_every_release_names_a_known_version(self):
        newest = rpcapi.ImageAgentAPI.RPC_API_VERSION
        for version in rpcapi.ImageAgentAPI.VERSION_ALIASES.values():
            assert tuple(map(int, version.split('.'))) <= tuple(
                map(int, newest.split('.'))
            )

    def test_a_bad_level_fails_at_construction(self, transport, config):
        config.config(group='upgrade_levels', image_agent='newest')
        with pytest.raises(exception.InvalidConfigurationValue):
            rpcapi.ImageAgentAPI(transport=transport)

    def test_the_argument_wins_over_the_option(self, transport, config):
        config.config(group='upgrade_levels', image_agent='1.0')
        api = rpcapi.ImageAgentAPI(transport=transport, version_cap='1.1')
        assert api.can_send_version('1.1')

    @pytest.fixture
    def auto_api(self, transport, config, monkeypatch):
        """A client with auto, whose agents report ``versions[host]``."""
        config.config(group='upgrade_levels', image_agent='auto')
        api = rpcapi.ImageAgentAPI(transport=transport)
        api.versions = {None: '1.1', 'old': '1.0', 'new': '1.1'}
        api.calls = []

        def call(prepared, ctxt, method, **kwargs):
            host = prepared.cctxt.target.server
            api.calls.append((method, host))
            if method == 'ping':
                return {'host': host, 'version': api.versions[host]}
            if method == 'precache':
                return {i: {'status': 'cached'} for i in kwargs['image_ids']}
            return {}

        monkeypatch.setattr(api, '_call_with', call)
        return api

    def test_auto_asks_each_agent_once(self, auto_api, ctx):
        auto_api.list_cache(ctx, 'new')
        auto_api.list_cache(ctx, 'new')
        assert auto_api.calls == [
            ('ping', 'new'),
            ('list_cache', 'new'),
            ('list_cache', 'new'),
        ]

    def test_auto_refuses_what_an_old_agent_lacks(self, auto_api, ctx):
        with pytest.raises(exception.RPCVersionCapped) as info:
            auto_api.evict(ctx, IMAGE_ID, 'old')
        assert 'auto: 1.0' in str(info.value)
        assert auto_api.calls == [('ping', 'old')]

    def test_auto_1_0_calls_need_no_question(self, auto_api, ctx):
        auto_api.show(ctx, IMAGE_ID, host='old')
        assert auto_api.calls == [('show', 'old')]

    def test_auto_can_send_version(self, auto_api, ctx):
        # Nothing known and no context to ask with: only 1.0 is sure.
        assert auto_api.can_send_version('1.0')
        assert not auto_api.can_send_version('1.1', host='new')
        assert auto_api.can_send_version('1.1', ctx, host='new')
        assert auto_api.can_send_version('1.1', host='new')
        assert not auto_api.can_send_version('1.1', ctx, host='old')

    def test_auto_precache_uses_each_hosts_ping(self, auto_api, ctx):
        results = auto_api.precache(
            ctx, [IMAGE_ID], ['old', 'new'], notifier=mock.Mock()
        )
        assert results['old'][IMAGE_ID]['error_class'] == 'RPCVersionCapped'
        pings = [c for c in auto_api.calls if c[0] == 'ping']
        assert sorted(pings) == [('ping', 'new'), ('ping', 'old')]
        assert ('precache', 'new') in auto_api.calls
        assert ('precache', 'old') not in auto_api.calls

    def test_an_agent_without_a_version_is_1_0(self, auto_api, ctx):
        auto_api.versions['old'] = None
        assert not auto_api.can_send_version('1.1', ctx, host='old')


def test_calls_go_to_the_agents_exchange_whatever_the_callers(
    transport, config
):
    """Nova's transport defaults to control_exchange "nova": the client's
    target names the agents' exchange itself."""
    api = rpcapi.ImageAgentAPI(transport=transport)
    assert api.client.target.exchange == 'image-agent'


class TestNoAgent:
    def test_every_call_is_published_with_the_mandatory_flag(
        self, api, sent, ctx
    ):
        api.show(ctx, IMAGE_ID)
        assert sent.options['transport_options'].at_least_once
        api.download(ctx, IMAGE_ID, '/srv/x', host='h')
        assert sent.options['transport_options'].at_least_once

    def test_no_queue_is_a_typed_error_naming_topic_and_host(
        self, api, sent, ctx
    ):
        sent.cctxt.call.side_effect = messaging.MessageUndeliverable(
            Exception('NO_ROUTE'), 'openstack', 'image-agent.node-3', {}
        )
        with pytest.raises(exception.AgentNotListening) as e:
            api.show(ctx, IMAGE_ID, host='node-3')
        message = str(e.value)
        assert 'topic image-agent, host node-3' in message
        assert 'image-agent.node-3' in message
        assert 'is image-agent running' in message
        assert 'credentials' in message
        # Callers that caught MessagingTimeout keep working.
        assert isinstance(e.value, messaging.MessagingTimeout)

    def test_a_broker_refusing_the_caller_is_a_typed_error(
        self, api, sent, ctx
    ):
        sent.cctxt.call.side_effect = kombu_exceptions.OperationalError(
            '[Errno 111] Connection refused'
        )
        with pytest.raises(exception.BrokerUnreachable) as e:
            api.ping(ctx, host='node-3')
        assert 'Connection refused' in str(e.value)
        assert 'topic image-agent, host node-3' in str(e.value)
        # Callers that caught MessagingTimeout keep working.
        assert isinstance(e.value, messaging.MessagingTimeout)

    def test_no_answer_is_a_typed_error_without_message_id(
        self, transport, sent, ctx, monkeypatch
    ):
        api = rpcapi.ImageAgentAPI(transport=transport, timeout=7)
        monkeypatch.setattr(api.client, 'prepare', lambda **o: sent.cctxt)
        sent.cctxt.call.side_effect = messaging.MessagingTimeout(
            'Timed out waiting for a reply to message ID 0123abcd'
        )
        with pytest.raises(exception.AgentTimeout) as e:
            api.ping(ctx)
        assert 'topic image-agent, any host within 7 s' in str(e.value)
        assert '0123abcd' not in str(e.value)
        assert isinstance(e.value, messaging.MessagingTimeout)

    def test_a_timed_out_create_says_how_to_learn_what_happened(
        self, api, sent, ctx
    ):
        sent.cctxt.call.side_effect = messaging.MessagingTimeout('late')
        with pytest.raises(exception.AgentTimeout) as e:
            api.create(ctx, {'name': 'n'}, idempotency_key='k-1')
        assert 'idempotency key k-1' in str(e.value)


class TestDeadlines:
    def sent_deadline(self, sent):
        return sent.cctxt.call.call_args.args[0][deadline.CONTEXT_KEY]

    def test_a_plain_call_may_start_within_its_timeout(
        self, transport, sent, ctx, monkeypatch
    ):
        api = rpcapi.ImageAgentAPI(transport=transport, timeout=9)
        monkeypatch.setattr(api.client, 'prepare', lambda **o: sent.cctxt)
        api.show(ctx, IMAGE_ID)
        assert self.sent_deadline(sent)['start_within'] == 9

    def test_the_default_timeout_is_oslo_messagings(
        self, api, sent, ctx, config
    ):
        config.config(rpc_response_timeout=42)
        api.show(ctx, IMAGE_ID)
        assert self.sent_deadline(sent)['start_within'] == 42

    def test_a_transfer_must_start_within_its_heartbeat_window(
        self, api, sent, ctx, config
    ):
        config.config(group='image_agent', call_monitor_timeout=10)
        api.download(ctx, IMAGE_ID, '/srv/x', host='h')
        assert self.sent_deadline(sent)['start_within'] == 4
        assert sent.options['timeout'] == 6 * 3600

    def test_a_short_client_timeout_shortens_the_heartbeat_window(
        self, transport, sent, ctx, monkeypatch
    ):
        api = rpcapi.ImageAgentAPI(transport=transport, timeout=5)
        options = {}
        monkeypatch.setattr(
            api.client,
            'prepare',
            lambda **o: options.update(o) or sent.cctxt,
        )
        api.download(ctx, IMAGE_ID, '/srv/x', host='h')
        assert options['call_monitor_timeout'] == 5


class TestExpiredRequests:
    def test_a_refused_request_is_sent_once_more_with_a_new_deadline(
        self, api, sent, ctx, monkeypatch
    ):
        # Sending waited for the broker: the agent refused it, unrun.
        stamps = iter([100.0, 160.0])
        monkeypatch.setattr(deadline.time, 'time', lambda: next(stamps))
        sent.cctxt.call.side_effect = [
            exception.RequestExpired(method='show', waited=7, start_within=5),
            {'id': IMAGE_ID},
        ]
        assert api.show(ctx, IMAGE_ID) == {'id': IMAGE_ID}
        sent_at = [
            c.args[0][deadline.CONTEXT_KEY]['sent_at']
            for c in sent.cctxt.call.call_args_list
        ]
        assert sent_at == [100.0, 160.0]

    def test_refused_twice_is_the_callers_error(self, api, sent, ctx):
        sent.cctxt.call.side_effect = exception.RequestExpired(
            method='show', waited=7, start_within=5
        )
        with pytest.raises(exception.RequestExpired):
            api.show(ctx, IMAGE_ID)
        assert sent.cctxt.call.call_count == 2
