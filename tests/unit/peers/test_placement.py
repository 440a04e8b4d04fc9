"""Who fetches from whom: a tree that grows as hosts finish."""

from image_agent.peers import placement


def run(spread, room=100, fail=()):
    """Start what is ready, finish hosts one by one; the peers each got."""
    given, running = {}, []
    while True:
        for host, peers in spread.ready(room - len(running)):
            given[host] = peers
            running.append(host)
        if not running:
            return given
        host = running.pop(0)
        spread.finished(host, host not in fail)


class TestSpread:
    def test_one_seed_fetches_from_glance_and_then_serves(self):
        hosts = ['h%d' % i for i in range(8)]
        spread = placement.Spread(hosts, set(hosts), fanout=2)
        first = spread.ready(10)
        assert first == [('h0', [])]  # one copy from Glance
        assert spread.ready(10) == []  # the others wait for a source
        spread.finished('h0', True)
        assert spread.ready(10) == [('h1', ['h0']), ('h2', ['h0'])]

    def test_every_host_but_the_seed_gets_a_peer(self):
        hosts = ['h%d' % i for i in range(20)]
        given = run(placement.Spread(hosts, set(hosts), fanout=3))
        assert sorted(given) == sorted(hosts)
        assert [h for h, p in given.items() if not p] == ['h0']

    def test_a_source_serves_at_most_fanout_hosts_at_once(self):
        hosts = ['h%d' % i for i in range(10)]
        spread = placement.Spread(hosts, set(hosts), fanout=2)
        spread.ready(10)
        spread.finished('h0', True)
        started = spread.ready(10)
        assert [p[0] for _, p in started] == ['h0', 'h0']

    def test_fallback_peers_follow_the_source(self):
        hosts = ['h%d' % i for i in range(10)]
        given = run(placement.Spread(hosts, set(hosts), fanout=1))
        assert len(given['h9']) == placement.MAX_PEERS
        assert len(set(given['h9'])) == placement.MAX_PEERS

    def test_hosts_that_cannot_serve_start_at_once_from_glance(self):
        hosts = ['old1', 'new1', 'old2', 'new2']
        spread = placement.Spread(hosts, {'new1', 'new2'}, fanout=2)
        assert spread.ready(10) == [
            ('old1', []),
            ('old2', []),
            ('new1', []),
        ]

    def test_without_fanout_everyone_starts_from_glance(self):
        hosts = ['h%d' % i for i in range(5)]
        spread = placement.Spread(hosts, set(hosts), fanout=0)
        assert spread.ready(10) == [(h, []) for h in hosts]

    def test_a_failed_seed_is_replaced_by_the_next_host(self):
        hosts = ['h0', 'h1', 'h2']
        given = run(placement.Spread(hosts, set(hosts), fanout=2), fail={'h0'})
        assert given['h0'] == [] and given['h1'] == []
        assert given['h2'] == ['h1']

    def test_a_distrusted_host_is_named_no_more(self):
        hosts = ['h0', 'h1', 'h2', 'h3']
        spread = placement.Spread(hosts, set(hosts), fanout=1)
        spread.ready(10)
        spread.finished('h0', True)
        assert spread.ready(10) == [('h1', ['h0'])]
        spread.finished('h1', True)
        spread.distrust(['h0'])
        started = spread.ready(10)
        assert started == [('h2', ['h1'])]

    def test_the_room_bounds_the_hosts_started(self):
        hosts = ['h%d' % i for i in range(6)]
        spread = placement.Spread(hosts, set(hosts), fanout=5)
        spread.ready(1)
        spread.finished('h0', True)
        assert len(spread.ready(2)) == 2


class TestStreaming:
    """With streaming, a host serves while it still downloads."""

    def test_a_downloading_host_is_a_source_at_once(self):
        hosts = ['h%d' % i for i in range(5)]
        spread = placement.Spread(hosts, set(hosts), fanout=2, streaming=True)
        assert spread.ready(10) == [('h0', [])]
        assert spread.waiting() == ['h0']
        spread.downloading('h0')
        assert spread.ready(10) == [('h1', ['h0']), ('h2', ['h0'])]
        assert spread.waiting() == ['h1', 'h2']

    def test_a_source_whose_download_failed_is_dropped(self):
        hosts = ['h0', 'h1', 'h2']
        spread = placement.Spread(hosts, set(hosts), fanout=1, streaming=True)
        spread.ready(10)
        spread.downloading('h0')
        assert spread.ready(10) == [('h1', ['h0'])]
        spread.finished('h0', False)
        spread.finished('h1', True)
        assert spread.ready(10) == [('h2', ['h1'])]

    def test_without_streaming_nobody_is_watched(self):
        hosts = ['h0', 'h1']
        spread = placement.Spread(hosts, set(hosts), fanout=1)
        spread.ready(10)
        assert spread.waiting() == []
