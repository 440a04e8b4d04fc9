"""Image metadata between Glance's v2 shape and the seed API's shape."""

import datetime

import pytest

from image_agent import context as context_mod
from image_agent.image import metadata
from tests.unit import conftest

BASE = metadata.base_properties(conftest.IMAGE_SCHEMA)
OWNER = 'owner-project'


def _glance_image(**extra):
    image = {
        'id': '5b1c6e3a-0d4f-4d8e-9a51-7a3c2b1d0e9f',
        'name': 'cirros',
        'status': 'active',
        'visibility': 'private',
        'owner': OWNER,
        'size': 13,
        'checksum': 'abc',
        'min_disk': 0,
        'created_at': '2024-05-01T10:00:00Z',
        'updated_at': '2024-05-02T11:30:00Z',
        'self': '/v2/images/5b1c6e3a-0d4f-4d8e-9a51-7a3c2b1d0e9f',
        'schema': '/v2/schemas/image',
    }
    image.update(extra)
    return image


# -- base_properties ----------------------------------------------------------


def test_base_properties_are_those_without_is_base_false():
    assert 'name' in BASE
    assert 'os_hash_value' in BASE
    assert 'kernel_id' not in BASE
    assert 'architecture' not in BASE


def test_base_properties_of_an_empty_schema_are_empty():
    assert metadata.base_properties({}) == frozenset()


# -- translate_from_glance ----------------------------------------------------


def test_base_properties_stay_at_the_top_level():
    out = metadata.translate_from_glance(_glance_image(), BASE)
    assert out['id'] == '5b1c6e3a-0d4f-4d8e-9a51-7a3c2b1d0e9f'
    assert out['name'] == 'cirros'
    assert out['status'] == 'active'
    assert out['owner'] == OWNER
    assert out['size'] == 13
    assert out['min_disk'] == 0
    assert out['properties'] == {}


def test_custom_and_non_base_schema_properties_go_under_properties():
    image = _glance_image(kernel_id='k-1', hw_disk_bus='scsi', os_distro='x')
    out = metadata.translate_from_glance(image, BASE)
    assert out['properties'] == {
        'kernel_id': 'k-1',
        'hw_disk_bus': 'scsi',
        'os_distro': 'x',
    }
    assert 'kernel_id' not in out
    assert 'hw_disk_bus' not in out


def test_schema_link_is_dropped():
    out = metadata.translate_from_glance(_glance_image(), BASE)
    assert 'schema' not in out
    assert 'schema' not in out['properties']


def test_datetimes_become_timezone_aware():
    out = metadata.translate_from_glance(_glance_image(), BASE)
    assert out['created_at'] == datetime.datetime(
        2024, 5, 1, 10, 0, tzinfo=datetime.UTC
    )
    assert out['updated_at'] == datetime.datetime(
        2024, 5, 2, 11, 30, tzinfo=datetime.UTC
    )
    assert out['created_at'].utcoffset() == datetime.timedelta(0)


def test_deleted_at_is_parsed_when_glance_reports_it():
    base = BASE | {'deleted_at'}
    image = _glance_image(deleted_at='2024-05-03T00:00:00+02:00')
    out = metadata.translate_from_glance(image, base)
    assert out['deleted_at'] == datetime.datetime(
        2024, 5, 2, 22, 0, tzinfo=datetime.UTC
    )


def test_a_missing_or_null_datetime_is_not_invented():
    image = _glance_image(updated_at=None)
    del image['created_at']
    out = metadata.translate_from_glance(image, BASE)
    assert 'created_at' not in out
    assert out['updated_at'] is None
    assert 'deleted_at' not in out


@pytest.mark.parametrize('key', ['mappings', 'block_device_mapping'])
def test_json_properties_are_decoded(key):
    image = _glance_image(**{key: '[{"device_name": "vda", "boot_index": 0}]'})
    out = metadata.translate_from_glance(image, BASE)
    assert out['properties'][key] == [{'device_name': 'vda', 'boot_index': 0}]


def test_json_property_that_is_not_json_is_kept_as_a_string():
    image = _glance_image(mappings='not json')
    out = metadata.translate_from_glance(image, BASE)
    assert out['properties']['mappings'] == 'not json'


def test_no_keys_are_invented():
    image = {'id': 'x', 'name': None}
    out = metadata.translate_from_glance(image, BASE)
    assert out == {'id': 'x', 'name': None, 'properties': {}}


def test_translation_does_not_change_the_glance_image():
    image = _glance_image(mappings='[]')
    before = dict(image)
    metadata.translate_from_glance(image, BASE)
    assert image == before


# -- translate_to_glance ------------------------------------------------------


def test_properties_are_flattened_into_the_top_level():
    sent = metadata.translate_to_glance(
        {'name': 'n', 'properties': {'hw_disk_bus': 'scsi', 'kernel_id': 'k'}}
    )
    assert sent == {'name': 'n', 'hw_disk_bus': 'scsi', 'kernel_id': 'k'}


def test_properties_win_over_top_level_keys_of_the_same_name():
    sent = metadata.translate_to_glance(
        {'name': 'top', 'properties': {'name': 'from-properties'}}
    )
    assert sent == {'name': 'from-properties'}


@pytest.mark.parametrize('key', ['mappings', 'block_device_mapping'])
def test_json_properties_are_encoded(key):
    value = [{'device_name': 'vda', 'boot_index': 0}]
    sent = metadata.translate_to_glance({'properties': {key: value}})
    assert sent == {key: '[{"device_name": "vda", "boot_index": 0}]'}


def test_json_properties_already_encoded_are_sent_as_they_are():
    sent = metadata.translate_to_glance({'properties': {'mappings': '[]'}})
    assert sent == {'mappings': '[]'}


def test_server_owned_keys_are_dropped():
    sent = metadata.translate_to_glance(
        {
            'name': 'n',
            'status': 'active',
            'created_at': 'then',
            'updated_at': 'now',
            'deleted_at': None,
            'properties': {'status': 'sneaky'},
        }
    )
    assert sent == {'name': 'n'}


@pytest.mark.parametrize('properties', [None, {}])
def test_properties_key_is_never_sent(properties):
    sent = metadata.translate_to_glance(
        {'name': 'n', 'properties': properties}
    )
    assert sent == {'name': 'n'}


def test_translate_to_glance_does_not_change_its_argument():
    meta = {'name': 'n', 'status': 'x', 'properties': {'mappings': []}}
    metadata.translate_to_glance(meta)
    assert meta == {'name': 'n', 'status': 'x', 'properties': {'mappings': []}}


# -- custom_property_names ----------------------------------------------------


def test_custom_property_names_are_the_non_base_keys():
    image = _glance_image(kernel_id='k', hw_disk_bus='scsi')
    assert metadata.custom_property_names(image, BASE) == {
        'kernel_id',
        'hw_disk_bus',
    }


# -- is_image_available -------------------------------------------------------


def _ctx(**kwargs) -> context_mod.RequestContext:
    kwargs.setdefault('project_id', 'caller-project')
    return context_mod.RequestContext(**kwargs)


def _never_asked():
    raise AssertionError('the member status should not be asked')


def test_a_caller_with_a_token_is_trusted_to_glance():
    ctx = _ctx(auth_token='t')
    image = {'visibility': 'private', 'owner': 'someone-else'}
    assert metadata.is_image_available(ctx, image, _never_asked) is True


@pytest.mark.parametrize('visibility', ['public', 'community'])
def test_public_and_community_images_are_available(visibility):
    image = {'visibility': visibility, 'owner': 'someone-else'}
    assert metadata.is_image_available(_ctx(), image, _never_asked) is True


def test_admin_sees_every_image():
    image = {'visibility': 'private', 'owner': 'someone-else'}
    ctx = _ctx(is_admin=True)
    assert metadata.is_image_available(ctx, image, _never_asked) is True


def test_owner_sees_its_private_image():
    image = {'visibility': 'private', 'owner': 'caller-project'}
    assert metadata.is_image_available(_ctx(), image, _never_asked) is True


def test_private_image_of_another_project_is_not_available():
    image = {'visibility': 'private', 'owner': 'someone-else'}
    assert metadata.is_image_available(_ctx(), image, _never_asked) is False


@pytest.mark.parametrize(
    ('status', 'available'),
    [
        ('accepted', True),
        ('pending', False),
        ('rejected', False),
        (None, False),
    ],
)
def test_shared_image_is_available_once_the_share_is_accepted(
    status, available
):
    image = {'visibility': 'shared', 'owner': 'someone-else'}
    asked = []

    def member_status():
        asked.append(True)
        return status

    result = metadata.is_image_available(_ctx(), image, member_status)
    assert result is available
    assert asked == [True]


def test_shared_image_without_a_member_lookup_is_not_available():
    image = {'visibility': 'shared', 'owner': 'someone-else'}
    assert metadata.is_image_available(_ctx(), image) is False


def test_caller_without_a_project_sees_only_public_images():
    ctx = context_mod.RequestContext()
    shared = {'visibility': 'shared', 'owner': None}
    assert metadata.is_image_available(ctx, shared, _never_asked) is False
    assert metadata.is_image_available(ctx, {'visibility': 'public'}) is True
