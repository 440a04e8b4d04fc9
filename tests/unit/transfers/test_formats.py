"""Downloads are inspected in their one stream copy, and converted on
request; uploads are converted from what their caller says they are.

Real images (qemu-img, ``tests/disk_images``) served by the unit tests'
Glance stand-in, a real ``Transfers`` with inspection on as the agent has
it. A refused image leaves nothing: neither at the destination nor in the
cache.
"""

import os
import subprocess

import pytest

from image_agent import cache as cache_mod
from image_agent import exception
from image_agent import transfers
from image_agent.conf import agent as agent_conf
from image_agent.formats import convert
from image_agent.formats import inspect
from image_agent.image import glance as glance_mod
from tests.unit.transfers.helpers import checks
from tests.unit.transfers.helpers import leftovers

MiB = 1024 * 1024
POLICY = inspect.Policy(tuple(agent_conf.NOVA_DISK_FORMATS))


def read(path):
    with open(path, 'rb') as f:
        return f.read()


@pytest.fixture
def xfers(glance, glance_http, root, notes):
    return transfers.Transfers(
        glance_mod.GlanceImageService(),
        [str(root)],
        None,
        notify=notes,
        formats=POLICY,
    )


@pytest.fixture
def cached_xfers(glance, glance_http, root):
    return transfers.Transfers(
        glance_mod.GlanceImageService(),
        [str(root)],
        None,
        cache=cache_mod.ImageCache(str(root / 'cache'), 64 * MiB),
        formats=POLICY,
    )


@pytest.fixture
def add(glance, disk_images):
    def add(maker, disk_format, **fields):
        data = read(getattr(disk_images, maker)())
        return glance.add_image(
            data=data, disk_format=disk_format, status='active', **fields
        )

    return add


def files(root):
    return sorted(
        os.path.relpath(os.path.join(d, n), root)
        for d, _, names in os.walk(root)
        for n in names
    )


class TestInspection:
    def test_the_result_says_what_the_bytes_are(
        self, xfers, ctx, add, root, glance
    ):
        image = add('qcow2', 'qcow2')
        result = xfers.download(ctx, image['id'], str(root / 'disk'))
        assert result['disk_format_detected'] == 'qcow2'
        assert result['virtual_size'] == 4 * MiB
        assert result['converted_from'] is None
        assert read(root / 'disk') == glance.data[image['id']]

    def test_a_qcow2_labelled_raw_is_refused_and_nothing_written(
        self, xfers, ctx, add, root, notes
    ):
        image = add('qcow2', 'raw')
        with pytest.raises(exception.ImageFormatMismatch):
            xfers.download(ctx, image['id'], str(root / 'disk'))
        assert files(root) == []
        assert notes.types()[-1] == 'image.download.error'

    def test_a_qcow2_naming_a_host_file_is_refused(
        self, xfers, ctx, add, root
    ):
        image = add('qcow2_backing', 'qcow2')
        with pytest.raises(exception.ImageUnacceptable) as e:
            xfers.download(ctx, image['id'], str(root / 'disk'))
        assert 'backing_file' in str(e.value)
        assert files(root) == []

    def test_a_disk_format_not_allowed_is_refused_before_any_byte(
        self, xfers, ctx, glance, glance_http, root
    ):
        image = glance.add_image(data=b'x' * 1000, disk_format='ploop')
        with pytest.raises(exception.ImageUnacceptable):
            xfers.download(ctx, image['id'], str(root / 'disk'))
        assert glance_http.requests == []

    def test_an_unsafe_image_never_enters_the_cache(
        self, cached_xfers, ctx, add, root
    ):
        image = add('qcow2_backing', 'raw')
        with pytest.raises(exception.ImageUnacceptable):
            cached_xfers.download(ctx, image['id'], str(root / 'disk'))
        assert files(root) == []
        assert cached_xfers.list_cache()['entries'] == []

    def test_a_download_from_the_cache_is_inspected_too(
        self, cached_xfers, ctx, add, root
    ):
        image = add('vdi', 'vdi')
        first = cached_xfers.download(ctx, image['id'], str(root / 'a'))
        again = cached_xfers.download(ctx, image['id'], str(root / 'b'))
        assert again['source'] == 'cache'
        for result in (first, again):
            assert result['disk_format_detected'] == 'vdi'
            assert result['virtual_size'] == 4 * MiB

    def test_a_cached_image_refused_now_is_refused_from_the_cache(
        self, cached_xfers, ctx, add, root, glance_http
    ):
        # Cached under a configuration that did not look (or an older
        # agent): the copy from the cache is what is inspected.
        image = add('qcow2', 'raw')
        cached_xfers.shared.formats = None
        cached_xfers.download(ctx, image['id'], str(root / 'a'))
        cached_xfers.shared.formats = POLICY
        before = len(glance_http.requests) - len(checks(glance_http))
        with pytest.raises(exception.ImageFormatMismatch):
            cached_xfers.download(ctx, image['id'], str(root / 'b'))
        assert not (root / 'b').exists()
        assert leftovers(root) == []
        # Refused for what it is: not fetched again from Glance.
        assert len(glance_http.requests) - len(checks(glance_http)) == before

    def test_a_file_in_place_is_inspected_before_it_is_reused(
        self, xfers, ctx, add, root
    ):
        image = add('qcow2', 'qcow2')
        xfers.download(ctx, image['id'], str(root / 'disk'))
        again = xfers.download(ctx, image['id'], str(root / 'disk'))
        assert again['reused'] is True
        assert again['disk_format_detected'] == 'qcow2'


class TestConversion:
    def test_a_qcow2_downloaded_as_raw_is_what_qemu_img_gives(
        self, xfers, ctx, glance, disk_images, root, tmp_path
    ):
        source = disk_images.qcow2()
        image = glance.add_image(
            data=read(source), disk_format='qcow2', status='active'
        )
        result = xfers.download(
            ctx, image['id'], str(root / 'disk'), convert_to='raw'
        )
        by_hand = str(tmp_path / 'by-hand.raw')
        command = ['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw']
        subprocess.run([*command, source, by_hand], check=True)
        assert read(root / 'disk') == read(by_hand)
        assert result['converted_from'] == 'qcow2'
        assert result['size'] == result['virtual_size'] == 4 * MiB
        assert oct(os.stat(root / 'disk').st_mode & 0o777) == oct(0o600)
        assert files(root) == ['disk']

    def test_a_raw_image_downloaded_as_raw_is_not_converted(
        self, xfers, ctx, add, root
    ):
        image = add('raw', 'raw')
        result = xfers.download(
            ctx, image['id'], str(root / 'disk'), convert_to='raw'
        )
        assert result['converted_from'] is None
        assert files(root) == ['disk']

    def test_a_conversion_past_its_limit_leaves_nothing(
        self, xfers, ctx, add, root
    ):
        xfers.shared.conversion = convert.Settings(
            convert.Limits(address_space=32 * MiB, cpu_seconds=60)
        )
        image = add('qcow2', 'qcow2')
        with pytest.raises(exception.ConversionLimitExceeded):
            xfers.download(
                ctx, image['id'], str(root / 'disk'), convert_to='raw'
            )
        assert files(root) == []

    @pytest.mark.parametrize('convert_to', ['qcow2', 'RAW', 1, ['raw']])
    def test_only_raw_is_a_download_conversion(
        self, xfers, ctx, add, root, convert_to
    ):
        image = add('raw', 'raw')
        with pytest.raises(exception.InvalidInput):
            xfers.download(
                ctx, image['id'], str(root / 'disk'), convert_to=convert_to
            )


class TestUploadConversion:
    def test_a_raw_file_is_uploaded_as_qcow2(
        self, xfers, ctx, service, glance, disk_images, root, tmp_path
    ):
        raw = disk_images.raw()
        (root / 'volume').write_bytes(read(raw))
        image = xfers.upload(
            ctx,
            str(root / 'volume'),
            lambda data: service.create(
                ctx, {'name': 'v', 'disk_format': 'qcow2'}, data=data
            ),
            conversion=('raw', 'qcow2'),
        )
        sent = glance.data[image['id']]
        assert sent[:4] == b'QFI\xfb'
        (tmp_path / 'sent.qcow2').write_bytes(sent)
        back = str(tmp_path / 'back.raw')
        subprocess.run(
            ['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
             str(tmp_path / 'sent.qcow2'), back],
            check=True,
        )  # fmt: skip
        assert read(back) == read(raw)

    def test_an_unsafe_file_is_never_converted_nor_sent(
        self, xfers, ctx, disk_images, root
    ):
        unsafe = disk_images.qcow2_backing()
        (root / 'volume').write_bytes(read(unsafe))
        sent = []
        with pytest.raises(exception.ImageUnacceptable):
            xfers.upload(
                ctx,
                str(root / 'volume'),
                sent.append,
                conversion=('qcow2', 'raw'),
            )
        assert sent == []

    def test_a_file_that_is_not_what_its_caller_says_is_refused(
        self, xfers, ctx, disk_images, root
    ):
        (root / 'volume').write_bytes(read(disk_images.qcow2()))
        with pytest.raises(exception.ImageFormatMismatch):
            xfers.upload(
                ctx, str(root / 'volume'), print, conversion=('raw', 'qcow2')
            )
