"""Checking downloaded bytes against the hash Glance recorded."""

import hashlib

import pytest

from image_agent import exception
from image_agent.data import verify

DATA = b'some image bytes'
IMAGE_ID = '5b1c6e3a-0d4f-4d8e-9a51-7a3c2b1d0e9f'


def _image(**fields):
    return {'id': IMAGE_ID, **fields}


def _md5(data):
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_multihash_is_preferred_over_the_md5_checksum():
    hasher = verify.ImageHasher(
        _image(
            os_hash_algo='sha256',
            os_hash_value=hashlib.sha256(DATA).hexdigest(),
            checksum='wrong-md5-is-ignored',
        )
    )
    hasher.update(DATA)
    hasher.verify()
    assert hasher.algorithm == 'sha256'
    assert hasher.hexdigest == hashlib.sha256(DATA).hexdigest()


def test_md5_checksum_is_the_fallback():
    hasher = verify.ImageHasher(_image(checksum=_md5(DATA)))
    hasher.update(DATA[:5])
    hasher.update(DATA[5:])
    hasher.verify()
    assert hasher.algorithm == 'md5'
    assert hasher.size == len(DATA)


def test_md5_fallback_when_the_multihash_is_incomplete():
    hasher = verify.ImageHasher(
        _image(os_hash_algo='sha512', os_hash_value=None, checksum=_md5(DATA))
    )
    assert hasher.algorithm == 'md5'


def test_mismatch_names_the_image_algorithm_and_both_hashes():
    expected = hashlib.sha512(b'other').hexdigest()
    hasher = verify.ImageHasher(
        _image(os_hash_algo='sha512', os_hash_value=expected)
    )
    hasher.update(DATA)
    with pytest.raises(exception.ImageChecksumMismatch) as excinfo:
        hasher.verify()
    assert str(excinfo.value) == (
        f'Image {IMAGE_ID} failed verification: its sha512 is '
        f'{hashlib.sha512(DATA).hexdigest()} but Glance recorded {expected}.'
    )
    assert isinstance(excinfo.value, exception.ImageDownloadFailed)


def test_an_image_without_any_hash_cannot_be_verified_and_passes():
    hasher = verify.ImageHasher(_image())
    hasher.update(DATA)
    hasher.verify()
    assert hasher.algorithm is None
    assert hasher.hexdigest is None
    assert hasher.size == len(DATA)


def test_an_unknown_algorithm_fails_the_download_before_it_starts():
    with pytest.raises(exception.ImageDownloadFailed) as excinfo:
        verify.ImageHasher(_image(os_hash_algo='sha9000', os_hash_value='x'))
    assert str(excinfo.value) == (
        f'Failed to download image {IMAGE_ID}: '
        'unsupported hash algorithm sha9000'
    )


def test_the_multihash_wins_over_the_md5_checksum():
    image = _image(checksum=_md5(b'a'))
    assert verify.recorded_hash(image) == ('md5', _md5(b'a'))
    image.update(os_hash_algo='sha512', os_hash_value='ab')
    assert verify.recorded_hash(image) == ('sha512', 'ab')
    assert verify.recorded_hash(_image()) is None
