"""GlanceImageService methods against the real Keystone and Glance."""

import datetime
import hashlib
import io
import os
import threading
import time
import uuid

import pytest

from image_agent import exception
from image_agent.data import localcopy
from image_agent.image import glance

DATA = os.urandom(3 * 1024 * 1024 + 17)


def _wait_for_status(service, context, image_id, status, seconds=30):
    deadline = time.monotonic() + seconds
    while True:
        image = service.show(context, image_id)
        if image['status'] == status or time.monotonic() > deadline:
            return image
        time.sleep(0.2)


# -- show / detail -----------------------------------------------------------


def test_show_puts_base_properties_on_top_and_the_rest_in_properties(
    image_service, demo_context, images
):
    made = images(
        demo_context,
        {
            'os_distro': 'debian',
            'properties': {
                'hw_disk_bus': 'scsi',
                'mappings': [{'device': 'vda', 'virtual': 'root'}],
            },
        },
    )
    image = image_service.show(demo_context, made['id'])
    assert image['id'] == made['id']
    assert image['status'] == 'queued'
    assert image['disk_format'] == 'raw'
    assert 'schema' not in image
    assert image['properties']['hw_disk_bus'] == 'scsi'
    # os_distro is in Glance's schema, but not as a base property.
    assert image['properties']['os_distro'] == 'debian'
    assert image['properties']['mappings'] == [
        {'device': 'vda', 'virtual': 'root'}
    ]
    assert 'hw_disk_bus' not in image
    assert isinstance(image['created_at'], datetime.datetime)
    assert image['created_at'].tzinfo is not None
    # No invented keys: Glance does not send deleted_at for a live image.
    assert 'deleted_at' not in image


def test_show_of_a_missing_image_is_image_not_found(
    image_service, demo_context
):
    missing = str(uuid.uuid4())
    with pytest.raises(exception.ImageNotFound) as info:
        image_service.show(demo_context, missing)
    assert missing in str(info.value)


def test_private_image_of_another_project_is_not_found(
    image_service, demo_context, alt_context, images
):
    made = images(demo_context)
    with pytest.raises(exception.ImageNotFound):
        image_service.show(alt_context, made['id'])


def test_invalid_token_is_image_not_authorized(
    image_service, demo_context, images
):
    made = images(demo_context)
    demo_context.auth_token = 'not-a-token'
    with pytest.raises(exception.ImageNotAuthorized):
        image_service.show(demo_context, made['id'])
    with pytest.raises(exception.NotAuthorized) as info:
        image_service.detail(demo_context)
    assert not isinstance(info.value, exception.ImageNotAuthorized)


def test_detail_filters_sorts_and_pages(image_service, demo_context, images):
    tag = uuid.uuid4().hex[:8]
    made = [
        images(demo_context, name='detail-%s-%d' % (tag, i)) for i in range(5)
    ]
    found = image_service.detail(
        demo_context,
        filters={'name': 'in:' + ','.join(m['name'] for m in made)},
        sort_key='name',
        sort_dir='asc',
        page_size=2,
    )
    assert [i['name'] for i in found] == [m['name'] for m in made]
    limited = image_service.detail(
        demo_context,
        filters={'name': 'in:' + ','.join(m['name'] for m in made)},
        sort_key='name',
        sort_dir='asc',
        limit=2,
        marker=made[1]['id'],
    )
    assert [i['name'] for i in limited] == [made[2]['name'], made[3]['name']]


def test_detail_with_a_bad_marker_is_invalid(image_service, demo_context):
    with pytest.raises(exception.Invalid):
        image_service.detail(demo_context, marker=str(uuid.uuid4()))


def test_detail_hides_other_projects_private_images(
    image_service, demo_context, alt_context, images
):
    made = images(demo_context)
    names = [i['name'] for i in image_service.detail(alt_context)]
    assert made['name'] not in names


# -- create / update / delete ---------------------------------------------


def test_create_with_data_uploads_and_returns_the_active_image(
    image_service, demo_context, images
):
    made = images(demo_context, data=io.BytesIO(DATA))
    assert made['status'] == 'active'
    assert made['size'] == len(DATA)
    assert made['os_hash_algo'] == 'sha512'
    assert made['os_hash_value'] == hashlib.sha512(DATA).hexdigest()


def test_create_with_bad_metadata_is_invalid_and_makes_nothing(
    image_service, demo_context, admin_context
):
    name = 'bad-' + uuid.uuid4().hex[:8]
    with pytest.raises(exception.Invalid):
        image_service.create(
            demo_context,
            {'name': name, 'disk_format': 'no-such-format'},
        )
    assert image_service.detail(admin_context, filters={'name': name}) == []


def test_update_uploads_into_the_named_store(
    deployment, image_service, demo_context, images
):
    made = images(demo_context)
    image = image_service.update(
        demo_context,
        made['id'],
        {'properties': {'purpose': 'store test'}},
        data=io.BytesIO(DATA),
        store_id='cheap',
    )
    assert image['status'] == 'active'
    assert image['stores'] == 'cheap'
    cheap = os.path.join(deployment.store_dirs['cheap'], made['id'])
    fast = os.path.join(deployment.store_dirs['fast'], made['id'])
    assert os.path.getsize(cheap) == len(DATA)
    assert not os.path.exists(fast)


def test_update_without_store_uses_the_default_store(
    deployment, image_service, demo_context, images
):
    made = images(demo_context)
    image = image_service.update(
        demo_context, made['id'], {}, data=io.BytesIO(b'abc')
    )
    assert image['stores'] == 'fast'
    assert os.path.exists(
        os.path.join(deployment.store_dirs['fast'], made['id'])
    )


def test_update_with_purge_props_removes_unnamed_custom_properties(
    image_service, demo_context, images
):
    made = images(demo_context, properties={'a': '1', 'b': '2'})
    image = image_service.update(
        demo_context,
        made['id'],
        {'name': 'renamed', 'properties': {'b': '3', 'c': '4'}},
        purge_props=True,
    )
    assert image['name'] == 'renamed'
    assert image['properties'] == {'b': '3', 'c': '4'}


def test_update_without_purge_props_keeps_other_properties(
    image_service, demo_context, images
):
    made = images(demo_context, properties={'a': '1', 'b': '2'})
    image = image_service.update(
        demo_context,
        made['id'],
        {'properties': {'b': '3'}},
        purge_props=False,
    )
    assert image['properties'] == {'a': '1', 'b': '3'}


def test_update_ignores_server_owned_keys(image_service, demo_context, images):
    made = images(demo_context)
    shown = image_service.show(demo_context, made['id'])
    shown['min_ram'] = 512
    for key in ('checksum', 'size', 'virtual_size', 'os_hash_algo'):
        shown.pop(key, None)
    for key in ('os_hash_value', 'file', 'owner', 'direct_url', 'stores'):
        shown.pop(key, None)
    image = image_service.update(demo_context, made['id'], shown)
    assert image['min_ram'] == 512
    assert image['id'] == made['id']


def test_update_of_another_projects_image_is_refused(
    image_service, demo_context, alt_context, images
):
    made = images(demo_context, visibility='community')
    with pytest.raises(exception.ImageNotAuthorized):
        image_service.update(alt_context, made['id'], {'name': 'mine now'})


def test_delete_returns_true_and_then_the_image_is_gone(
    image_service, demo_context
):
    made = image_service.create(
        demo_context,
        {'name': 'doomed', 'disk_format': 'raw', 'container_format': 'bare'},
    )
    assert image_service.delete(demo_context, made['id']) is True
    with pytest.raises(exception.ImageNotFound):
        image_service.show(demo_context, made['id'])
    with pytest.raises(exception.ImageNotFound):
        image_service.delete(demo_context, made['id'])


def test_delete_of_a_protected_image_is_refused(
    image_service, demo_context, images
):
    made = images(demo_context, protected=True)
    with pytest.raises(exception.ImageNotAuthorized):
        image_service.delete(demo_context, made['id'])
    image_service.update(
        demo_context, made['id'], {'protected': False}, purge_props=False
    )


# -- download ---------------------------------------------------------------


def test_download_into_a_file_is_complete_and_verified(
    image_service, demo_context, images, tmp_path
):
    made = images(demo_context, data=io.BytesIO(DATA))
    target = tmp_path / 'image.raw'
    with open(target, 'wb') as f:
        assert image_service.download(demo_context, made['id'], f) is None
    assert target.read_bytes() == DATA


def test_download_without_data_returns_an_iterator_of_chunks(
    image_service, demo_context, images
):
    made = images(demo_context, data=io.BytesIO(DATA))
    chunks = image_service.download(demo_context, made['id'])
    assert b''.join(chunks) == DATA


def test_download_of_altered_bytes_is_a_checksum_mismatch(
    deployment, image_service, demo_context, images, tmp_path
):
    made = images(demo_context, data=io.BytesIO(DATA))
    stored = os.path.join(deployment.store_dirs['fast'], made['id'])
    with open(stored, 'r+b') as f:
        f.seek(1000)
        f.write(b'\0altered\0')
    with (
        open(tmp_path / 'out', 'wb') as f,
        pytest.raises(exception.ImageChecksumMismatch) as info,
    ):
        image_service.download(demo_context, made['id'], f)
    assert made['id'] in str(info.value)
    assert 'sha512' in str(info.value)


def test_download_of_an_image_without_data_fails(
    image_service, demo_context, images
):
    made = images(demo_context)
    with pytest.raises(exception.ImageDownloadFailed) as info:
        image_service.download(demo_context, made['id'])
    assert 'image contains no data' in str(info.value)


def test_download_reads_a_local_file_location_when_allowed(
    deployment, config, image_service, demo_context, images, monkeypatch
):
    made = images(demo_context, data=io.BytesIO(DATA))
    config.config(group='glance', allowed_direct_url_schemes=['file'])
    raw = image_service._get_raw(demo_context, made['id'])
    assert raw['direct_url'].startswith('file://')
    opened = []
    real = localcopy.open_regular
    monkeypatch.setattr(
        localcopy, 'open_regular', lambda p: opened.append(p) or real(p)
    )
    service = glance.GlanceImageService()
    service._get_raw = lambda context, image_id: raw
    assert b''.join(service.download(demo_context, made['id'])) == DATA
    assert opened == [raw['direct_url'][len('file://') :]]
    # Without Glance's word for the caller, the local file is not read.
    opened.clear()
    deployment.stop_glance(0)
    deployment.stop_glance(1)
    try:
        with pytest.raises(exception.GlanceConnectionFailed):
            service.download(demo_context, made['id'])
    finally:
        deployment.start_glance(0)
        deployment.start_glance(1)
    assert opened == []


@pytest.mark.parametrize('kind', ['fifo', 'symlink', 'device', 'hashless'])
def test_a_file_location_that_is_not_provable_is_not_read(
    config, image_service, demo_context, images, tmp_path, kind
):
    """A FIFO does not block, a link is not followed, a device is not
    opened, an image without a recorded hash is not copied: the bytes come
    from Glance's API."""
    made = images(demo_context, data=io.BytesIO(DATA))
    config.config(group='glance', allowed_direct_url_schemes=['file'])
    raw = dict(image_service._get_raw(demo_context, made['id']))
    location = tmp_path / 'location'
    # Another file of the image's size: what it holds must never be served.
    secret = tmp_path / 'agent.conf'
    secret.write_bytes(os.urandom(len(DATA)))
    if kind == 'fifo':
        os.mkfifo(location)
    elif kind == 'symlink':
        os.symlink(secret, location)
    elif kind == 'device':
        location = '/dev/zero'
    else:
        location = secret
        raw.update(checksum=None, os_hash_algo=None, os_hash_value=None)
    raw['direct_url'] = 'file://%s' % location
    service = glance.GlanceImageService()
    service._get_raw = lambda context, image_id: raw
    result = {}
    worker = threading.Thread(
        target=lambda: result.update(
            data=b''.join(service.download(demo_context, made['id']))
        ),
        daemon=True,
    )
    worker.start()
    worker.join(60)
    if kind == 'fifo' and worker.is_alive():
        # Unblock the reader of the old code, so the test can end.
        with open(location, 'wb'):
            pass
    assert not worker.is_alive(), 'the download blocked on the location'
    assert result['data'] == DATA


# -- locations, stores, members ---------------------------------------------


def test_get_location_uses_the_location_api(
    deployment, image_service, demo_context, images
):
    made = images(demo_context, data=io.BytesIO(b'located'))
    direct_url, locations = image_service.get_location(
        demo_context, made['id']
    )
    path = os.path.join(deployment.store_dirs['fast'], made['id'])
    # The reference's shape for the location API: no direct_url.
    assert direct_url is None
    assert [loc['url'] for loc in locations] == ['file://' + path]
    assert locations[0]['metadata'].get('store') == 'fast'


def test_get_location_falls_back_to_the_image_body(
    config, image_service, demo_context, images
):
    made = images(demo_context, data=io.BytesIO(b'located'))
    config.config(group='glance', auth_type=None)
    from image_agent.image import auth

    auth.reset()
    direct_url, locations = glance.GlanceImageService().get_location(
        demo_context, made['id']
    )
    assert direct_url.startswith('file://')
    assert locations[0]['url'] == direct_url


def test_get_location_of_an_image_without_data_has_no_location(
    image_service, demo_context, images
):
    made = images(demo_context)
    # The location API lists none; the body shows an empty list.
    assert image_service.get_location(demo_context, made['id']) == (None, [])


def _served_file(deployment, data):
    name = 'loc-%s.raw' % uuid.uuid4().hex[:8]
    with open(os.path.join(deployment.fileserver_dir, name), 'wb') as f:
        f.write(data)
    return '%s/%s' % (deployment.fileserver_url, name)


def test_add_location_with_the_location_api_and_validation_data(
    deployment, image_service, demo_context, images
):
    url = _served_file(deployment, DATA)
    made = images(demo_context)
    image_service.add_location(
        demo_context,
        made['id'],
        url,
        {
            'os_hash_algo': 'sha512',
            'os_hash_value': hashlib.sha512(DATA).hexdigest(),
        },
    )
    image = _wait_for_status(image_service, demo_context, made['id'], 'active')
    assert image['status'] == 'active'
    assert image['os_hash_value'] == hashlib.sha512(DATA).hexdigest()
    assert b''.join(image_service.download(demo_context, made['id'])) == DATA


def test_add_location_with_metadata_uses_the_legacy_call(
    deployment, image_service, demo_context, images
):
    url = _served_file(deployment, b'legacy location')
    made = images(demo_context)
    image = image_service.add_location(
        demo_context, made['id'], url, {'origin': 'functional-test'}
    )
    assert image['id'] == made['id']
    _, locations = image_service.get_location(demo_context, made['id'])
    assert [loc['url'] for loc in locations] == [url]
    assert locations[0]['metadata']['origin'] == 'functional-test'


def test_add_location_refused_by_glance_is_invalid(
    image_service, demo_context, images
):
    made = images(demo_context)
    refused = 'http://203.0.113.1/x'
    # The location API names the reason...
    with pytest.raises(exception.Invalid) as info:
        image_service.add_location(demo_context, made['id'], refused, {})
    assert 'does not pass filtering' in str(info.value)
    # ...the legacy call only says that the location is invalid.
    with pytest.raises(exception.Invalid) as info:
        image_service.add_location(
            demo_context, made['id'], refused, {'a': 'b'}
        )
    assert 'Invalid location' in str(info.value)


def test_location_api_on_an_active_image_is_a_conflict(
    image_service, demo_context, images, deployment
):
    made = images(demo_context, data=io.BytesIO(b'already has data'))
    url = _served_file(deployment, b'other bytes')
    with pytest.raises(exception.ImageConflict) as info:
        image_service.add_location(demo_context, made['id'], url, {})
    assert made['id'] in str(info.value)


def test_get_stores_returns_glances_body(image_service, demo_context):
    body = image_service.get_stores(demo_context)
    stores = {s['id']: s for s in body['stores']}
    assert {'fast', 'cheap', 'web'} <= set(stores)
    assert stores['fast']['default'] == 'true'
    assert 'default' not in stores['cheap']
    assert stores['web']['read-only'] == 'true'


def test_list_members_returns_the_accepted_share(
    deployment, image_service, demo_context, alt_context, images
):
    made = images(demo_context, visibility='shared')
    client = image_service._client
    client.call(
        demo_context,
        'create',
        made['id'],
        alt_context.project_id,
        controller='image_members',
    )
    client.call(
        alt_context,
        'update',
        made['id'],
        alt_context.project_id,
        'accepted',
        controller='image_members',
    )
    members = image_service.list_members(demo_context, made['id'])
    assert isinstance(members, list)
    assert [(m['member_id'], m['status']) for m in members] == [
        (alt_context.project_id, 'accepted')
    ]
    assert image_service.show(alt_context, made['id'])['id'] == made['id']


def test_list_members_of_a_missing_image_is_image_not_found(
    image_service, demo_context
):
    with pytest.raises(exception.ImageNotFound):
        image_service.list_members(demo_context, str(uuid.uuid4()))
