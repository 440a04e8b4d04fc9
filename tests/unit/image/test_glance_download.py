"""GlanceImageService.download: chunks, verification, local file reads.

The metadata comes from the fake glanceclient, the data over real HTTP from
the stand-in servers of ``glance_http`` (see test_fetch for the resume
details).
"""

import hashlib
import io
import os
import threading

import pytest

from image_agent import exception
from image_agent.data import pipeline
from image_agent.image import fetch
from image_agent.image import glance as glance_mod
from tests.unit import conftest
from tests.unit.glance_http import Answer

IMAGE_ID = '5b1c6e3a-0d4f-4d8e-9a51-7a3c2b1d0e9f'
DATA = os.urandom(3 * pipeline.BUFFER_SIZE // 2)


@pytest.fixture
def service(glance, glance_http) -> glance_mod.GlanceImageService:
    return glance_mod.GlanceImageService()


def _md5(data):
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_download_without_data_returns_an_iterator_of_chunks(
    service, glance, ctx
):
    glance.add_image(id=IMAGE_ID, data=DATA)
    chunks = service.download(ctx, IMAGE_ID)
    assert not isinstance(chunks, (bytes, list))
    chunks = list(chunks)
    assert all(type(chunk) is bytes for chunk in chunks)
    assert b''.join(chunks) == DATA
    assert len(chunks) == 2


def test_download_streams_the_file_of_the_image_once(
    service, glance, glance_http, ctx
):
    glance.add_image(id=IMAGE_ID, data=DATA)
    service.download(ctx, IMAGE_ID, data=io.BytesIO())
    [request] = glance_http.requests
    assert request.path == '/v2/images/%s/file' % IMAGE_ID
    assert request.headers['X-Auth-Token'] == conftest.USER_TOKEN
    assert 'images.data' not in glance.names


def test_download_into_a_file_writes_every_chunk(service, glance, ctx):
    glance.add_image(id=IMAGE_ID, data=DATA)
    target = io.BytesIO()
    assert service.download(ctx, IMAGE_ID, data=target) is None
    assert target.getvalue() == DATA


class ThreadBoundFile(io.BytesIO):
    """A file object usable only from the thread that first wrote to it,
    as Cinder's eventlet.tpool.Proxy without monkey-patching: it waits on
    the hub of that thread, so from any other thread it hangs."""

    def __init__(self, owner=None):
        super().__init__()
        self.owner = owner

    def write(self, data):
        self.owner = self.owner or threading.get_ident()
        if threading.get_ident() != self.owner:
            raise AssertionError('written from another thread: would hang')
        return super().write(data)


def test_download_writes_from_the_calling_thread_every_time(
    service, glance, ctx
):
    # Cinder's image_utils.fetch, twice from one thread: both downloads
    # must write from that thread, not from a helper of their own.
    glance.add_image(id=IMAGE_ID, data=DATA)
    me = threading.get_ident()
    for _ in range(2):
        target = ThreadBoundFile(owner=me)
        assert service.download(ctx, IMAGE_ID, data=target) is None
        assert target.getvalue() == DATA


def test_an_object_that_keeps_chunks_gets_bytes_of_its_own(
    service, glance, ctx
):
    """The buffers are reused: only io objects are given views of them."""

    class Keeper:
        def __init__(self):
            self.chunks = []

        def write(self, chunk):
            self.chunks.append(chunk)

    glance.add_image(id=IMAGE_ID, data=DATA)
    keeper = Keeper()
    service.download(ctx, IMAGE_ID, data=keeper)
    assert all(type(chunk) is bytes for chunk in keeper.chunks)
    assert b''.join(keeper.chunks) == DATA


def test_a_broken_stream_resumes_on_the_next_server(
    service, glance, glance_http, ctx
):
    glance.add_image(id=IMAGE_ID, data=DATA)
    glance_http.add(Answer(break_after=len(DATA) // 3))
    target = io.BytesIO()
    service.download(ctx, IMAGE_ID, data=target)
    assert target.getvalue() == DATA
    resumed = len(DATA) // 3 - fetch.OVERLAP
    assert glance_http.ranges() == [None, 'bytes=%d-' % resumed]
    assert len(set(glance_http.servers())) == 2


def test_download_mismatch_is_checksum_mismatch(service, glance, ctx):
    glance.add_image(id=IMAGE_ID, data=DATA)
    glance.data[IMAGE_ID] = DATA[:-1] + bytes([DATA[-1] ^ 1])
    target = io.BytesIO()
    with pytest.raises(exception.ImageChecksumMismatch) as excinfo:
        service.download(ctx, IMAGE_ID, data=target)
    message = str(excinfo.value)
    assert f'Image {IMAGE_ID} failed verification: its sha512 is' in message
    assert hashlib.sha512(DATA).hexdigest() in message


def test_download_iterator_raises_mismatch_after_the_last_chunk(
    service, glance, ctx
):
    glance.add_image(id=IMAGE_ID, data=DATA)
    glance.data[IMAGE_ID] = b'X' * len(DATA)
    chunks = service.download(ctx, IMAGE_ID)
    received = []
    with pytest.raises(exception.ImageChecksumMismatch):
        for chunk in chunks:
            received.append(chunk)
    assert b''.join(received) == b'X' * len(DATA)


def test_download_falls_back_to_the_md5_checksum(service, glance, ctx):
    glance.add_image(id=IMAGE_ID, data=DATA, os_hash_algo=None)
    del glance.images[IMAGE_ID]['os_hash_value']
    assert b''.join(service.download(ctx, IMAGE_ID)) == DATA

    glance.images[IMAGE_ID]['checksum'] = _md5(b'something else')
    with pytest.raises(exception.ImageChecksumMismatch) as excinfo:
        list(service.download(ctx, IMAGE_ID))
    assert 'its md5 is' in str(excinfo.value)


def test_download_of_an_image_without_data_fails(service, glance, ctx):
    glance.add_image(id=IMAGE_ID)
    with pytest.raises(exception.ImageDownloadFailed) as excinfo:
        service.download(ctx, IMAGE_ID)
    assert str(excinfo.value) == (
        f'Failed to download image {IMAGE_ID}: image contains no data'
    )


def test_download_of_an_image_without_any_hash_warns_and_works(
    service, glance, ctx, caplog
):
    glance.add_image(id=IMAGE_ID, data=DATA, os_hash_algo=None)
    for key in ('os_hash_value', 'checksum'):
        del glance.images[IMAGE_ID][key]
    assert b''.join(service.download(ctx, IMAGE_ID)) == DATA
    assert 'cannot be verified' in caplog.text


def test_an_image_without_hash_resumes_by_skipping_not_by_range(
    service, glance, glance_http, ctx
):
    """Nothing could prove that a ranged answer continues its bytes."""
    glance.add_image(id=IMAGE_ID, data=DATA, os_hash_algo=None)
    for key in ('os_hash_value', 'checksum'):
        del glance.images[IMAGE_ID][key]
    glance_http.add(Answer(break_after=len(DATA) // 3))
    target = io.BytesIO()
    service.download(ctx, IMAGE_ID, data=target)
    assert target.getvalue() == DATA
    assert glance_http.ranges() == [None, None]


def test_download_with_an_unknown_hash_algorithm_fails_before_transfer(
    service, glance, glance_http, ctx
):
    glance.add_image(
        id=IMAGE_ID, data=DATA, os_hash_algo='sha9000', os_hash_value='x'
    )
    with pytest.raises(exception.ImageDownloadFailed) as excinfo:
        service.download(ctx, IMAGE_ID, data=io.BytesIO())
    assert 'unsupported hash algorithm sha9000' in str(excinfo.value)
    assert glance_http.requests == []


def test_a_stream_broken_on_every_server_is_download_failed(
    service, config, glance, glance_http, ctx
):
    config.config(group='glance', num_retries=1)
    glance.add_image(id=IMAGE_ID, data=DATA)
    glance_http.add(Answer(break_after=1000), Answer(break_after=0))
    target = io.BytesIO()
    with pytest.raises(exception.ImageDownloadFailed) as excinfo:
        service.download(ctx, IMAGE_ID, data=target)
    assert type(excinfo.value) is exception.ImageDownloadFailed
    assert 'broke off at byte 1000' in str(excinfo.value)
    assert excinfo.value.__cause__ is not None


def test_download_of_a_missing_image_is_image_not_found(
    service, glance_http, ctx
):
    with pytest.raises(exception.ImageNotFound):
        service.download(ctx, IMAGE_ID)
    assert glance_http.requests == []


def test_download_of_an_image_deleted_meanwhile_is_image_not_found(
    service, glance, glance_http, ctx
):
    glance.add_image(id=IMAGE_ID, data=DATA)
    glance_http.add(Answer(status=404))
    with pytest.raises(exception.ImageNotFound):
        service.download(ctx, IMAGE_ID)


def test_download_of_an_unavailable_image_without_token_is_not_found(
    service, glance, glance_http, anon_ctx
):
    glance.add_image(id=IMAGE_ID, data=DATA, owner=conftest.OTHER_PROJECT_ID)
    with pytest.raises(exception.ImageNotFound):
        service.download(anon_ctx, IMAGE_ID)
    assert glance_http.requests == []


# -- file:// locations --------------------------------------------------------


@pytest.fixture
def local_file(tmp_path):
    path = tmp_path / 'store' / IMAGE_ID
    path.parent.mkdir()
    path.write_bytes(DATA)
    return path


def test_a_readable_file_location_is_copied_locally_when_allowed(
    config, service, glance, glance_http, ctx, local_file
):
    config.config(group='glance', allowed_direct_url_schemes=['file'])
    glance.add_image(id=IMAGE_ID, data=DATA, direct_url=local_file.as_uri())
    target = io.BytesIO()
    service.download(ctx, IMAGE_ID, data=target)
    assert target.getvalue() == DATA
    # Glance was asked for the caller's right only (one byte).
    assert glance_http.ranges() == ['bytes=0-0']


def test_a_file_location_glance_refuses_now_is_not_read(
    config, service, glance, glance_http, ctx, local_file
):
    config.config(group='glance', allowed_direct_url_schemes=['file'])
    glance.add_image(id=IMAGE_ID, data=DATA, direct_url=local_file.as_uri())
    glance_http.add(Answer(status=403))
    target = io.BytesIO()
    with pytest.raises(exception.ImageNotAuthorized):
        service.download(ctx, IMAGE_ID, data=target)
    assert target.getvalue() == b''


@pytest.mark.parametrize('kind', ['fifo', 'symlink'])
def test_a_file_location_that_is_no_regular_file_is_not_opened(
    config, service, glance, glance_http, ctx, local_file, kind
):
    config.config(group='glance', allowed_direct_url_schemes=['file'])
    local_file.unlink()
    if kind == 'fifo':
        os.mkfifo(local_file)
    else:
        (local_file.parent / 'secret').write_bytes(DATA)
        local_file.symlink_to(local_file.parent / 'secret')
    glance.add_image(id=IMAGE_ID, data=DATA, direct_url=local_file.as_uri())
    assert b''.join(service.download(ctx, IMAGE_ID)) == DATA
    assert glance_http.ranges() == ['bytes=0-0', None]


def test_a_file_location_of_an_image_without_hash_is_not_used(
    config, service, glance, glance_http, ctx, local_file
):
    config.config(group='glance', allowed_direct_url_schemes=['file'])
    glance.add_image(id=IMAGE_ID, data=DATA, direct_url=local_file.as_uri())
    glance.images[IMAGE_ID].update(os_hash_value=None, checksum=None)
    assert b''.join(service.download(ctx, IMAGE_ID)) == DATA
    assert glance_http.ranges() == [None]


def test_a_file_url_among_the_locations_is_used(
    config, service, glance, glance_http, ctx, local_file
):
    config.config(group='glance', allowed_direct_url_schemes=['file'])
    glance.add_image(
        id=IMAGE_ID,
        data=DATA,
        direct_url='http://web-store/image',
        locations=[
            {'url': 'http://web-store/image', 'metadata': {}},
            {'url': local_file.as_uri(), 'metadata': {}},
        ],
    )
    assert b''.join(service.download(ctx, IMAGE_ID)) == DATA
    assert glance_http.ranges() == ['bytes=0-0']


def test_a_local_copy_is_verified_too(
    config, service, glance, ctx, local_file
):
    config.config(group='glance', allowed_direct_url_schemes=['file'])
    local_file.write_bytes(b'tampered')
    glance.add_image(id=IMAGE_ID, data=DATA, direct_url=local_file.as_uri())
    with pytest.raises(exception.ImageChecksumMismatch):
        service.download(ctx, IMAGE_ID, data=io.BytesIO())


def test_file_locations_are_ignored_unless_allowed(
    service, glance, glance_http, ctx, local_file
):
    glance.add_image(id=IMAGE_ID, data=DATA, direct_url=local_file.as_uri())
    assert b''.join(service.download(ctx, IMAGE_ID)) == DATA
    assert len(glance_http.requests) == 1


@pytest.mark.parametrize('make_url', ['missing', 'directory'])
def test_an_unreadable_file_location_falls_back_to_the_api(
    config, service, glance, glance_http, ctx, tmp_path, make_url
):
    config.config(group='glance', allowed_direct_url_schemes=['file'])
    path = tmp_path / 'missing' if make_url == 'missing' else tmp_path
    glance.add_image(id=IMAGE_ID, data=DATA, direct_url=path.as_uri())
    assert b''.join(service.download(ctx, IMAGE_ID)) == DATA
    assert glance_http.ranges() == ['bytes=0-0', None]
