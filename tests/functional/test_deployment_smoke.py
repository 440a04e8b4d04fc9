"""The test deployment itself works: tokens, catalog, the Glance servers.

The ``deployment`` fixture comes from tests/functional/deployment_fixture.py.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from tools.testenv.__main__ import _env_lines
from tools.testenv.util import http

SERVICE_USER = 'image-agent'


def _h(token, **extra):
    headers = {'X-Auth-Token': token}
    headers.update(extra)
    return headers


def _create(url, token, name):
    resp = http(
        'POST',
        url + '/v2/images',
        headers=_h(token),
        body={'name': name, 'disk_format': 'raw', 'container_format': 'bare'},
    )
    assert resp.status == 201, resp.body
    return resp.json()['id']


def _wait_status(url, token, image_id, wanted, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        image = http(
            'GET', '%s/v2/images/%s' % (url, image_id), headers=_h(token)
        ).json()
        if image['status'] == wanted or time.monotonic() > deadline:
            return image
        time.sleep(0.1)


def test_tokens_roles_and_projects(deployment):
    expected = {
        'demo': ('demo', {'member', 'reader'}),
        'alt': ('alt', {'member', 'reader'}),
        'glance': ('service', {'admin', 'service'}),
        SERVICE_USER: ('service', {'admin', 'service'}),
        'admin': ('admin', {'admin'}),
    }
    for user, (project, roles) in expected.items():
        auth = deployment.authenticate(user)
        assert auth['token']
        assert auth['project_name'] == project
        assert roles <= set(auth['roles']), (user, auth['roles'])
    assert deployment.admin_token()


def test_catalog_both_shapes(deployment):
    auth = deployment.authenticate('demo')
    image_v3 = [s for s in auth['catalog'] if s['type'] == 'image']
    assert len(image_v3) == 1 and image_v3[0]['name'] == 'glance'
    urls = {
        (e['region_id'], e['interface']): e['url']
        for e in image_v3[0]['endpoints']
    }
    g1, g2 = deployment.glance_urls
    for interface in ('public', 'internal', 'admin'):
        assert urls[('RegionOne', interface)] == g1
        assert urls[('RegionTwo', interface)] == g2

    image_v2 = [s for s in auth['catalog_v2'] if s['type'] == 'image']
    by_region = {e['region']: e for e in image_v2[0]['endpoints']}
    assert by_region['RegionOne'] == {
        'region': 'RegionOne',
        'publicURL': g1,
        'internalURL': g1,
        'adminURL': g1,
    }
    assert by_region['RegionTwo']['publicURL'] == g2
    assert any(s['type'] == 'identity' for s in auth['catalog_v2'])


def test_both_glance_servers_answer(deployment):
    token = deployment.authenticate('demo')['token']
    for url in deployment.glance_urls:
        assert http('GET', url + '/healthcheck').status == 200
        assert http('GET', url + '/v2/images').status == 401
        resp = http('GET', url + '/v2/images', headers=_h(token))
        assert resp.status == 200
        assert 'images' in resp.json()


def test_stores_listed(deployment):
    token = deployment.authenticate('demo')['token']
    resp = http(
        'GET', deployment.glance_urls[0] + '/v2/info/stores', headers=_h(token)
    )
    assert resp.status == 200
    stores = {s['id']: s for s in resp.json()['stores']}
    assert set(stores) == {'fast', 'cheap', 'web'}
    assert stores['fast'].get('default') == 'true'
    assert stores['web'].get('read-only') == 'true'


def test_upload_to_store_and_read_from_other_server(deployment):
    token = deployment.authenticate('demo')['token']
    g1, g2 = deployment.glance_urls
    image_id = _create(g1, token, 'smoke-upload')
    data = os.urandom(256 * 1024)
    resp = http(
        'PUT',
        '%s/v2/images/%s/file' % (g1, image_id),
        data=data,
        headers=_h(
            token,
            **{
                'Content-Type': 'application/octet-stream',
                'x-image-meta-store': 'cheap',
            },
        ),
    )
    assert resp.status == 204, resp.body
    image = http(
        'GET', '%s/v2/images/%s' % (g2, image_id), headers=_h(token)
    ).json()
    assert image['status'] == 'active'
    assert image['stores'] == 'cheap'
    assert image_id in os.listdir(deployment.store_dirs['cheap'])
    resp = http(
        'GET', '%s/v2/images/%s/file' % (g2, image_id), headers=_h(token)
    )
    assert resp.status == 200 and resp.body == data


def test_location_api_with_fileserver(deployment):
    demo = deployment.authenticate('demo')['token']
    service = deployment.authenticate(SERVICE_USER)['token']
    g1, g2 = deployment.glance_urls
    name = 'smoke-%s.raw' % uuid.uuid4().hex
    data = os.urandom(64 * 1024)
    with open(os.path.join(deployment.fileserver_dir, name), 'wb') as f:
        f.write(data)
    url = '%s/%s' % (deployment.fileserver_url, name)
    head = http('HEAD', url)
    assert head.status == 200
    assert head.headers['Content-Length'] == str(len(data))

    image_id = _create(g1, demo, 'smoke-location')
    resp = http(
        'POST',
        '%s/v2/images/%s/locations' % (g1, image_id),
        headers=_h(service),
        body={'url': url},
    )
    assert resp.status == 202, resp.body
    image = _wait_status(g2, demo, image_id, 'active')
    assert image['status'] == 'active' and image['size'] == len(data)
    resp = http(
        'GET',
        '%s/v2/images/%s/locations' % (g2, image_id),
        headers=_h(service),
    )
    assert resp.status == 200
    assert json.loads(resp.body) == [
        {'url': url, 'metadata': {'store': 'web'}}
    ]
    assert (
        http(
            'GET',
            '%s/v2/images/%s/locations' % (g2, image_id),
            headers=_h(demo),
        ).status
        == 403
    )
    resp = http(
        'GET', '%s/v2/images/%s/file' % (g2, image_id), headers=_h(demo)
    )
    assert resp.body == data


def _identity(project_id, roles='member,reader', **extra):
    """Headers a Glance with the trusted pipeline takes as the caller."""
    headers = {
        'X-Identity-Status': 'Confirmed',
        'X-User-Id': 'user-of-' + project_id,
        'X-Project-Id': project_id,
        'X-Roles': roles,
    }
    headers.update(extra)
    return headers


def test_noauth_glance_is_reported_and_not_in_the_catalog(deployment):
    url = deployment.noauth_glance_url
    assert url.startswith('http://127.0.0.1:')
    assert url not in deployment.glance_urls
    assert deployment.info['glance_noauth']['flavor'] == 'trusted'
    assert deployment.health()['glance-noauth'] is None
    assert 'export IMAGE_AGENT_NOAUTH_GLANCE_URL=%s' % url in _env_lines(
        deployment
    )
    assert 'glance-noauth %s' % url in deployment.summary()
    catalog = deployment.authenticate('demo')['catalog']
    urls = {e['url'] for s in catalog for e in s['endpoints']}
    assert url not in urls
    assert len(deployment.glance_urls) == 2


def test_noauth_glance_trusts_identity_headers(deployment):
    url = deployment.noauth_glance_url
    project = uuid.uuid4().hex
    assert http('GET', url + '/healthcheck').status == 200
    # Without X-Identity-Status: Confirmed nobody is anybody: 401.
    assert http('GET', url + '/v2/images').status == 401
    unconfirmed = _identity(project)
    del unconfirmed['X-Identity-Status']
    assert http('GET', url + '/v2/images', headers=unconfirmed).status == 401
    # A token is not even looked at (there is no authtoken here).
    token = deployment.authenticate('demo')['token']
    assert http('GET', url + '/v2/images', headers=_h(token)).status == 401
    # Glance's default policies: listing needs the reader role.
    assert (
        http(
            'GET', url + '/v2/images', headers=_identity(project, 'member')
        ).status
        == 403
    )
    resp = http('GET', url + '/v2/images', headers=_identity(project))
    assert resp.status == 200
    assert resp.json()['images'] == []

    resp = http(
        'POST',
        url + '/v2/images',
        headers=_identity(project),
        body={
            'name': 'smoke-noauth',
            'disk_format': 'raw',
            'container_format': 'bare',
        },
    )
    assert resp.status == 201, resp.body
    image = resp.json()
    assert image['owner'] == project
    assert image['visibility'] == 'shared'
    resp = http('GET', url + '/v2/images', headers=_identity(project))
    assert [i['id'] for i in resp.json()['images']] == [image['id']]
    # Another project does not see it; an admin does.
    other = http(
        'GET',
        '%s/v2/images/%s' % (url, image['id']),
        headers=_identity(uuid.uuid4().hex),
    )
    assert other.status == 404
    # Same database as the Keystone-backed servers.
    g1 = deployment.glance_urls[0]
    admin = deployment.admin_token()
    resp = http(
        'GET', '%s/v2/images/%s' % (g1, image['id']), headers=_h(admin)
    )
    assert resp.status == 200 and resp.json()['owner'] == project
    resp = http(
        'DELETE',
        '%s/v2/images/%s' % (url, image['id']),
        headers=_identity('admin-project', 'admin,member,reader'),
    )
    assert resp.status == 204, resp.body
    resp = http(
        'GET', '%s/v2/images/%s' % (g1, image['id']), headers=_h(admin)
    )
    assert resp.status == 404


@pytest.mark.slow
def test_restart_one_glance(deployment):
    token = deployment.authenticate('demo')['token']
    url = deployment.glance_urls[1]
    deployment.stop_glance(1)
    try:
        with pytest.raises(OSError):
            http('GET', url + '/healthcheck', timeout=2)
        assert (
            http(
                'GET',
                deployment.glance_urls[0] + '/v2/images',
                headers=_h(token),
            ).status
            == 200
        )
    finally:
        deployment.start_glance(1)
    assert http('GET', url + '/v2/images', headers=_h(token)).status == 200


@pytest.mark.slow
def test_restart_the_noauth_glance(deployment):
    url = deployment.noauth_glance_url
    deployment.kill_glance('noauth')
    try:
        with pytest.raises(OSError):
            http('GET', url + '/healthcheck', timeout=2)
        assert deployment.health()['glance-noauth'] == 'not running'
    finally:
        deployment.start_glance('noauth')
    assert deployment.health()['glance-noauth'] is None
    resp = http('GET', url + '/v2/images', headers=_identity('p'))
    assert resp.status == 200
