"""qemu-img converts what the inspector accepted, limited, never probing.

Real qemu-img on real images; the result must be byte for byte what
``qemu-img convert`` run by hand gives.
"""

import contextlib
import errno
import os
import signal
import subprocess

import pytest

from image_agent import exception
from image_agent.formats import convert
from tests.disk_images import MiB

IMAGE_ID = 'c3d1f2a0-1b2c-4d5e-8f90-0a1b2c3d4e5f'
LIMITS = convert.Limits(address_space=1024 * MiB, cpu_seconds=60)


@contextlib.contextmanager
def opened(path, flags=os.O_RDONLY):
    fd = os.open(path, flags, 0o600)
    try:
        yield fd
    finally:
        os.close(fd)


def by_hand(source, qemu_format, tmp_path):
    """What qemu-img convert gives when run by hand."""
    out = str(tmp_path / 'by-hand.raw')
    subprocess.run(
        ['qemu-img', 'convert', '-f', qemu_format, '-O', 'raw', source, out],
        check=True,
    )
    with open(out, 'rb') as f:
        return f.read()


def to_raw(source, disk_format, target, limits=LIMITS):
    with (
        opened(source) as src,
        opened(target, os.O_RDWR | os.O_CREAT | os.O_EXCL) as dst,
    ):
        size = convert.source_size(IMAGE_ID, src, disk_format, limits)
        convert.convert_fd(IMAGE_ID, src, disk_format, dst, size, limits)
        return size


@pytest.mark.parametrize(
    ('maker', 'disk_format', 'qemu_format'),
    [
        ('qcow2', 'qcow2', 'qcow2'),
        ('vmdk', 'vmdk', 'vmdk'),
        ('vmdk_stream_optimized', 'vmdk', 'vmdk'),
        ('vhd', 'vhd', 'vpc'),
        ('vhdx', 'vhdx', 'vhdx'),
        ('vdi', 'vdi', 'vdi'),
        ('iso', 'iso', 'raw'),
    ],
)
def test_an_image_converted_to_raw_is_what_qemu_img_gives_by_hand(
    disk_images, tmp_path, maker, disk_format, qemu_format
):
    source = getattr(disk_images, maker)()
    target = str(tmp_path / 'converted.raw')
    size = to_raw(source, disk_format, target)
    expected = by_hand(source, qemu_format, tmp_path)
    with open(target, 'rb') as f:
        assert f.read() == expected
    assert size == len(expected)


def test_zeros_stay_holes_in_the_raw_file(disk_images, tmp_path):
    target = str(tmp_path / 'converted.raw')
    to_raw(disk_images.qcow2(), 'qcow2', target)
    st = os.stat(target)
    assert st.st_size == 4 * MiB
    # A quarter of the image is zeros: those blocks were never written.
    assert st.st_blocks * 512 <= 3.5 * MiB


def test_the_source_format_is_given_never_probed(disk_images, tmp_path):
    # A qcow2 converted as "raw" is copied as it is: qemu-img was told.
    source = disk_images.qcow2()
    target = str(tmp_path / 'converted.raw')
    to_raw(source, 'raw', target)
    with open(source, 'rb') as a, open(target, 'rb') as b:
        assert a.read() == b.read()


@pytest.mark.parametrize('maker', ['qcow2_data_file', 'qcow2_backing'])
def test_qemu_img_info_must_agree_nothing_else_is_read(
    disk_images, tmp_path, maker
):
    if maker == 'qcow2_backing':
        source = disk_images.qcow2_backing(disk_images.raw('own.raw'))
    else:
        source = disk_images.qcow2_data_file()
    target = str(tmp_path / 'converted.raw')
    with pytest.raises(exception.ImageUnacceptable) as e:
        to_raw(source, 'qcow2', target)
    assert 'qemu-img info sees' in str(e.value)
    assert os.path.getsize(target) == 0


def test_a_conversion_past_its_address_space_is_a_typed_error(
    disk_images, tmp_path
):
    target = str(tmp_path / 'converted.raw')
    limits = convert.Limits(address_space=32 * MiB, cpu_seconds=60)
    with pytest.raises(exception.ConversionLimitExceeded) as e:
        to_raw(disk_images.qcow2(), 'qcow2', target, limits)
    assert 'address space limit' in str(e.value)
    assert isinstance(e.value, exception.ImageConversionFailed)


def test_a_failing_qemu_img_is_a_typed_error(disk_images, tmp_path):
    target = str(tmp_path / 'converted.raw')
    with pytest.raises(exception.ImageConversionFailed) as e:
        to_raw(disk_images.raw(), 'vdi', target)
    assert not isinstance(e.value, exception.ConversionLimitExceeded)
    assert 'qemu-img info failed' in str(e.value)


@pytest.mark.parametrize(
    ('exit_code', 'stderr', 'limit'),
    [
        (-signal.SIGKILL, '', 'CPU time'),
        (-signal.SIGXCPU, '', 'CPU time'),
        (-signal.SIGABRT, '', 'address space'),
        (1, 'qemu-img: Cannot allocate memory', 'address space'),
        (1, 'qemu_thread_create: Resource temporarily unavailable',
         'address space'),
        (1, "qemu-img: Could not open 'x': Invalid argument", None),
    ],
)  # fmt: skip
def test_which_limit_a_failed_process_went_past(exit_code, stderr, limit):
    assert convert.limit_hit(exit_code, stderr) == limit


def test_an_upload_copy_is_converted_in_a_private_directory(
    disk_images, tmp_path
):
    raw = disk_images.raw()
    work = tmp_path / 'work'
    work.mkdir()
    with (
        opened(raw) as src,
        convert.converted_copy(
            IMAGE_ID, src, 'raw', 'qcow2', LIMITS, str(work)
        ) as copy,
    ):
        (private,) = work.iterdir()
        assert private.stat().st_mode & 0o777 == 0o700
        assert copy.read(4) == b'QFI\xfb'
        copied = by_hand(convert.fd_path(copy.fileno()), 'qcow2', tmp_path)
        with open(raw, 'rb') as f:
            assert copied == f.read()
    assert list(work.iterdir()) == []


def test_a_failed_upload_conversion_leaves_nothing(disk_images, tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    limits = convert.Limits(address_space=32 * MiB, cpu_seconds=60)
    with (
        opened(disk_images.raw()) as src,
        pytest.raises(exception.ConversionLimitExceeded),
        convert.converted_copy(
            IMAGE_ID, src, 'raw', 'qcow2', limits, str(work)
        ),
    ):
        pass
    assert list(work.iterdir()) == []


def test_only_known_target_formats_are_made(disk_images, tmp_path):
    with (
        opened(disk_images.raw()) as src,
        pytest.raises(exception.InvalidInput),
    ):
        convert.convert_path(
            IMAGE_ID, src, 'raw', str(tmp_path / 'x'), 'qed', LIMITS
        )


def _qemu_img_calls(monkeypatch):
    """The qemu-img command lines run, the calls going through."""
    calls = []
    execute = convert.processutils.execute

    def spy(*args, **kwargs):
        calls.append(args)
        return execute(*args, **kwargs)

    monkeypatch.setattr(convert.processutils, 'execute', spy)
    return calls


def _cache_mode(command):
    return command[command.index('-t') + 1]


def _takes_o_direct(directory):
    try:
        fd = os.open(
            os.path.join(directory, 'probe'),
            os.O_WRONLY | os.O_CREAT | os.O_DIRECT,
            0o600,
        )
    except OSError:
        return False
    os.close(fd)
    return True


def test_the_result_bypasses_the_page_cache_where_the_filesystem_allows(
    disk_images, tmp_path, monkeypatch
):
    calls = _qemu_img_calls(monkeypatch)
    target = str(tmp_path / 'converted.raw')
    to_raw(disk_images.qcow2(), 'qcow2', target)
    converting = [c for c in calls if 'convert' in c]
    expected = 'none' if _takes_o_direct(str(tmp_path)) else 'writeback'
    assert [_cache_mode(c) for c in converting] == [expected]


def test_a_filesystem_refusing_o_direct_is_written_through_the_page_cache(
    disk_images, tmp_path, monkeypatch
):
    real_open = os.open

    def no_direct(path, flags, *args, **kwargs):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, 'Invalid argument')
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(convert.os, 'open', no_direct)
    calls = _qemu_img_calls(monkeypatch)
    source = disk_images.qcow2()
    target = str(tmp_path / 'converted.raw')
    to_raw(source, 'qcow2', target)
    converting = [c for c in calls if 'convert' in c]
    assert [_cache_mode(c) for c in converting] == ['writeback']
    with open(target, 'rb') as f:
        assert f.read() == by_hand(source, 'qcow2', tmp_path)
