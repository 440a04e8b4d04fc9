"""upload_calls: the formats of an upload's conversion.

Creates and updates through the RPC endpoint (keys, conversions refused
or made) are specified in tests/unit/test_manager.py.
"""

import pytest

from image_agent import exception
from image_agent.transfers import upload_calls


def test_no_conversion_without_convert_from():
    assert upload_calls.conversion_of(
        '/p', None, {'disk_format': 'qcow2'}
    ) is (None)


def test_a_conversion_needs_a_path():
    with pytest.raises(exception.InvalidInput, match='needs a path'):
        upload_calls.conversion_of(None, 'raw', {'disk_format': 'qcow2'})


def test_the_target_is_the_metadatas_disk_format_first():
    image = {'disk_format': 'vmdk'}
    assert upload_calls.conversion_of(
        '/p', 'raw', {'disk_format': 'qcow2'}, image
    ) == ('raw', 'qcow2')


def test_else_the_images_own_disk_format():
    assert upload_calls.conversion_of(
        '/p', 'raw', {}, {'disk_format': 'qcow2'}
    ) == (
        'raw',
        'qcow2',
    )
