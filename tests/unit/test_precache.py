"""Pre-caching on many hosts: the caller's fan-out and the agent's share."""

import threading
import time

import oslo_messaging as messaging
import pytest

from image_agent import exception
from image_agent import manager
from image_agent import rpcapi
from image_agent import transfers
from image_agent.image import glance as glance_mod


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, context, event_type, payload, error=False):
        self.events.append((event_type, payload, error))


@pytest.fixture
def transport(config):
    transport = messaging.get_rpc_transport(config.conf, url='fake://')
    yield transport
    transport.cleanup()


class FakeAgents:
    """Stands in for the agents behind ``_call_with``."""

    def __init__(self, down=(), failing=(), delay=0.0, peers=False, liar=None):
        self.peers = peers
        self.liar = liar
        self.sent = []
        self.down = set(down)
        self.failing = set(failing)
        self.delay = delay
        self.calls = []
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, prepared, ctxt, method, **kwargs):
        cctxt = prepared.cctxt
        host = cctxt.target.server
        self.calls.append((host, method, cctxt.target.version))
        self.sent.append((host, method, cctxt.target.version, kwargs))
        if host in self.down:
            raise messaging.MessagingTimeout('no answer')
        if method != 'precache':
            if self.peers:
                return {'host': host, 'peer_url': 'http://%s:9393' % host}
            return {'host': host}
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.delay)
        with self._lock:
            self.running -= 1
        if host in self.failing:
            raise exception.CacheDisabled()
        outcome = {'status': 'cached'}
        if self.liar in (kwargs.get('peers') or ()):
            outcome['rejected_peers'] = [self.liar]
        return {
            image_id: dict(outcome, image_id=image_id)
            for image_id in kwargs['image_ids']
        }


@pytest.fixture
def api(transport):
    return rpcapi.ImageAgentAPI(transport=transport)


def use(api, monkeypatch, agents):
    monkeypatch.setattr(api, '_call_with', agents)
    return agents


class TestFanOut:
    def test_every_host_and_image_gets_an_outcome(self, api, monkeypatch, ctx):
        agents = use(api, monkeypatch, FakeAgents(down={'h3'}, failing={'h2'}))
        notes = Recorder()
        seen = []
        result = api.precache(
            ctx,
            ['a', 'b', 'a'],
            ['h1', 'h2', 'h3'],
            notifier=notes,
            progress=lambda host, outcomes, done, total: seen.append(
                (host, done, total)
            ),
        )
        assert list(result) == ['h1', 'h2', 'h3']
        assert {k: v['status'] for k, v in result['h1'].items()} == {
            'a': 'cached',
            'b': 'cached',
        }
        assert result['h2']['a']['status'] == 'error'
        assert result['h2']['a']['error_class'] == 'CacheDisabled'
        assert result['h3']['b']['status'] == 'skipped'
        assert result['h3']['b']['error_class'] == 'MessagingTimeout'
        # A host that did not answer its ping is not asked to pre-cache.
        assert ('h3', 'precache', '1.1') not in agents.calls
        assert ('h1', 'precache', '1.1') in agents.calls
        assert sorted(h for h, _, _ in seen) == ['h1', 'h2', 'h3']
        assert [d for _, d, _ in seen] == [1, 2, 3]
        types = [event for event, _, _ in notes.events]
        assert types[0] == 'image.precache.start'
        assert types[1:4] == ['image.precache.progress'] * 3
        assert types[4] == 'image.precache.end'
        progress = {p['host']: p for e, p, _ in notes.events[1:4]}
        assert progress['h1']['images_cached'] == ['a', 'b']
        assert progress['h1']['images_failed'] == []
        assert progress['h3']['images_failed'] == ['a', 'b']
        assert sorted(p['index'] for p in progress.values()) == [1, 2, 3]
        assert {p['total'] for p in progress.values()} == {3}
        end = notes.events[-1]
        assert end[1]['summary'] == {'cached': 2, 'error': 2, 'skipped': 2}
        assert end[2] is True  # an error notification: something failed

    def test_agents_that_serve_peers_spread_the_images(
        self, api, monkeypatch, ctx
    ):
        agents = use(api, monkeypatch, FakeAgents(peers=True))
        hosts = ['h%d' % n for n in range(5)]
        api.precache(ctx, ['a'], hosts, notifier=Recorder(), peer_fanout=2)
        sent = {
            host: (version, kwargs.get('peers'))
            for host, method, version, kwargs in agents.sent
            if method == 'precache'
        }
        assert sent['h0'] == ('1.1', None)  # the one copy from Glance
        assert all(v == '1.3' and p for v, p in list(sent.values())[1:])
        assert sent['h1'][1][0] == 'h0' and sent['h2'][1][0] == 'h0'

    def test_a_peer_whose_bytes_were_rejected_is_named_no_more(
        self, api, monkeypatch, ctx
    ):
        agents = use(api, monkeypatch, FakeAgents(peers=True, liar='h0'))
        hosts = ['h%d' % n for n in range(6)]
        api.precache(ctx, ['a'], hosts, notifier=Recorder(), peer_fanout=1)
        named = [
            kwargs.get('peers') or []
            for _, method, _, kwargs in agents.sent
            if method == 'precache'
        ]
        # h1 was sent to h0 and rejected its bytes; nobody after it is.
        assert named[1] == ['h0']
        assert all('h0' not in peers for peers in named[2:])

    def test_no_spreading_with_a_fanout_of_zero(self, api, monkeypatch, ctx):
        agents = use(api, monkeypatch, FakeAgents(peers=True))
        api.precache(
            ctx, ['a'], ['h1', 'h2'], notifier=Recorder(), peer_fanout=0
        )
        assert all(
            version == '1.1' and 'peers' not in kwargs
            for _, method, version, kwargs in agents.sent
            if method == 'precache'
        )

    def test_hosts_run_at_once_up_to_the_bound(self, api, monkeypatch, ctx):
        agents = use(api, monkeypatch, FakeAgents(delay=0.2))
        hosts = ['h%d' % n for n in range(6)]
        started = time.monotonic()
        api.precache(ctx, ['a'], hosts, max_workers=3, notifier=Recorder())
        elapsed = time.monotonic() - started
        assert agents.most == 3
        assert elapsed < 0.2 * 6 * 0.75

    def test_the_version_cap_refuses_before_sending(
        self, transport, ctx, monkeypatch
    ):
        api = rpcapi.ImageAgentAPI(transport=transport, version_cap='1.0')
        agents = use(api, monkeypatch, FakeAgents())
        for call in (
            lambda: api.precache(ctx, ['a'], ['h1'], notifier=Recorder()),
            lambda: api.list_cache(ctx, 'h1'),
            lambda: api.evict(ctx, 'a', 'h1'),
        ):
            with pytest.raises(exception.RPCVersionCapped):
                call()
        assert agents.calls == []

    def test_cache_calls_target_the_host(self, api, monkeypatch, ctx):
        agents = use(api, monkeypatch, FakeAgents())
        api.list_cache(ctx, 'h1')
        api.evict(ctx, 'a', 'h2')
        assert agents.calls == [
            ('h1', 'list_cache', '1.1'),
            ('h2', 'evict', '1.1'),
        ]


class TestAgentShare:
    @pytest.fixture
    def endpoint(self, glance, glance_http, tmp_path, keystone):
        service = glance_mod.GlanceImageService()
        from image_agent import cache as cache_mod

        xfers = transfers.Transfers(
            service,
            [str(tmp_path)],
            None,
            cache=cache_mod.ImageCache(str(tmp_path / 'cache')),
        )
        return manager.ImageAgentManager(
            'node-1', 'ia', service, xfers, keystone.validator()
        )

    def test_each_image_has_its_outcome(
        self, endpoint, glance, admin_token_ctx
    ):
        ctx = admin_token_ctx
        good = glance.add_image(data=b'abc' * 100)
        result = endpoint.precache(ctx, image_ids=[good['id'], 'missing'])
        assert result[good['id']]['status'] == 'cached'
        assert result['missing']['status'] == 'error'
        assert result['missing']['error_class'] == 'ImageNotFound'
        again = endpoint.precache(ctx, image_ids=[good['id']])
        assert again[good['id']]['status'] == 'existing'
        listing = endpoint.list_cache(ctx)
        assert [e['image_id'] for e in listing['entries']] == [good['id']]
        evicted = endpoint.evict(ctx, image_id=good['id'])
        assert len(evicted['evicted']) == 1
        assert endpoint.list_cache(ctx)['entries'] == []

    def test_arguments_of_the_wrong_type_are_refused(
        self, endpoint, admin_token_ctx
    ):
        ctx = admin_token_ctx
        from oslo_messaging.rpc import dispatcher as rpc_dispatcher

        for call in (
            lambda: endpoint.precache(ctx, image_ids='abc'),
            lambda: endpoint.precache(ctx, image_ids=[1]),
            lambda: endpoint.evict(ctx, image_id=['x']),
            # Peers are host names in a bounded list, nothing else.
            lambda: endpoint.precache(ctx, image_ids=['a'], peers='h1'),
            lambda: endpoint.precache(ctx, image_ids=['a'], peers=[{}]),
            lambda: endpoint.precache(ctx, image_ids=['a'], peers=['']),
            lambda: endpoint.precache(
                ctx,
                image_ids=['a'],
                peers=['h'] * (manager.MAX_PEER_HOSTS + 1),
            ),
        ):
            with pytest.raises(rpc_dispatcher.ExpectedException) as e:
                call()
            assert isinstance(e.value.exc_info[1], exception.InvalidInput)
