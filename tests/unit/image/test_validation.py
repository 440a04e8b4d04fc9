"""Argument checks at the edge of the image API."""

import pytest

from image_agent import exception
from image_agent.image import validation


@pytest.mark.parametrize('meta', [5, ['a'], 'x', None])
def test_image_meta_must_be_a_dict(meta):
    with pytest.raises(exception.InvalidInput) as info:
        validation.check_image_meta(meta)
    assert 'image_meta must be a dict' in str(info.value)


@pytest.mark.parametrize('properties', ['x', [['a', 'b']], 3])
def test_properties_must_be_a_dict(properties):
    with pytest.raises(exception.InvalidInput) as info:
        validation.check_image_meta({'properties': properties})
    assert 'properties"] must be a dict' in str(info.value)


def test_good_image_meta_passes():
    meta = {'name': 'n', 'properties': {'a': '1'}}
    assert validation.check_image_meta(meta) is meta


@pytest.mark.parametrize(
    'params',
    [
        {'limit': [1]},
        {'limit': True},
        {'page_size': -1},
        {'marker': 5},
        {'sort_key': 'k' * 10_000},
        {'sort_dir': [1]},
        {'filters': 'name=x'},
    ],
)
def test_bad_listing_parameters_are_invalid_input(params):
    with pytest.raises(exception.InvalidInput):
        validation.check_listing_params(params)


def test_good_listing_parameters_pass():
    validation.check_listing_params(
        {
            'limit': 5,
            'page_size': 2,
            'marker': 'abc',
            'sort_key': ['name', 'created_at'],
            'sort_dir': 'asc',
            'filters': {'name': 'x'},
        }
    )


@pytest.mark.parametrize('value', ['a\nb', 'x' * 2000, 5, '', '\u0101'])
def test_header_values_must_be_printable_ascii(value):
    with pytest.raises(exception.InvalidInput):
        validation.require_header_value('store_id', value)


def test_header_value_none_and_good_text_pass():
    assert validation.require_header_value('store_id', None) is None
    assert validation.require_header_value('store_id', 'cheap') == 'cheap'


@pytest.mark.parametrize(
    'image_id',
    [
        '6d5a1ec4-2f4c-4f5e-9b1e-7c3f6a2d9e10',
        '6D5A1EC42F4C4F5E9B1E7C3F6A2D9E10',
    ],
)
def test_uuids_are_image_ids(image_id):
    assert validation.check_image_id(image_id) == image_id


@pytest.mark.parametrize(
    'image_id',
    [
        'not-an-id',
        '{6d5a1ec4-2f4c-4f5e-9b1e-7c3f6a2d9e10}',
        'urn:uuid:6d5a1ec4-2f4c-4f5e-9b1e-7c3f6a2d9e10',
        '6d5a1ec4-2f4c-4f5e-9b1e-7c3f6a2d9e10/../x',
        '',
    ],
)
def test_anything_else_names_no_image(image_id):
    with pytest.raises(exception.ImageNotFound):
        validation.check_image_id(image_id)
