"""Glance servers dying under the agents' feet.

One server SIGKILLed during a mixed load (shows, listings, downloads,
updates, creates): the calls that are safe to repeat all succeed, and a
download cut by the kill resumes on the other server (HTTP Range) and
completes, verified; creates succeed once or fail with a typed error, and
never make a second image. Both servers down: a typed
``GlanceConnectionFailed`` after the configured attempts, and service again
as soon as one server is back.
"""

import io
import itertools
import os
import threading
import time
import uuid

import pytest

from image_agent import exception
from tests.faults import helpers
from tests.faults.helpers import MiB
from tools.testenv.relay import Relay

pytestmark = pytest.mark.slow

NUM_RETRIES = 3
SEED_SIZE = 16 * MiB  # a download takes long enough to be cut
SEED = os.urandom(SEED_SIZE)
SEED_HASH = helpers.sha512(SEED)


@pytest.fixture(scope='module')
def retrying_agents(agent_factory):
    """Two agents retrying on the other server, quickly.

    The back-off still spans about a second, so that a live server that is
    briefly saturated (a loaded 2-core machine) is asked again after a
    pause rather than four times within a few milliseconds.
    """
    options = {
        'glance': {
            'num_retries': str(NUM_RETRIES),
            'retry_backoff_base': '0.25',
            'retry_backoff_max': '1.0',
        }
    }
    return [
        agent_factory('glance-a-%s' % uuid.uuid4().hex[:4], options=options),
        agent_factory('glance-b-%s' % uuid.uuid4().hex[:4], options=options),
    ]


class MixedLoad:
    """Threads calling every kind of operation until told to stop."""

    def __init__(self, api, agents, ctxt, image, update_id, prefix, row):
        self.api = api
        self.agents = agents
        self.ctxt = ctxt
        self.image = image
        self.update_id = update_id
        self.prefix = prefix
        self.row = row
        self.stop = threading.Event()
        self.counter = itertools.count()
        self.lock = threading.Lock()
        # name -> (succeeded, id or error)
        self.creates: dict[str, tuple[bool, object]] = {}
        self.downloads: list[tuple[str, BaseException | None]] = []
        self.failures: list[str] = []
        self.calls = 0

    def _count(self, op: str, error: BaseException | None = None) -> None:
        with self.lock:
            self.calls += 1
        self.row.add(calls=1)
        if error is not None:
            if helpers.is_typed(error) and op == 'create':
                self.row.error(error)
            else:
                self.row.add(failures=1)
                with self.lock:
                    self.failures.append(
                        '%s: %s' % (op, helpers.describe(error))
                    )

    def run(self, kind: str, n: int) -> None:
        agent = self.agents[n % len(self.agents)]
        while not self.stop.is_set():
            i = next(self.counter)
            error = None
            try:
                if kind == 'show':
                    shown = self.api.show(
                        self.ctxt, self.image['id'], host=agent.host
                    )
                    assert shown['os_hash_value'] == SEED_HASH
                elif kind == 'detail':
                    listed = self.api.detail(
                        self.ctxt,
                        host=agent.host,
                        filters={'name': self.image['name']},
                    )
                    assert [x['id'] for x in listed] == [self.image['id']]
                elif kind == 'update':
                    updated = self.api.update(
                        self.ctxt,
                        self.update_id,
                        {'properties': {'faults_round': str(i)}},
                        purge_props=False,
                        host=agent.host,
                    )
                    assert updated['properties']['faults_round'] == str(i)
                elif kind == 'create':
                    name = '%s%06d' % (self.prefix, i)
                    try:
                        made = self.api.create(
                            self.ctxt,
                            {
                                'name': name,
                                'disk_format': 'raw',
                                'container_format': 'bare',
                            },
                            host=agent.host,
                        )
                        self.creates[name] = (True, made['id'])
                    except Exception as e:
                        self.creates[name] = (False, e)
                        raise
                elif kind == 'download':
                    path = os.path.join(agent.root, 'mixed-%06d' % i)
                    try:
                        self.api.download(
                            self.ctxt, self.image['id'], path, host=agent.host
                        )
                        if helpers.file_sha512(path) != SEED_HASH:
                            self.row.add(bytes_lost=SEED_SIZE)
                        os.unlink(path)
                        self.downloads.append((path, None))
                    except Exception as e:
                        self.downloads.append((path, e))
                        raise
            except Exception as e:  # noqa: BLE001 - counted and judged
                error = e
            self._count(kind, error)


def _run_load(load: MixedLoad, actions, kinds) -> float:
    threads = [
        threading.Thread(target=load.run, args=(kind, n), daemon=True)
        for n, kind in enumerate(kinds)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    try:
        for delay, action in actions:
            time.sleep(delay)
            action()
    finally:
        load.stop.set()
        for t in threads:
            t.join(120)
    assert not any(t.is_alive() for t in threads), 'a call hangs'
    return time.monotonic() - started


@pytest.mark.scenario('1. Glance SIGKILL under mixed load')
def test_a_glance_server_killed_under_mixed_load(
    row,
    glances_restored,
    retrying_agents,
    api,
    images,
    image_service,
    demo_context,
):
    deployment = glances_restored
    image = images(demo_context, data=io.BytesIO(SEED))
    target = images(demo_context)
    prefix = 'faults-create-%s-' % uuid.uuid4().hex[:8]
    load = MixedLoad(
        api, retrying_agents, demo_context, image, target['id'], prefix, row
    )
    kinds = ['show', 'show', 'detail', 'update', 'create', 'create']
    kinds += ['download', 'download']

    def kill(index):
        def action():
            deployment.kill_glance(index)
            row.add(faults=1)

        return action

    duration = _run_load(
        load,
        [
            (1.5, kill(0)),
            (3.0, lambda: deployment.start_glance(0)),
            (1.5, kill(1)),
            (3.0, lambda: deployment.start_glance(1)),
            (1.5, lambda: None),
        ],
        kinds,
    )
    row.note(
        '%d calls in %.1f s, 8 threads, 2 agents; Glance 0 then 1 killed'
        % (load.calls, duration)
    )

    # Every image created is there once, and only if the call said so or
    # failed with a typed error.
    listed = image_service.detail(demo_context, filters={})
    by_name: dict[str, list[str]] = {}
    for found in listed:
        if (found.get('name') or '').startswith(prefix):
            by_name.setdefault(found['name'], []).append(found['id'])
    duplicates = {n: ids for n, ids in by_name.items() if len(ids) > 1}
    unknown = set(by_name) - set(load.creates)
    made_after_error = 0
    for name, (ok, value) in load.creates.items():
        ids = by_name.get(name, [])
        if ok and ids != [value]:
            load.failures.append(
                'create %s: returned %s, found %s' % (name, value, ids)
            )
        if not ok and ids:
            made_after_error += 1
    for ids in by_name.values():
        for image_id in ids:
            image_service.delete(demo_context, image_id)
    row.add(failures=len(duplicates) + len(unknown))
    row.note(
        'creates: %d ok, %d typed errors (%d of which made their image '
        'once), %d duplicates'
        % (
            sum(ok for ok, _ in load.creates.values()),
            sum(not ok for ok, _ in load.creates.values()),
            made_after_error,
            len(duplicates),
        )
    )

    # Downloads: all complete and verified (checked as they finished);
    # a failed one leaves nothing at its destination.
    failed = 0
    for path, error in load.downloads:
        if error is not None:
            failed += 1
            if os.path.lexists(path):
                row.add(bytes_lost=SEED_SIZE)
    leftovers = helpers.temp_files(*(a.root for a in retrying_agents))
    row.note(
        'downloads: %d completed and verified, %d failed'
        % (len(load.downloads) - failed, failed)
    )
    # The stored image survived both kills.
    after = api.download(
        demo_context,
        image['id'],
        os.path.join(retrying_agents[0].root, 'after-kills'),
        host=retrying_agents[0].host,
    )
    assert after['os_hash_value'] == SEED_HASH
    os.unlink(after['path'])

    assert load.failures == [], load.failures[:10]
    assert duplicates == {}
    assert unknown == set()
    assert leftovers == []
    assert row.bytes_lost == 0
    assert load.calls > 50


@pytest.mark.scenario('1. Glance SIGKILL mid-download')
def test_a_download_cut_by_a_glance_kill(
    row,
    glances_restored,
    agent_factory,
    api,
    images,
    demo_context,
):
    """The server streaming a download dies; the download resumes from
    its byte offset on the other server and completes, verified.

    Through a throttled proxy per server, so the kill lands while bytes
    flow, on the server that streams them.
    """
    deployment = glances_restored
    data = os.urandom(16 * MiB)
    image = images(demo_context, data=io.BytesIO(data))
    proxies = []
    for url in deployment.glance_urls:
        proxies.append(Relay.to(url, rate=8 * MiB))
    agent = agent_factory(
        glance_urls=[p.url for p in proxies],
        options={'glance': {'num_retries': str(NUM_RETRIES)}},
    )
    path = os.path.join(agent.root, 'cut')
    try:
        baseline = [p.answer_bytes for p in proxies]
        call = helpers.Background(
            lambda: api.download(
                demo_context, image['id'], path, host=agent.host
            )
        )
        streaming = helpers.wait_until(
            lambda: [
                i
                for i, p in enumerate(proxies)
                if p.answer_bytes - baseline[i] > 3 * MiB
            ],
            30,
            'a download to stream',
        )
        deployment.kill_glance(streaming[0])
        row.add(faults=1, calls=1)
        killed_at = sum(p.answer_bytes for p in proxies) - sum(baseline)
        call.join(90)
        fetched = sum(p.answer_bytes for p in proxies) - sum(baseline)
        if call.error is None:
            row.note(
                'SIGKILL of the streaming server after %.1f MiB: resumed '
                'on the other, completed and verified; %.1f MiB fetched '
                'for a %d MiB image'
                % (killed_at / MiB, fetched / MiB, len(data) // MiB)
            )
        else:
            row.add(failures=1)
            row.note(
                'the cut download failed: %s' % helpers.describe(call.error)
            )
            if os.path.lexists(path):
                row.add(bytes_lost=len(data))
        assert call.error is None, helpers.describe(call.error)
        assert helpers.file_sha512(path) == helpers.sha512(data)
        assert call.result['size'] == len(data)
        # Resumed, not started over: at most a little is fetched twice.
        assert fetched < len(data) + 4 * MiB
        assert helpers.temp_files(agent.root) == []
    finally:
        agent.stop()
        for p in proxies:
            p.close()


@pytest.mark.scenario('1. Both Glance servers down')
def test_both_glance_servers_down_then_one_back(
    row,
    glances_restored,
    retrying_agents,
    api,
    images,
    demo_context,
):
    deployment = glances_restored
    image = images(demo_context, data=io.BytesIO(b'x' * 4096))
    agent = retrying_agents[0]
    assert api.show(demo_context, image['id'], host=agent.host)
    deployment.kill_glance(0)
    deployment.kill_glance(1)
    row.add(faults=2)
    path = os.path.join(agent.root, 'nowhere')
    calls = [
        lambda: api.show(demo_context, image['id'], host=agent.host),
        lambda: api.detail(demo_context, host=agent.host),
        lambda: api.download(demo_context, image['id'], path, host=agent.host),
        lambda: api.update(
            demo_context, image['id'], {'name': 'x'}, host=agent.host
        ),
    ]
    durations = []
    for call in calls:
        started = time.monotonic()
        with pytest.raises(exception.GlanceConnectionFailed) as info:
            try:
                call()
            finally:
                row.add(calls=1)
        durations.append(time.monotonic() - started)
        row.error(info.value)
        assert 'after %d attempt(s)' % (NUM_RETRIES + 1) in info.value.msg
        for url in deployment.glance_urls:
            assert url.split('//', 1)[1] in info.value.msg
    assert not os.path.lexists(path)
    row.note(
        'all down: GlanceConnectionFailed after %d attempts in %.2f-%.2f s'
        % (NUM_RETRIES + 1, min(durations), max(durations))
    )

    deployment.start_glance(1)
    back = time.monotonic()
    shown = api.show(demo_context, image['id'], host=agent.host)
    result = api.download(demo_context, image['id'], path, host=agent.host)
    row.add(calls=2)
    assert shown['id'] == image['id']
    assert result['size'] == 4096
    row.note(
        'one back: the next calls succeed (%.2f s for show + download)'
        % (time.monotonic() - back)
    )
    os.unlink(path)


@pytest.mark.scenario('1. Retries under concurrency')
def test_concurrent_retries_move_to_another_server(
    row,
    deployment,
    agent_factory,
    api,
    images,
    demo_context,
):
    """8 concurrent shows, one server of two dead: all must succeed.

    The dead server holds the first attempts that reach it, then drops
    them together: their retries advance the shared rotation at once. A
    retry must still go to the server its call has not tried (found by
    this suite; fixed in 7e401f5, a strict xfail until then).
    """
    image = images(demo_context, data=io.BytesIO(b'r' * 1024))
    dead = helpers.HoldingServer()
    agent = agent_factory(
        glance_urls=[dead.url, deployment.glance_urls[0]],
        options={'glance': {'num_retries': '1', 'retry_backoff_base': '0'}},
    )
    try:
        # Alone, a call that meets the dead server retries on the other.
        for _ in range(4):
            api.show(demo_context, image['id'], host=agent.host)
            row.add(calls=1)
        dead.hold(4)
        row.add(faults=1)
        calls = [
            helpers.Background(
                lambda: api.show(demo_context, image['id'], host=agent.host)
            )
            for _ in range(8)
        ]
        for call in calls:
            call.join(60)
        errors = [c.error for c in calls if c.error is not None]
        row.add(calls=len(calls), failures=len(errors))
        row.note(
            '8 concurrent shows whose first attempts met the dead server '
            'together: %d failed (every retry must go to the live server)'
            % len(errors)
        )
        assert errors == [], [helpers.describe(e) for e in errors]
    finally:
        agent.stop()
        dead.close()


class CutOnce:
    """A ``halve`` fault for relays: the next answer to a request whose
    line starts with ``match`` is cut, once ``armed``, whichever relay
    it passes (so it spans servers)."""

    def __init__(self) -> None:
        self.match = b''
        self.armed = 0
        self.cut = 0
        self._lock = threading.Lock()

    def __call__(self, request) -> bool:
        with self._lock:
            if self.armed and request.line.startswith(self.match):
                self.armed -= 1
                self.cut += 1
                return True
            return False


@pytest.fixture(scope='module')
def cutting(deployment, agent_factory):
    """An agent whose two Glance servers are behind relays that cut an
    answer mid-body when armed."""
    fault = CutOnce()
    relays = [Relay.to(url, halve=fault) for url in deployment.glance_urls]
    agent = agent_factory(
        glance_urls=[r.url for r in relays],
        options={'glance': {'num_retries': str(NUM_RETRIES)}},
    )
    yield agent, fault
    agent.stop()
    for relay in relays:
        relay.close()


@pytest.mark.scenario('1. Answer cut mid-body')
@pytest.mark.parametrize('operation', ['detail', 'show'])
def test_an_answer_cut_mid_body_is_retried(
    row,
    operation,
    cutting,
    api,
    images,
    demo_context,
):
    """The server answering a listing or a show dies halfway through the
    body; the call is safe to repeat and the other server is up.

    Found by the mixed load above (a listing cut by the kill failed with
    GlanceError: a body broken off was not a connection failure to retry);
    a strict xfail until fixed in 0d2d2c6.
    """
    agent, fault = cutting
    image = images(demo_context, data=io.BytesIO(b'c' * 4096))
    fault.match = {
        'detail': b'GET /v2/images?',
        'show': b'GET /v2/images/%s ' % image['id'].encode(),
    }[operation]
    call = {
        'detail': lambda: api.detail(
            demo_context,
            host=agent.host,
            filters={'name': image['name']},
        ),
        'show': lambda: api.show(demo_context, image['id'], host=agent.host),
    }[operation]
    call()  # warm: schemas cached, nothing cut
    cut_before = fault.cut
    fault.armed = 1
    row.add(faults=1, calls=2)
    try:
        result = call()
    except exception.ImageAgentException as e:
        row.add(failures=1)
        row.note('%s cut mid-body: %s' % (operation, helpers.describe(e)))
        raise
    finally:
        fault.armed = 0
    assert fault.cut == cut_before + 1
    if operation == 'show':
        assert result['id'] == image['id']
    else:
        assert [x['id'] for x in result] == [image['id']]
