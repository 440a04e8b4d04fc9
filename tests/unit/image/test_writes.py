"""Creates and updates: metadata sent, data uploaded, properties purged.

Through GlanceImageService over the real GlanceClientWrapper; only
glanceclient is replaced (the ``glance`` fixture).
"""

import io

from glanceclient import exc as glance_exc
import pytest

from image_agent import exception
from image_agent.image import glance as glance_mod

IMAGE_ID = '5b1c6e3a-0d4f-4d8e-9a51-7a3c2b1d0e9f'
OTHER_ID = '0b3f5a55-7f5c-4a29-b3c6-1c7fa0a0b6d1'


@pytest.fixture
def service(glance) -> glance_mod.GlanceImageService:
    return glance_mod.GlanceImageService()


# -- create -------------------------------------------------------------------


def test_create_without_data_sends_flat_metadata(service, glance, ctx):
    image = service.create(
        ctx,
        {
            'name': 'new',
            'disk_format': 'qcow2',
            'status': 'active',
            'properties': {'hw_disk_bus': 'scsi', 'mappings': [{'a': 1}]},
        },
    )
    (call,) = glance.calls_to('images.create')
    assert call.kwargs == {
        'name': 'new',
        'disk_format': 'qcow2',
        'hw_disk_bus': 'scsi',
        'mappings': '[{"a": 1}]',
    }
    assert image['name'] == 'new'
    assert image['status'] == 'queued'
    assert image['properties'] == {
        'hw_disk_bus': 'scsi',
        'mappings': [{'a': 1}],
    }
    assert 'images.upload' not in glance.names


def test_create_with_data_uploads_it_and_returns_the_image(
    service, glance, ctx
):
    image = service.create(ctx, {'name': 'new'}, data=io.BytesIO(b'payload'))
    (upload,) = glance.calls_to('images.upload')
    assert upload.args[0] == image['id']
    assert glance.data[image['id']] == b'payload'
    assert image['status'] == 'active'
    assert image['size'] == 7


@pytest.mark.parametrize(
    ('error', 'expected'),
    [
        (
            glance_exc.HTTPOverLimit('storage quota full'),
            exception.ImageLimitExceeded,
        ),
        (glance_exc.HTTPBadRequest('bad data'), exception.Invalid),
        (
            glance_exc.HTTPServiceUnavailable('down'),
            exception.GlanceConnectionFailed,
        ),
    ],
    ids=['413', '400', '503'],
)
def test_create_whose_upload_fails_deletes_the_new_image(
    service, glance, ctx, config, error, expected
):
    config.config(group='glance', num_retries=0)
    glance.script('images.upload', error)
    with pytest.raises(expected):
        service.create(ctx, {'name': 'new'}, data=io.BytesIO(b'payload'))
    (created,) = glance.calls_to('images.create')
    (deleted,) = glance.calls_to('images.delete')
    assert deleted.args == (glance.calls_to('images.upload')[0].args[0],)
    assert glance.images == {}


def test_create_failed_upload_error_is_kept_when_the_delete_fails(
    service, glance, ctx
):
    glance.script('images.upload', glance_exc.HTTPOverLimit('quota'))
    glance.script('images.delete', glance_exc.HTTPInternalServerError('x'))
    with pytest.raises(exception.ImageLimitExceeded):
        service.create(ctx, {'name': 'new'}, data=io.BytesIO(b'payload'))


def test_create_refused_by_the_client_schema_is_invalid(service, glance, ctx):
    glance.script(
        'images.create', TypeError("'qcow3' is not one of ['raw', 'qcow2']")
    )
    with pytest.raises(exception.Invalid) as excinfo:
        service.create(ctx, {'name': 'x', 'disk_format': 'qcow3'})
    assert "'qcow3' is not one of" in str(excinfo.value)


@pytest.mark.parametrize(
    ('error', 'expected'),
    [
        (glance_exc.HTTPBadRequest('bad name'), exception.Invalid),
        (glance_exc.HTTPForbidden('no'), exception.NotAuthorized),
        (glance_exc.HTTPConflict('dup id'), exception.Conflict),
        (glance_exc.HTTPOverLimit('quota'), exception.ImageLimitExceeded),
    ],
    ids=['400', '403', '409', '413'],
)
def test_create_errors_are_translated(service, glance, ctx, error, expected):
    glance.script('images.create', error)
    with pytest.raises(expected) as excinfo:
        service.create(ctx, {'name': 'x'})
    assert type(excinfo.value) is expected
    assert excinfo.value.__cause__ is error


# -- update -------------------------------------------------------------------


def _image_with_properties(glance):
    return glance.add_image(
        id=IMAGE_ID,
        name='old',
        kernel_id='k-1',
        hw_disk_bus='scsi',
        hw_vif_model='virtio',
        os_glance_import_task='t-1',
    )


def test_update_uploads_data_before_patching_metadata(service, glance, ctx):
    _image_with_properties(glance)
    image = service.update(
        ctx,
        IMAGE_ID,
        {'name': 'new'},
        data=io.BytesIO(b'payload'),
        purge_props=False,
        store_id='fast',
        base_image_ref=OTHER_ID,
    )
    assert [n for n in glance.names if n.startswith('images.u')] == [
        'images.upload',
        'images.update',
    ]
    (upload,) = glance.calls_to('images.upload')
    assert upload.headers == {
        'x-image-meta-store': 'fast',
        'x-openstack-base-image-ref': OTHER_ID,
    }
    (update,) = glance.calls_to('images.update')
    assert update.headers == {}
    assert image['name'] == 'new'
    assert image['size'] == 7


def test_update_purges_custom_properties_not_named_in_meta(
    service, glance, ctx
):
    _image_with_properties(glance)
    image = service.update(
        ctx,
        IMAGE_ID,
        {'name': 'new', 'properties': {'kernel_id': 'k-2'}},
    )
    (update,) = glance.calls_to('images.update')
    assert update.args == (IMAGE_ID,)
    assert update.kwargs == {
        'name': 'new',
        'kernel_id': 'k-2',
        'remove_props': ['hw_disk_bus', 'hw_vif_model'],
    }
    assert image['properties'] == {
        'kernel_id': 'k-2',
        'os_glance_import_task': 't-1',
    }


def test_update_without_properties_purges_every_custom_property(
    service, glance, ctx
):
    _image_with_properties(glance)
    image = service.update(ctx, IMAGE_ID, {'name': 'new'})
    (update,) = glance.calls_to('images.update')
    assert update.kwargs['remove_props'] == [
        'hw_disk_bus',
        'hw_vif_model',
        'kernel_id',
    ]
    assert image['properties'] == {'os_glance_import_task': 't-1'}


def test_update_without_purge_keeps_custom_properties(service, glance, ctx):
    _image_with_properties(glance)
    image = service.update(
        ctx,
        IMAGE_ID,
        {'properties': {'hw_disk_bus': 'virtio'}},
        purge_props=False,
    )
    (update,) = glance.calls_to('images.update')
    assert update.kwargs == {'hw_disk_bus': 'virtio', 'remove_props': []}
    assert image['properties'] == {
        'kernel_id': 'k-1',
        'hw_disk_bus': 'virtio',
        'hw_vif_model': 'virtio',
        'os_glance_import_task': 't-1',
    }


def test_update_ignores_the_id_in_meta(service, glance, ctx):
    _image_with_properties(glance)
    meta = {'id': OTHER_ID, 'name': 'new'}
    service.update(ctx, IMAGE_ID, meta, purge_props=False)
    (update,) = glance.calls_to('images.update')
    assert update.args == (IMAGE_ID,)
    assert 'id' not in update.kwargs
    assert meta == {'id': OTHER_ID, 'name': 'new'}


def test_update_with_nothing_to_change_only_shows(service, glance, ctx):
    glance.add_image(id=IMAGE_ID)
    image = service.update(ctx, IMAGE_ID, {'status': 'active'})
    assert 'images.update' not in glance.names
    assert image['id'] == IMAGE_ID


@pytest.mark.parametrize(
    'meta',
    [{}, {'id': OTHER_ID}, {'properties': {}}],
    ids=['empty', 'id', 'props'],
)
def test_update_with_empty_meta_uploads_and_keeps_every_property(
    service, glance, ctx, meta
):
    # Cinder's upload of a volume to an image: update(ctx, id, {}, data).
    # Nothing to patch, so purge_props removes nothing, as the reference.
    _image_with_properties(glance)
    image = service.update(ctx, IMAGE_ID, meta, io.BytesIO(b'volume'))
    assert 'images.update' not in glance.names
    assert glance.names.count('images.upload') == 1
    assert image['properties'] == {
        'kernel_id': 'k-1',
        'hw_disk_bus': 'scsi',
        'hw_vif_model': 'virtio',
        'os_glance_import_task': 't-1',
    }


def test_update_of_a_missing_image_is_image_not_found(service, glance, ctx):
    with pytest.raises(exception.ImageNotFound):
        service.update(ctx, IMAGE_ID, {'name': 'x'}, purge_props=False)


def test_update_conflict_is_image_conflict(service, glance, ctx):
    glance.add_image(id=IMAGE_ID)
    glance.script(
        'images.upload', glance_exc.HTTPConflict('Image status is active')
    )
    with pytest.raises(exception.ImageConflict) as excinfo:
        service.update(ctx, IMAGE_ID, {}, data=io.BytesIO(b'x'))
    assert 'Image status is active' in str(excinfo.value)
    assert 'images.update' not in glance.names


@pytest.mark.parametrize(
    'reserved',
    [
        {'privileged_user': True},
        {'controller': 'image_members'},
        {'store_id': 'cheap'},
        {'base_image_ref': OTHER_ID},
    ],
    ids=lambda r: next(iter(r)),
)
def test_metadata_never_names_an_option_of_the_wrapper(
    service, glance, ctx, service_credentials, reserved
):
    """Keys of the caller's metadata are image properties, even when they
    spell an option of GlanceClientWrapper.call."""
    _image_with_properties(glance)
    service.update(ctx, IMAGE_ID, {'properties': reserved}, purge_props=False)
    (update,) = glance.calls_to('images.update')
    assert update.auth is not service_credentials
    assert update.headers == {}
    assert update.kwargs == dict(reserved, remove_props=[])
    service.create(ctx, {'name': 'n', 'properties': reserved})
    (create,) = glance.calls_to('images.create')
    assert create.auth is not service_credentials
    assert create.headers == {}
    assert create.kwargs == dict(reserved, name='n')
