"""The agent as a trust boundary: nothing in a request is believed.

Each test plays a caller on the bus who lies about something (the service
catalog, the token, its roles) and checks what the real deployment did.

* A request's catalog names an "evil" image endpoint (a recording relay on
  loopback that forwards to Glance, so that every call would succeed
  through it): the agent sends no request there, in particular not its
  service token, and serves the calls from its own Keystone catalog.
* A token Keystone does not know gets NotAuthorized for every call, the
  cheap ones (ping, list_cache, evict) included, and nothing reaches
  Glance.
* Pre-caching and the cache calls need the admin role of a real token;
  claiming it in the request does not help. ping shows a caller only its
  own project's transfers.
* Locations: with the agent behind recording relays, a plain user's
  get_location and add_location never carry the agent's token to Glance;
  an owner's rbd:// or file:// location is refused before Glance is asked.
* A download outlives the caller's token (an application-credential token
  that expires after 20 s) and is cut after the expiry: with
  ``[service_user] send_service_user_token`` the resume succeeds; without,
  Glance refuses it.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import time
import uuid

import pytest

from image_agent import context as ia_context
from image_agent import exception
from tests.faults import helpers
from tools.testenv import util as testenv_util
from tools.testenv.relay import Relay

pytestmark = pytest.mark.slow


def tokens_seen(relay: Relay) -> set[str]:
    """The tokens (user's and service's) that reached ``relay``."""
    return {
        value
        for request in relay.requests
        for value in (
            request.header('X-Auth-Token'),
            request.header('X-Service-Token'),
        )
        if value
    }


def hostile_catalog(url: str) -> list[dict]:
    """An image service whose every endpoint is ``url``, v2 shaped."""
    endpoint = {'publicURL': url, 'internalURL': url, 'adminURL': url}
    return [
        {
            'type': 'image',
            'name': 'glance',
            'endpoints': [
                dict(endpoint, region='RegionOne'),
                dict(endpoint, region='RegionTwo'),
            ],
        }
    ]


def with_catalog(ctxt, catalog: list[dict]) -> dict:
    values = ctxt.to_dict()
    values['service_catalog'] = catalog
    return values


@pytest.mark.scenario('20. Hostile service catalog')
@pytest.mark.test_timeout(180)
def test_a_hostile_catalog_gets_no_request_and_no_credentials(
    row,
    deployment,
    agent_factory,
    api,
    images,
    demo_context,
    admin_context,
):
    evil = Relay.to(deployment.glance_urls[0])
    # No api_servers: servers come from Keystone (or, before the fix, from
    # the request).
    agent = agent_factory(
        'catalog-%s' % uuid.uuid4().hex[:4],
        options={'glance': {'api_servers': ''}},
    )
    try:
        data = os.urandom(256 * 1024)
        image = images(demo_context, data=io.BytesIO(data))
        demo = with_catalog(demo_context, hostile_catalog(evil.url))
        admin = with_catalog(admin_context, hostile_catalog(evil.url))
        path = os.path.join(agent.root, 'from-catalog')
        calls = {
            'show': lambda: api.show(demo, image['id'], host=agent.host),
            'detail': lambda: api.detail(demo, host=agent.host),
            'download': lambda: api.download(
                demo, image['id'], path, host=agent.host
            ),
            'get_stores': lambda: api.get_stores(demo, host=agent.host),
            'get_location (demo)': lambda: api.get_location(
                demo, image['id'], host=agent.host
            ),
            'get_location (admin)': lambda: api.get_location(
                admin, image['id'], host=agent.host
            ),
        }
        failed = {}
        for name, call in calls.items():
            row.add(calls=1, faults=1)
            try:
                call()
            except exception.ImageAgentException as e:
                failed[name] = helpers.describe(e)
                row.add(failures=1)
        callers = {demo_context.auth_token, admin_context.auth_token}
        foreign = tokens_seen(evil) - callers
        row.note(
            'catalog naming a relay on loopback, %d calls: %d requests '
            'reached it, %d of them with a token no caller sent (the '
            'agent\'s own)' % (len(calls), len(evil.requests), len(foreign))
        )
        if foreign:
            row.add(known_bugs=1)
        assert evil.requests == []
        assert failed == {}
        assert helpers.file_sha512(path) == helpers.sha512(data)
    finally:
        evil.close()
        agent.stop()
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(agent.root, 'from-catalog'))


# -- tokens and roles -----------------------------------------------------


@pytest.fixture(scope='module')
def relays(deployment):
    """A recording relay in front of each Glance server."""
    made = [Relay.to(url) for url in deployment.glance_urls]
    yield made
    for relay in made:
        relay.close()


@pytest.fixture(scope='module')
def cache_agent(agent_factory, relays):
    """An agent with an image cache, talking to Glance through relays."""
    agent = agent_factory(
        'trust-%s' % uuid.uuid4().hex[:4],
        glance_urls=[r.url for r in relays],
        start=False,
    )
    with open(agent.config_file, 'a') as f:
        f.write(
            '[agent]\ncache_dir = %s\n' % os.path.join(agent.root, 'cache')
        )
    agent.start()
    yield agent
    agent.stop()


def _clear(relays):
    for relay in relays:
        relay.requests.clear()


def _seen(relays):
    return [r for relay in relays for r in relay.requests]


def _with(ctxt, **values) -> dict:
    sent = ctxt.to_dict()
    sent['service_catalog'] = ctxt.service_catalog
    sent.update(values)
    return sent


@pytest.mark.scenario('21. Tokens Keystone does not know')
def test_a_fake_token_is_refused_by_every_call(
    row,
    cache_agent,
    relays,
    api,
    images,
    demo_context,
    admin_context,
):
    image = images(demo_context, data=io.BytesIO(b'fake-token' * 100))
    host = cache_agent.host
    path = os.path.join(cache_agent.root, 'fake')
    # A Fernet-looking string, a random word, a real token one byte off;
    # each claiming admin.
    tokens = {
        'anything': 'anything',
        'fernet-like': 'gAAAAAB' + uuid.uuid4().hex * 4,
        'altered': admin_context.auth_token[:-2] + 'xx',
    }
    _clear(relays)
    answered = []
    for label, token in tokens.items():
        liar = _with(admin_context, auth_token=token, roles=['admin'])
        calls = {
            'ping': lambda liar=liar: api.ping(liar, host=host),
            'list_cache': lambda liar=liar: api.list_cache(liar, host),
            'evict': lambda liar=liar: api.evict(liar, image['id'], host),
            'precache': lambda liar=liar: api.precache_host(
                liar, [image['id']], host
            ),
            'show': lambda liar=liar: api.show(liar, image['id'], host=host),
            'download': lambda liar=liar: api.download(
                liar, image['id'], path, host=host
            ),
            'get_location': lambda liar=liar: api.get_location(
                liar, image['id'], host=host
            ),
        }
        for name, call in calls.items():
            row.add(calls=1, faults=1)
            try:
                call()
            except exception.NotAuthorized as e:
                row.error(e)
            else:
                answered.append('%s with %s' % (name, label))
                row.add(failures=1)
    reached = _seen(relays)
    row.note(
        '%d calls with 3 fake tokens claiming admin: %d answered, %d '
        'requests reached Glance' % (row.calls, len(answered), len(reached))
    )
    assert answered == []
    assert reached == []
    assert not os.path.lexists(path)


@pytest.mark.scenario('22. Roles for pre-cache, cache and status')
def test_precache_and_cache_calls_need_the_role_of_a_real_token(
    row,
    cache_agent,
    api,
    images,
    demo_context,
    admin_context,
):
    image = images(demo_context, data=io.BytesIO(os.urandom(64 * 1024)))
    host = cache_agent.host
    claiming = _with(demo_context, roles=['admin', 'service'], is_admin=True)
    refused = {}
    for who, ctxt in (('demo', demo_context), ('demo as admin', claiming)):
        calls = {
            'precache': lambda c=ctxt: api.precache_host(
                c, [image['id']], host
            ),
            'list_cache': lambda c=ctxt: api.list_cache(c, host),
            'evict': lambda c=ctxt: api.evict(c, image['id'], host),
        }
        for name, call in calls.items():
            row.add(calls=1, faults=1)
            try:
                call()
            except exception.NotAuthorized as e:
                row.error(e)
                refused['%s: %s' % (who, name)] = e
            else:
                row.add(failures=1)
    # The admin's token may; and nothing was cached before.
    row.add(calls=3)
    listing = api.list_cache(admin_context, host)
    assert listing['entries'] == []
    done = api.precache_host(admin_context, [image['id']], host)
    assert done[image['id']]['status'] == 'cached'
    assert api.evict(admin_context, image['id'], host)['evicted']
    row.note(
        'precache/list_cache/evict with demo\'s token, honest and claiming '
        'admin: %d of 6 refused; with admin\'s: served' % len(refused)
    )
    assert len(refused) == 6, refused
    assert all(
        isinstance(e, exception.PolicyNotAuthorized) for e in refused.values()
    ), refused


@pytest.mark.scenario('22. Roles for pre-cache, cache and status')
def test_ping_shows_a_caller_only_its_own_projects_transfers(
    row,
    deployment,
    agent_factory,
    api,
    images,
    demo_context,
    alt_context,
    admin_context,
):
    data = os.urandom(4 * helpers.MiB)
    image = images(alt_context, data=io.BytesIO(data))
    proxy = Relay.to(deployment.glance_urls[0], rate=helpers.MiB)
    agent = agent_factory(
        'ping-%s' % uuid.uuid4().hex[:4], glance_urls=[proxy.url]
    )
    try:
        path = os.path.join(agent.root, 'alts-secret-disk')
        call = helpers.Background(
            lambda: api.download(
                alt_context, image['id'], path, host=agent.host
            )
        )
        helpers.wait_until(
            lambda: api.ping(admin_context, host=agent.host)['transfers'],
            30,
            'the transfer',
        )
        row.add(calls=3)
        seen = {
            who: api.ping(ctxt, host=agent.host)['transfers']
            for who, ctxt in (
                ('demo', demo_context),
                ('alt', alt_context),
                ('admin', admin_context),
            )
        }
        call.join(60)
        assert call.error is None, call.error
        row.note(
            'while alt downloads: demo sees %d transfers, alt %d, admin %d'
            % tuple(len(seen[w]) for w in ('demo', 'alt', 'admin'))
        )
        if seen['demo']:
            row.add(failures=1)
        assert seen['demo'] == []
        assert [t['image_id'] for t in seen['alt']] == [image['id']]
        assert [t['path'] for t in seen['admin']] == [
            t['path'] for t in seen['alt']
        ]
    finally:
        agent.stop()
        proxy.close()


# -- locations ----------------------------------------------------------------


@pytest.mark.scenario('23. Locations and the service credentials')
def test_a_plain_users_get_location_never_uses_the_agents_token(
    row,
    cache_agent,
    relays,
    api,
    images,
    demo_context,
    alt_context,
    admin_context,
):
    """alt may see demo's community image; the location API (service or
    admin only in Glance) must not be asked for it with the agent's
    credentials. alt gets what Glance shows alt's own token."""
    image = images(
        demo_context,
        data=io.BytesIO(os.urandom(32 * 1024)),
        visibility='community',
    )
    host = cache_agent.host
    _clear(relays)
    row.add(calls=3)
    for ctxt in (alt_context, demo_context):
        direct_url, locations = api.get_location(ctxt, image['id'], host=host)
        body = api.show(ctxt, image['id'], host=host)
        assert locations == body.get('locations')
    plain = _seen(relays)
    foreign = [
        request.path
        for relay in relays
        for request in relay.requests
        if request.header('X-Auth-Token')
        not in (alt_context.auth_token, demo_context.auth_token)
    ]
    api_calls = [r.path for r in plain if r.path.endswith('/locations')]
    # The admin's token may use the location API (with the agent's).
    _clear(relays)
    admin_view = api.get_location(admin_context, image['id'], host=host)
    privileged = [
        r.path for r in _seen(relays) if r.path.endswith('/locations')
    ]
    row.note(
        'get_location by alt and demo (members): %d requests with the '
        'agent\'s token, %d to the location API; by admin: %d to the '
        'location API' % (len(foreign), len(api_calls), len(privileged))
    )
    if foreign:
        row.add(failures=1)
    assert foreign == []
    assert api_calls == []
    assert privileged and admin_view[1]


@pytest.mark.scenario('23. Locations and the service credentials')
@pytest.mark.parametrize(
    'url', ['rbd://fsid/images/%s/snap', 'file:///etc/passwd?%s']
)
def test_an_owners_storage_location_is_refused(
    row,
    url,
    cache_agent,
    relays,
    api,
    image_service,
    images,
    demo_context,
    admin_context,
):
    """OSSN-0065/0090: an image owner must not point an image at storage
    the deployment owns. The agent's credentials must not do it for them,
    and the agent refuses before asking Glance."""
    made = images(demo_context)
    target = url % made['id']
    _clear(relays)
    row.add(calls=1, faults=1)
    try:
        api.add_location(
            demo_context, made['id'], target, {}, host=cache_agent.host
        )
    except exception.NotAuthorized as e:
        row.error(e)
        error = e
    except exception.ImageAgentException as e:
        error = e
    else:
        error = None
    foreign = [
        request.path
        for relay in relays
        for request in relay.requests
        if request.header('X-Auth-Token') != demo_context.auth_token
    ]
    locations = image_service.get_location(admin_context, made['id'])[1]
    added = [loc for loc in locations or () if loc.get('url') == target]
    row.note(
        '%s by the owner: %s; %d requests with the agent\'s token; '
        'added: %s'
        % (
            target.split(':')[0],
            type(error).__name__.removesuffix('_Remote')
            if error
            else 'accepted',
            len(foreign),
            bool(added),
        )
    )
    if added or foreign:
        row.add(failures=1)
    assert added == []
    assert foreign == []
    assert isinstance(error, exception.NotAuthorized), error
    assert _seen(relays) == [] or all(
        'locations' not in path for _, path, _ in _seen(relays)
    )


# -- service tokens: a transfer outlives the caller's token -------------------


def _short_lived_token(deployment, seconds: int) -> tuple[dict, str]:
    """demo's token that expires in ``seconds``: made with an application
    credential of that lifetime (Keystone caps the token at its expiry).
    Returns the token's body and the token."""
    creds = deployment.authenticate('demo')
    headers = {'X-Auth-Token': creds['token']}
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
        seconds=seconds
    )
    made = testenv_util.http(
        'POST',
        '%s/users/%s/application_credentials'
        % (deployment.keystone_url, creds['user_id']),
        body={
            'application_credential': {
                'name': 'short-%s' % uuid.uuid4().hex[:8],
                'expires_at': expires.strftime('%Y-%m-%dT%H:%M:%S'),
            }
        },
        headers=headers,
    )
    assert made.status == 201, made.body
    app_cred = made.json()['application_credential']
    auth = testenv_util.http(
        'POST',
        '%s/auth/tokens' % deployment.keystone_url,
        body={
            'auth': {
                'identity': {
                    'methods': ['application_credential'],
                    'application_credential': {
                        'id': app_cred['id'],
                        'secret': app_cred['secret'],
                    },
                }
            }
        },
    )
    assert auth.status == 201, auth.body
    return auth.json()['token'], auth.headers['X-Subject-Token']


def _token_context(body: dict, token: str) -> ia_context.RequestContext:
    return ia_context.RequestContext(
        auth_token=token,
        user_id=body['user']['id'],
        project_id=body['project']['id'],
        roles=[r['name'] for r in body['roles']],
        overwrite=False,
    )


@pytest.mark.scenario('24. Caller token expires mid-transfer')
@pytest.mark.test_timeout(200)
def test_a_resume_after_the_callers_token_expired_uses_a_service_token(
    row,
    deployment,
    agent_factory,
    api,
    images,
    demo_context,
):
    """Two agents download the same image with a token that expires after
    20 s, at 192 KiB/s (about 40 s); after the expiry every connection is
    cut and the agents resume. The one sending service tokens
    ([service_user]) finishes; the other, the control, gets 401."""
    data = os.urandom(8 * helpers.MiB)
    image = images(demo_context, data=io.BytesIO(data))
    body, token = _short_lived_token(deployment, 20)
    ctxt = _token_context(body, token)
    expires = datetime.datetime.fromisoformat(
        body['expires_at'].replace('Z', '+00:00')
    )
    service_user = {
        'send_service_user_token': 'true',
        'auth_type': 'password',
        'auth_url': deployment.keystone_url,
        'username': 'image-agent',
        'password': deployment.password('image-agent'),
        'project_name': 'service',
        'user_domain_name': 'Default',
        'project_domain_name': 'Default',
    }
    runs = {}
    for name, options in (
        ('service token', {'service_user': service_user}),
        ('control', {}),
    ):
        proxy = Relay.to(deployment.glance_urls[0], rate=192 * 1024)
        agent = agent_factory(
            'expiry-%s' % uuid.uuid4().hex[:4],
            glance_urls=[proxy.url],
            options=options,
        )
        path = os.path.join(agent.root, 'long-disk')
        runs[name] = (agent, proxy, path)
    try:
        calls = {
            name: helpers.Background(
                lambda a=agent, p=path: api.download(
                    ctxt, image['id'], p, host=a.host
                )
            )
            for name, (agent, _, path) in runs.items()
        }
        wait = (expires - datetime.datetime.now(datetime.UTC)).total_seconds()
        time.sleep(max(0.0, wait) + 3)
        moved = {name: run[1].answer_bytes for name, run in runs.items()}
        for _, proxy, _ in runs.values():
            proxy.cut()
        for call in calls.values():
            call.join(120)
        row.add(faults=2, calls=2)
        outcome = {
            name: helpers.describe(call.error) if call.error else 'done'
            for name, call in calls.items()
        }
        row.note(
            'token expired after 20 s; connections cut at %s bytes; then: '
            '%s' % (moved, outcome)
        )
        good = calls['service token']
        if good.error is not None:
            row.add(failures=1)
        assert good.error is None, good.error
        # It resumed after the cut: a ranged data request came after it.
        resumed = [
            r
            for r in runs['service token'][1].file_requests
            if r.header('Range')
        ]
        assert resumed
        assert helpers.file_sha512(runs['service token'][2]) == (
            helpers.sha512(data)
        )
        # Without a service token the same resume is refused: the token
        # really had expired.
        assert isinstance(calls['control'].error, exception.NotAuthorized), (
            outcome
        )
        assert all(0 < m < len(data) for m in moved.values()), moved
    finally:
        for agent, proxy, _ in runs.values():
            agent.stop()
            proxy.close()
