"""The data path's trust rule, played by an attacker (scenarios 50-56).

A caller gets an image's bytes only after Glance said that this caller may
download this image now, whether the bytes come from Glance, the agent's
cache or a ``file://`` location; every caller joining a shared transfer is
checked the same way; local files are read only when they are regular
files whose hash and size Glance recorded; the cache is never an upload
source; downloads and the cache are private by default.

Glance's file store lies on this machine, so ``direct_url`` of an uploaded
image is a ``file://`` path the agent can read, as on a host that mounts
the store. A deactivated image (Glance answers 403 on its data, while
``show`` still works for its owner) is the image a caller may no longer
download.
"""

import io
import os
import stat
import subprocess
import uuid

import pytest
import requests

from image_agent import exception
from tests.faults import helpers
from tests.faults.helpers import MiB
from tools.testenv import databases
from tools.testenv import deployment as deployment_mod

pytestmark = pytest.mark.slow

REFUSED = (exception.ImageNotAuthorized, exception.ImageNotFound)


def _action(deployment, ctxt, image_id: str, action: str) -> None:
    """Deactivate or reactivate an image in Glance (admin)."""
    response = requests.post(
        '%s/v2/images/%s/actions/%s'
        % (deployment.glance_urls[0], image_id, action),
        headers={'X-Auth-Token': ctxt.auth_token},
        timeout=30,
    )
    assert response.status_code == 204, response.text


def _forget_hash(deployment, image_id: str) -> None:
    """Make an image as old Glance releases left some: no hash recorded."""
    db = databases.names(
        deployment.state_dir, deployment_mod.DEFAULT_STATE_DIR
    )['glance']
    # psql quotes the id itself (:'id'), from standard input.
    subprocess.run(
        ['psql', '-q', '-v', 'ON_ERROR_STOP=1', '-v', 'id=' + image_id, db],
        input='UPDATE images SET checksum = NULL, os_hash_algo = NULL, '
        "os_hash_value = NULL WHERE id = :'id';",
        text=True,
        check=True,
        capture_output=True,
    )


def _stored_path(image: dict) -> str:
    url = image.get('direct_url') or ''
    assert url.startswith('file://'), image
    return url[len('file://') :]


@pytest.fixture(scope='module')
def cache_agent(agent_factory):
    agent = agent_factory('dp-cache-%s' % uuid.uuid4().hex[:4], start=False)
    with open(agent.config_file, 'a') as f:
        f.write(
            '[agent]\ncache_dir = %s\n' % os.path.join(agent.root, 'cache')
        )
    agent.start()
    yield agent
    agent.stop()


@pytest.fixture(scope='module')
def file_agent(agent_factory):
    """An agent that reads ``file://`` locations, without a cache."""
    agent = agent_factory(
        'dp-file-%s' % uuid.uuid4().hex[:4],
        options={'glance': {'allowed_direct_url_schemes': 'file'}},
    )
    yield agent
    agent.stop()


def _entry(agent, image: dict) -> str:
    """The path of ``image``'s entry in ``agent``'s cache."""
    name = '%s.sha512-%s' % (image['id'], image['os_hash_value'])
    return os.path.join(agent.root, 'cache', name)


def _refused(row, call) -> BaseException:
    row.add(calls=1)
    with pytest.raises(REFUSED) as caught:
        call()
    row.error(caught.value)
    return caught.value


@pytest.mark.scenario('50. Deactivated image in the cache')
def test_a_cached_image_glance_refuses_now_is_not_served(
    row,
    deployment,
    cache_agent,
    api,
    images,
    demo_context,
    admin_context,
):
    image = images(demo_context, data=io.BytesIO(os.urandom(4 * MiB)))
    first = os.path.join(cache_agent.root, 'first-%s' % image['id'])
    done = api.download(
        demo_context, image['id'], first, host=cache_agent.host
    )
    row.add(calls=1)
    assert done['source'] == 'cache'
    _action(deployment, admin_context, image['id'], 'deactivate')
    try:
        second = os.path.join(cache_agent.root, 'second-%s' % image['id'])
        _refused(
            row,
            lambda: api.download(
                demo_context, image['id'], second, host=cache_agent.host
            ),
        )
        assert not os.path.lexists(second)
        assert helpers.temp_files(cache_agent.root) == []
    finally:
        _action(deployment, admin_context, image['id'], 'reactivate')
    row.note(
        'a deactivated image in the cache: ImageNotAuthorized, nothing '
        'written (show still answers)'
    )


@pytest.mark.scenario('51. Deactivated image with a file:// location')
def test_a_file_location_glance_refuses_now_is_not_copied(
    row,
    deployment,
    file_agent,
    api,
    images,
    demo_context,
    admin_context,
):
    """Glance 33 also hides a deactivated image's locations from its
    owner, so this guards the outcome; a 403 on an image whose location
    is still shown is a unit test (test_cache.TestLocalCopies)."""
    image = images(demo_context, data=io.BytesIO(os.urandom(2 * MiB)))
    path = os.path.join(file_agent.root, 'f-%s' % image['id'])
    done = api.download(demo_context, image['id'], path, host=file_agent.host)
    row.add(calls=1)
    assert done['source'] == 'file'
    os.unlink(path)
    _action(deployment, admin_context, image['id'], 'deactivate')
    try:
        _refused(
            row,
            lambda: api.download(
                demo_context, image['id'], path, host=file_agent.host
            ),
        )
        assert not os.path.lexists(path)
    finally:
        _action(deployment, admin_context, image['id'], 'reactivate')
    row.note('a deactivated image\'s file:// location: refused, not copied')


@pytest.mark.scenario('52. The cache as an upload source')
def test_the_cache_is_no_upload_source(
    row,
    cache_agent,
    api,
    images,
    image_service,
    alt_context,
    demo_context,
    admin_context,
):
    private = images(alt_context, data=io.BytesIO(os.urandom(MiB)))
    path = os.path.join(cache_agent.root, 'alt-%s' % private['id'])
    api.download(alt_context, private['id'], path, host=cache_agent.host)
    row.add(calls=1)
    entry = _entry(cache_agent, private)
    assert os.path.exists(entry)
    meta = {'name': 'stolen', 'disk_format': 'raw', 'container_format': 'bare'}
    row.add(calls=1)
    try:
        made = api.create(
            demo_context, meta, path=entry, host=cache_agent.host
        )
    except exception.PathNotAllowed as e:
        row.error(e)
    else:
        image_service.delete(admin_context, made['id'])
        row.add(failures=1)
        pytest.fail('demo uploaded alt\'s private image from the cache')
    row.note('create(path=<cache entry>): PathNotAllowed')


@pytest.mark.scenario('53. A file:// image without a hash')
def test_a_file_location_without_a_recorded_hash_is_not_copied(
    row,
    deployment,
    file_agent,
    api,
    images,
    demo_context,
):
    data = os.urandom(2 * MiB)
    image = images(demo_context, data=io.BytesIO(data))
    _forget_hash(deployment, image['id'])
    path = os.path.join(file_agent.root, 'nohash-%s' % image['id'])
    done = api.download(demo_context, image['id'], path, host=file_agent.host)
    row.add(calls=1)
    row.note('no hash recorded: from %s, not copied' % done['source'])
    assert done['source'] == 'glance'
    assert helpers.file_sha512(path) == helpers.sha512(data)


@pytest.mark.scenario('54. A symlinked file:// location')
def test_a_symlinked_location_is_not_followed(
    row,
    file_agent,
    api,
    images,
    demo_context,
):
    data = os.urandom(2 * MiB)
    image = images(demo_context, data=io.BytesIO(data))
    stored = _stored_path(image)
    # The store's file becomes a link (to the same bytes, so that Glance,
    # which follows it, still serves the image).
    os.rename(stored, stored + '.real')
    os.symlink(stored + '.real', stored)
    try:
        path = os.path.join(file_agent.root, 'link-%s' % image['id'])
        done = api.download(
            demo_context, image['id'], path, host=file_agent.host
        )
        row.add(calls=1)
    finally:
        os.unlink(stored)
        os.rename(stored + '.real', stored)
    row.note('a symbolic link as location: from %s' % done['source'])
    assert done['source'] == 'glance'
    assert helpers.file_sha512(path) == helpers.sha512(data)


@pytest.mark.scenario('55. One update, two tokens')
def test_callers_joining_an_upload_are_each_checked_by_glance(
    row,
    agent,
    api,
    images,
    image_service,
    demo_context,
    alt_context,
):
    target = images(demo_context)
    data = os.urandom(96 * MiB)
    source = os.path.join(agent.root, 'upload-%s' % target['id'])
    with open(source, 'wb') as f:
        f.write(data)
    try:
        owner = helpers.Background(
            lambda: api.update(
                demo_context, target['id'], {}, path=source, host=agent.host
            )
        )
        helpers.wait_until(
            lambda: any(
                t['kind'] == 'upload'
                for t in api.ping(demo_context, host=agent.host).get(
                    'transfers', []
                )
            ),
            30,
            'the owner\'s upload',
        )
        row.add(calls=2)
        other = helpers.Background(
            lambda: api.update(
                alt_context, target['id'], {}, path=source, host=agent.host
            )
        )
        other.join(120)
        owner.join(120)
    finally:
        os.unlink(source)
    assert owner.error is None, owner.error
    assert isinstance(other.error, REFUSED), other.error or other.result
    row.error(other.error)
    shown = image_service.show(demo_context, target['id'])
    assert shown['os_hash_value'] == helpers.sha512(data)
    row.note(
        'demo and alt update the same image from the same file at once: '
        'demo\'s upload lands, alt is refused by Glance'
    )


@pytest.mark.scenario('56. Private modes by default')
def test_downloads_and_the_cache_are_private_by_default(
    row,
    cache_agent,
    api,
    images,
    demo_context,
):
    image = images(demo_context, data=io.BytesIO(os.urandom(MiB)))
    path = os.path.join(cache_agent.root, 'mode-%s' % image['id'])
    api.download(demo_context, image['id'], path, host=cache_agent.host)
    row.add(calls=1)
    cache_dir = os.path.join(cache_agent.root, 'cache')
    entry = _entry(cache_agent, image)
    modes = [
        stat.S_IMODE(os.stat(p).st_mode) for p in (path, entry, cache_dir)
    ]
    row.note('download %o, cache entry %o, cache directory %o' % tuple(modes))
    assert modes == [0o600, 0o400, 0o700]
