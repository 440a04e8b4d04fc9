"""Property-based fuzzing of every RPC method through a real agent.

Hypothesis draws the arguments of each method (image ids, hrefs, metadata,
paths with ``..``, symbolic links, FIFOs, devices, NUL bytes, huge strings,
wrong types, missing and unknown arguments, malformed request contexts)
and sends them over RabbitMQ to a real ``image-agent``. For every case:

* the agent answers in time, with a result or an error of
  ``image_agent.exception`` raised as itself on the caller's side (never a
  ``RemoteError``, never the catch-all ``AgentError``);
* the agent does not die: same worker pid, no restart, still answering;
* nothing is written outside the download roots: a sentinel tree next to
  the roots (reached through links and ``..``) is unchanged, no new file
  appears anywhere under the test's area outside the roots, no image in
  Glance holds the bytes of a file outside the roots, and no href sent as
  an image id ever makes the agent connect to the server it names.

``IMAGE_AGENT_FUZZ_EXAMPLES`` (default 170, so about 2,000 cases in all)
is the number of cases per test.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import uuid

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from tests.faults import helpers
from tests.faults import report
from tests.faults.fuzz_strategies import JSON_ANY
from tests.faults.fuzz_strategies import MISSING
from tests.faults.fuzz_strategies import NASTY_TEXT
from tests.faults.fuzz_strategies import WRONG_TYPE
from tests.faults.fuzz_strategies import Canary
from tests.faults.fuzz_strategies import image_ids
from tests.faults.fuzz_strategies import local_paths
from tests.faults.fuzz_strategies import metadata
from tests.faults.fuzz_strategies import weighted

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get('IMAGE_AGENT_FUZZ_EXAMPLES', '170'))
CALL_TIMEOUT = 30
# Set: record untyped answers without failing (to survey a new build).
EXPLORE = bool(os.environ.get('IMAGE_AGENT_FUZZ_EXPLORE'))
SCENARIO = '6. Fuzzed RPC arguments'

# In CI the same cases run every time, so that a submission's result does
# not depend on the draw; by hand each run explores new cases.
DERANDOMIZE = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=DERANDOMIZE,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


class FuzzEnv:
    """The fuzzed agent, its roots, the sentinels and the judge."""

    def __init__(self, deployment, agent_factory, api, image_service):
        self.area = helpers.own_tempdir('fuzz')
        self.r1 = os.path.join(self.area, 'roots', 'r1')
        self.r2 = os.path.join(self.area, 'roots', 'r2')
        self.outside = os.path.join(self.area, 'outside')
        self.stray = self.area + '-stray'  # a sibling that must not appear
        for d in (self.r1, self.r2, os.path.join(self.outside, 'dir')):
            os.makedirs(d)
        self.secret = os.urandom(4096)
        with open(os.path.join(self.outside, 'secret'), 'wb') as f:
            f.write(self.secret)
        with open(os.path.join(self.outside, 'dir', 'file'), 'wb') as f:
            f.write(b'sentinel')
        self._links()
        self.canary = Canary()
        self.location_canary = Canary()
        self.agent = agent_factory(
            'fuzz-%s' % uuid.uuid4().hex[:6],
            options={
                'agent': {
                    'download_roots': '%s,%s' % (self.r1, self.r2),
                    'free_space_margin_mb': '0',
                }
            },
        )
        self.api = api
        self.image_service = image_service
        self.deployment = deployment
        self.outcomes: dict[str, collections.Counter] = {}
        self.bad: list[tuple[str, dict, str]] = []
        self.calls = 0
        self.sent_paths: set[str] = set()
        self.known: collections.Counter = collections.Counter()

    def _links(self) -> None:
        r1 = self.r1
        os.symlink(self.outside, os.path.join(r1, 'escape'))
        os.symlink(
            os.path.join(self.outside, 'secret'),
            os.path.join(r1, 'escape-file'),
        )
        os.symlink(
            os.path.join(self.outside, 'dir', 'file'),
            os.path.join(r1, 'existing-link'),
        )
        os.symlink('/dev/null', os.path.join(r1, 'devnull'))
        os.symlink('loop', os.path.join(r1, 'loop'))
        os.symlink('..', os.path.join(r1, 'up'))
        os.symlink(self.r2, os.path.join(r1, 'r2link'))
        os.mkfifo(os.path.join(r1, 'fifo'))
        os.mknod(
            os.path.join(r1, 'chardev'), 0o600 | 0o020000, os.makedev(1, 3)
        )
        os.makedirs(os.path.join(r1, 'sub', 'deeper'))
        os.makedirs(os.path.join(self.r2, 'a', 'b'))
        with open(os.path.join(r1, 'data.bin'), 'wb') as f:
            f.write(b'upload me' * 100)
        # Every name a download could take is in use in the sentinel tree.
        for name in ('new', 'disk', 'x'):
            with open(os.path.join(self.outside, name), 'wb') as f:
                f.write(b'sentinel ' + name.encode())

    # -- snapshots ---------------------------------------------------------

    def outside_snapshot(self) -> dict:
        """Everything under the area except inside the two roots."""
        found = helpers.tree(self.area)
        roots = (self.r1 + '/', self.r2 + '/')
        return {p: v for p, v in found.items() if not p.startswith(roots)}

    def stray_files(self) -> list[str]:
        base = os.path.dirname(self.area)
        name = os.path.basename(self.stray)
        return [n for n in os.listdir(base) if n.startswith(name)]

    # -- calls -------------------------------------------------------------

    def call(self, ctxt, method: str, kwargs: dict, transfer=False):
        options = {'server': self.agent.host, 'timeout': CALL_TIMEOUT}
        if transfer:
            options['call_monitor_timeout'] = 10
        cctxt = self.api.client.prepare(**options)
        return cctxt.call(ctxt, method, **kwargs)

    def judge(
        self,
        ctxt,
        method: str,
        kwargs: dict,
        transfer: bool = False,
        context_fuzzed: bool = False,
    ):
        """Make one call; record it; fail on anything but a typed answer.

        An untyped answer of a known bug (each has a strict xfail test in
        test_typed_errors.py) is counted, not failed.
        """
        for value in kwargs.values():
            if isinstance(value, str) and value.startswith('/'):
                self.sent_paths.add(value)
        self.calls += 1
        report.REPORT.row(SCENARIO).add(calls=1)
        counter = self.outcomes.setdefault(method, collections.Counter())
        try:
            result = self.call(ctxt, method, kwargs, transfer)
        except Exception as e:  # noqa: BLE001 - judged here
            name = type(e).__name__.removesuffix('_Remote')
            counter[name] += 1
            if helpers.is_typed(e):
                report.REPORT.row(SCENARIO).error(e)
                return None
            bug = known_bug(method, e, context_fuzzed)
            if bug is not None:
                report.REPORT.row(SCENARIO).add(known_bugs=1)
                self.known[bug] += 1
                return None
            report.REPORT.row(SCENARIO).add(failures=1)
            self.bad.append((method, kwargs, helpers.describe(e)))
            if EXPLORE:
                return None
            raise AssertionError(
                '%s(%s) -> %s' % (method, _short(kwargs), helpers.describe(e))
            ) from e
        counter['ok'] += 1
        return result


# Untyped answers of known bugs, by the text of the error (class: message):
# counted in the summary, not failed. Each entry needs a deterministic
# strict-xfail case of its own (test_typed_errors.py); remove it when the
# bug is fixed. Bugs A-E and H of test_typed_errors.py and a metadata key
# borrowing the service credentials, found by this fuzzing, are fixed.
KNOWN_BUGS: dict[str, re.Pattern] = {}


def known_bug(method: str, error: BaseException, context_fuzzed: bool):
    text = helpers.describe(error)
    for name, pattern in KNOWN_BUGS.items():
        if pattern.search(text):
            return name
    return None


def _short(kwargs: dict) -> str:
    text = ', '.join('%s=%r' % item for item in kwargs.items())
    return text if len(text) < 400 else text[:400] + '...'


# -- fixtures -----------------------------------------------------------------


def _image(env, ctxt, name, path=None, **meta) -> str:
    meta = {
        'name': 'fuzz-fixture-%s' % name,
        'disk_format': 'raw',
        'container_format': 'bare',
        **meta,
    }
    return env.api.create(ctxt, meta, path=path, host=env.agent.host)['id']


@pytest.fixture(scope='module')
def fuzz(deployment, agent_factory, api):
    from tests.functional.glance_fixtures import make_context

    env = FuzzEnv(deployment, agent_factory, api, None)
    env.demo = make_context(deployment, 'demo')
    env.alt = make_context(deployment, 'alt')
    data = os.path.join(env.r1, 'data.bin')
    env.demo_before = {
        i['id'] for i in api.detail(env.demo, host=env.agent.host)
    }
    images = {
        'fuzz': _image(env, env.demo, 'fuzz', data),
        'target': _image(env, env.demo, 'target', data),
        'queued': _image(env, env.demo, 'queued'),
        'alt_private': _image(env, env.alt, 'alt', data),
        'deleted': _image(env, env.demo, 'deleted'),
    }
    api.delete(env.demo, images['deleted'], host=env.agent.host)
    env.victims = [_image(env, env.demo, 'victim-%d' % i) for i in range(3)]
    env.images = images
    env.alt_before = _fingerprint(
        api.show(env.alt, images['alt_private'], host=env.agent.host)
    )
    env.before = env.outside_snapshot()
    env.worker = api.ping(env.demo, host=env.agent.host)['pid']
    try:
        yield env
    finally:
        _remove_images(env)
        env.canary.close()
        env.location_canary.close()
        env.agent.stop()
        shutil.rmtree(env.area, ignore_errors=True)


def _fingerprint(image: dict) -> dict:
    keys = ('name', 'status', 'visibility', 'os_hash_value', 'properties')
    return {k: image.get(k) for k in keys}


def _remove_images(env) -> None:
    """Delete what the fuzzing made (protected ones unprotected first)."""
    for ctxt in (env.demo, env.alt):
        with contextlib.suppress(Exception):
            listed = env.api.detail(ctxt, host=env.agent.host)
            for image in listed:
                if image['id'] in env.demo_before:
                    continue
                if image.get('owner') != ctxt.project_id:
                    continue
                with contextlib.suppress(Exception):
                    if image.get('protected'):
                        env.api.update(
                            ctxt,
                            image['id'],
                            {'protected': False},
                            purge_props=False,
                            host=env.agent.host,
                        )
                    env.api.delete(ctxt, image['id'], host=env.agent.host)


def _check_alive(env) -> None:
    """The agent still answers, from the same worker, never restarted."""
    status = env.api.ping(env.demo, host=env.agent.host)
    assert env.agent.alive()
    assert status['pid'] == env.worker, 'the agent worker was replaced'
    assert env.agent.log_text().count('listening on') == 1


# -- one test per method ------------------------------------------------------


def _good_or(env, strategy) -> st.SearchStrategy:
    """Mostly a usable image id, so the other arguments are reached."""
    return weighted((2, st.just(env.images['fuzz'])), (1, strategy))


@pytest.mark.scenario(SCENARIO)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_show(fuzz, row, data):
    image_id = data.draw(image_ids(fuzz, fuzz.images))
    shown = fuzz.judge(fuzz.demo, 'show', {'image_id': image_id})
    if shown is not None:
        assert shown['id'] != fuzz.images['alt_private']


@pytest.mark.scenario(SCENARIO)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_detail(fuzz, row, data):
    params = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                'filters': st.one_of(
                    st.dictionaries(
                        st.sampled_from(
                            [
                                'name',
                                'status',
                                'visibility',
                                'owner',
                                'os_hash_value',
                                'size_min',
                                'member_status',
                                'tag',
                                'id',
                            ]
                        )
                        | NASTY_TEXT,
                        JSON_ANY,
                        max_size=3,
                    ),
                    WRONG_TYPE,
                ),
                'marker': image_ids(fuzz, fuzz.images),
                'limit': st.one_of(
                    st.integers(min_value=-5, max_value=2**40), WRONG_TYPE
                ),
                'page_size': st.one_of(st.integers(), WRONG_TYPE),
                'sort_key': st.one_of(
                    st.sampled_from(['name', 'created_at', 'size']),
                    NASTY_TEXT,
                ),
                'sort_dir': st.one_of(
                    st.sampled_from(['asc', 'desc']), NASTY_TEXT
                ),
                'unknown': JSON_ANY,
            },
        )
    )
    listed = fuzz.judge(fuzz.demo, 'detail', params)
    if listed is not None:
        ids = {i.get('id') for i in listed}
        assert fuzz.images['alt_private'] not in ids


@pytest.mark.scenario(SCENARIO)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_download(fuzz, row, data):
    kwargs = {
        'image_id': data.draw(_good_or(fuzz, image_ids(fuzz, fuzz.images))),
        'path': data.draw(local_paths(fuzz)),
        'overwrite': data.draw(st.one_of(st.booleans(), WRONG_TYPE)),
    }
    result = fuzz.judge(fuzz.demo, 'download', kwargs, transfer=True)
    if result is not None:
        real = os.path.realpath(result['path'])
        assert real.startswith((fuzz.r1 + '/', fuzz.r2 + '/')), real


@pytest.mark.scenario(SCENARIO)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_create(fuzz, row, data):
    kwargs = {
        'image_meta': data.draw(metadata(fuzz)),
        'path': data.draw(st.one_of(st.none(), local_paths(fuzz))),
    }
    fuzz.judge(fuzz.demo, 'create', kwargs, transfer=True)


@pytest.mark.scenario(SCENARIO)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_update(fuzz, row, data):
    images = fuzz.images
    kwargs = {
        'image_id': data.draw(
            st.one_of(
                st.sampled_from([images['target'], images['queued']]),
                image_ids(fuzz, images),
            )
        ),
        'image_meta': data.draw(metadata(fuzz)),
        'path': data.draw(st.one_of(st.none(), local_paths(fuzz))),
        'purge_props': data.draw(st.one_of(st.booleans(), WRONG_TYPE)),
        'store_id': data.draw(
            st.one_of(
                st.none(),
                st.sampled_from(
                    ['fast', 'cheap', 'web', 'x\r\nX-Roles: admin']
                ),
                NASTY_TEXT,
                WRONG_TYPE,
            )
        ),
        'base_image_ref': data.draw(
            st.one_of(st.none(), image_ids(fuzz, images))
        ),
    }
    updated = fuzz.judge(fuzz.demo, 'update', kwargs, transfer=True)
    if updated is not None:
        assert updated.get('id') != images['alt_private'], kwargs


@pytest.mark.scenario(SCENARIO)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_delete(fuzz, row, data):
    image_id = data.draw(
        st.one_of(
            st.sampled_from(fuzz.victims + [fuzz.images['alt_private']]),
            image_ids(fuzz, fuzz.images).filter(
                lambda i: (
                    i != fuzz.images['fuzz']
                    and not (isinstance(i, str) and fuzz.images['fuzz'] in i)
                )
            ),
        )
    )
    fuzz.judge(fuzz.demo, 'delete', {'image_id': image_id})


@pytest.mark.scenario(SCENARIO)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_get_location(fuzz, row, data):
    image_id = data.draw(image_ids(fuzz, fuzz.images))
    fuzz.judge(fuzz.demo, 'get_location', {'image_id': image_id})


@pytest.mark.scenario(SCENARIO)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_add_location(fuzz, row, data):
    images = fuzz.images
    kwargs = {
        'image_id': data.draw(
            st.one_of(
                st.sampled_from(
                    [images['queued'], images['target'], images['alt_private']]
                ),
                image_ids(fuzz, images),
            )
        ),
        'url': data.draw(
            st.one_of(
                st.sampled_from(
                    [
                        fuzz.location_canary.url + '/disk',
                        fuzz.deployment.fileserver_url + '/nothing',
                        'file:///etc/passwd',
                        'file://' + os.path.join(fuzz.outside, 'secret'),
                        'http://169.254.169.254/latest/meta-data',
                        'swift+config://ref1/glance/x',
                        'http://[::1',
                    ]
                ),
                NASTY_TEXT,
                WRONG_TYPE,
            )
        ),
        'metadata': data.draw(
            st.one_of(
                st.dictionaries(st.text(max_size=8), JSON_ANY, max_size=3),
                st.sampled_from(
                    [
                        {},
                        {'os_hash_algo': 'sha512', 'os_hash_value': 'x'},
                        {'store': 'fast'},
                    ]
                ),
                WRONG_TYPE,
            )
        ),
    }
    fuzz.judge(fuzz.demo, 'add_location', kwargs)


@pytest.mark.scenario(SCENARIO)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_list_members(fuzz, row, data):
    image_id = data.draw(image_ids(fuzz, fuzz.images))
    fuzz.judge(fuzz.demo, 'list_members', {'image_id': image_id})


METHODS = {
    'ping': [],
    'show': ['image_id'],
    'detail': ['filters', 'marker', 'limit', 'sort_key', 'sort_dir'],
    'download': ['image_id', 'path', 'overwrite'],
    'create': ['image_meta', 'path'],
    'update': [
        'image_id',
        'image_meta',
        'path',
        'purge_props',
        'store_id',
        'base_image_ref',
    ],
    'delete': ['image_id'],
    'get_location': ['image_id'],
    'add_location': ['image_id', 'url', 'metadata'],
    'get_stores': [],
    'list_members': ['image_id'],
}


@pytest.mark.scenario(SCENARIO)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_call_shapes(fuzz, row, data):
    """Missing, unknown and mistyped arguments of every method."""
    method = data.draw(st.sampled_from(sorted(METHODS)))
    # ('self' cannot be sent: it is an argument of the client's call.)
    names = METHODS[method] + ['context', 'kwargs', 'x', '_private']
    kwargs = data.draw(
        st.dictionaries(
            st.sampled_from(names)
            | st.text(max_size=10).filter(lambda n: n != 'self'),
            JSON_ANY,
            max_size=4,
        )
    )
    if method == 'delete' and isinstance(kwargs.get('image_id'), str):
        kwargs['image_id'] = MISSING
    fuzz.judge(fuzz.demo, method, kwargs, transfer=True)


@pytest.mark.scenario(SCENARIO)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_request_context(fuzz, row, data):
    """Malformed or spoofed contexts; the token alone decides access."""
    base = fuzz.demo.to_dict()
    base['service_catalog'] = fuzz.demo.service_catalog
    alt = fuzz.alt
    changes = data.draw(
        st.dictionaries(
            st.sampled_from(
                [
                    'auth_token',
                    'user_id',
                    'project_id',
                    'user',
                    'project_name',
                    'roles',
                    'is_admin',
                    'service_catalog',
                    'global_request_id',
                    'request_id',
                    'read_only',
                    'show_deleted',
                    'system_scope',
                    'domain_id',
                    'user_domain_id',
                ]
            ),
            st.one_of(
                st.sampled_from(
                    [
                        None,
                        '',
                        alt.project_id,
                        alt.user_id,
                        ['admin'],
                        ['admin', 'service'],
                        True,
                        'all',
                        'garbage-token',
                        [{'type': 'image', 'endpoints': 5}],
                    ]
                ),
                NASTY_TEXT,
                WRONG_TYPE,
            ),
            max_size=4,
        )
    )
    ctxt = dict(base, **changes)
    method, kwargs = data.draw(
        st.sampled_from(
            [
                ('ping', {}),
                ('get_stores', {}),
                ('show', {'image_id': fuzz.images['fuzz']}),
                ('show', {'image_id': fuzz.images['alt_private']}),
                ('detail', {}),
            ]
        )
    )
    result = fuzz.judge(ctxt, method, kwargs, context_fuzzed=True)
    # Whatever the context claims, demo's token never shows alt's private
    # image.
    mine = ctxt.get('auth_token') == fuzz.demo.auth_token
    if result is not None and method == 'show' and mine:
        assert result['id'] != fuzz.images['alt_private']


@pytest.mark.scenario(SCENARIO)
def test_fuzz_left_nothing_outside_the_roots(fuzz, row):
    """Runs after the fuzzing above (file order): the damage report."""
    import hashlib

    _check_alive(fuzz)
    after = fuzz.outside_snapshot()
    changed = sorted(
        p
        for p in set(fuzz.before) | set(after)
        if fuzz.before.get(p) != after.get(p)
    )
    stray = fuzz.stray_files()
    created_outside = []
    for path in fuzz.sent_paths:
        real = os.path.realpath(path) if '\0' not in path else None
        if real is None or real.startswith((fuzz.r1 + '/', fuzz.r2 + '/')):
            continue
        new = real.startswith(fuzz.area) and real not in fuzz.before
        if new and real != fuzz.area and os.path.lexists(real):
            created_outside.append(real)
    secret_hash = hashlib.sha512(fuzz.secret).hexdigest()
    leaked = fuzz.api.detail(
        fuzz.demo,
        host=fuzz.agent.host,
        filters={'os_hash_value': secret_hash},
    )
    alt_after = _fingerprint(
        fuzz.api.show(
            fuzz.alt, fuzz.images['alt_private'], host=fuzz.agent.host
        )
    )
    total = sum(sum(c.values()) for c in fuzz.outcomes.values())
    row.note(
        '%d fuzzed calls; agent pid unchanged, never restarted; %d '
        'untyped answers of unknown cause' % (total, len(fuzz.bad))
    )
    for bug, count in sorted(fuzz.known.items()):
        row.note('KNOWN BUG %s: %d case(s)' % (bug, count))
    for method, counter in sorted(fuzz.outcomes.items()):
        row.note(
            '%s: %s'
            % (
                method,
                ', '.join('%s %d' % kv for kv in counter.most_common()),
            )
        )
    row.note(
        'outside the roots: %d changed, %d stray, %d created; canary '
        'connections %d (image-id hrefs), %d (location urls, by Glance); '
        'images holding an outside file: %d; alt\'s private image %s'
        % (
            len(changed),
            len(stray),
            len(created_outside),
            fuzz.canary.connections,
            fuzz.location_canary.connections,
            len(leaked),
            'unchanged' if alt_after == fuzz.alt_before else 'CHANGED',
        )
    )
    groups: dict = {}
    for method, kwargs, error in fuzz.bad:
        key = (method, error[:90])
        groups.setdefault(key, [0, kwargs])[0] += 1
    for (method, error), (count, kwargs) in sorted(groups.items()):
        row.note(
            'UNTYPED x%d %s: %s; e.g. %s'
            % (count, method, error, _short(kwargs)[:200])
        )
    assert changed == []
    assert stray == []
    assert created_outside == []
    assert leaked == []
    assert alt_after == fuzz.alt_before
    assert EXPLORE or fuzz.bad == []
    assert fuzz.canary.connections == 0
    assert helpers.temp_files(fuzz.r1, fuzz.r2) == []
