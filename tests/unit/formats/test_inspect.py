"""An image's bytes must be what its disk_format says, and safe for qemu.

Every image here is real, made by qemu-img at test time (or a hand-built
header where qemu-img makes none), and fed to the inspector in chunks as
the download pipeline feeds it: views of a reused buffer.
"""

import os

import pytest

from image_agent import exception
from image_agent.conf import agent as agent_conf
from image_agent.formats import inspect
from tests.disk_images import HOST_FILE
from tests.disk_images import MiB

ALLOWED = agent_conf.NOVA_DISK_FORMATS
IMAGE_ID = 'c3d1f2a0-1b2c-4d5e-8f90-0a1b2c3d4e5f'


def stream(path, disk_format, chunk_size=256 * 1024, allowed=ALLOWED):
    """Inspect the file at ``path`` as the pipeline would, chunk by chunk
    through one reused buffer."""
    inspector = inspect.StreamInspector(IMAGE_ID, disk_format, allowed)
    buffer = bytearray(chunk_size)
    with open(path, 'rb', buffering=0) as f, memoryview(buffer) as view:
        while count := f.readinto(view):
            with view[:count] as chunk:
                inspector.update(chunk)
    return inspector.finish()


@pytest.mark.parametrize(
    ('maker', 'disk_format', 'virtual_size'),
    [
        ('raw', 'raw', 4 * MiB),
        ('qcow2', 'qcow2', 4 * MiB),
        ('vmdk', 'vmdk', 4 * MiB),
        ('vmdk_stream_optimized', 'vmdk', 4 * MiB),
        ('vhdx', 'vhdx', 4 * MiB),
        ('vdi', 'vdi', 4 * MiB),
        ('iso', 'iso', 64 * 2048),
        ('gpt', 'gpt', 2 * MiB),
    ],
)
def test_a_safe_image_of_its_disk_format_is_accepted(
    disk_images, maker, disk_format, virtual_size
):
    found = stream(getattr(disk_images, maker)(), disk_format)
    assert found.detected == disk_format
    assert found.virtual_size == virtual_size
    assert found.as_dict() == {
        'disk_format_detected': disk_format,
        'virtual_size': virtual_size,
    }


def test_a_vhd_is_accepted_with_the_size_qemu_gave_it(disk_images):
    # qemu rounds a VHD to its CHS geometry: a little over 4 MiB.
    found = stream(disk_images.vhd(), 'vhd')
    assert found.detected == 'vhd'
    assert 4 * MiB <= found.virtual_size < 5 * MiB


@pytest.mark.parametrize('chunk_size', [512, 4096, 65536, MiB, 4 * MiB])
@pytest.mark.parametrize(
    ('maker', 'disk_format'),
    [
        ('qcow2', 'qcow2'),
        ('vhdx', 'vhdx'),
        ('vmdk', 'vmdk'),
        ('vmdk_stream_optimized', 'vmdk'),
        ('iso', 'iso'),
        ('vdi', 'vdi'),
    ],
)
def test_the_chunk_size_does_not_change_the_verdict(
    disk_images, chunk_size, maker, disk_format
):
    # The pipeline hands over 4 MiB buffers: a VHDX's size lies in a
    # region found only once an earlier one was read.
    found = stream(getattr(disk_images, maker)(), disk_format, chunk_size)
    assert found.detected == disk_format
    assert found.virtual_size


@pytest.mark.parametrize('chunk_size', [4096, 4 * MiB])
def test_the_chunk_size_does_not_hide_a_backing_file(disk_images, chunk_size):
    with pytest.raises(exception.ImageUnacceptable):
        stream(disk_images.qcow2_backing(), 'qcow2', chunk_size)


def test_a_gpt_disk_passes_as_raw_as_in_nova(disk_images):
    found = stream(disk_images.gpt(), 'raw')
    assert found.detected == 'gpt'
    assert found.disk_format == 'raw'


def test_a_hybrid_iso_with_a_gpt_in_its_system_area_is_an_iso(disk_images):
    found = stream(disk_images.iso(mbr=True), 'iso')
    assert found.detected == 'iso'


@pytest.mark.parametrize(
    ('maker', 'disk_format', 'detected'),
    [
        ('qcow2', 'raw', 'qcow2'),
        ('vmdk', 'raw', 'vmdk'),
        ('vhdx', 'raw', 'vhdx'),
        ('vdi', 'raw', 'vdi'),
        ('iso', 'raw', 'iso'),
    ],
)
def test_content_of_another_format_than_its_disk_format_is_refused(
    disk_images, maker, disk_format, detected
):
    with pytest.raises(exception.ImageFormatMismatch) as e:
        stream(getattr(disk_images, maker)(), disk_format)
    assert e.value.kwargs['detected'] == detected
    assert '%s but its disk_format says %s' % (detected, disk_format) in str(
        e.value
    )


@pytest.mark.parametrize('disk_format', ['qcow2', 'vmdk', 'gpt'])
def test_a_raw_image_labelled_otherwise_is_refused_at_its_first_chunk(
    disk_images, disk_format
):
    # The transfer stops there: the rest is never fetched.
    inspector = inspect.StreamInspector(IMAGE_ID, disk_format, ALLOWED)
    with open(disk_images.raw(), 'rb') as f:
        first = f.read(MiB)
    with pytest.raises(exception.ImageFormatMismatch) as e:
        inspector.update(memoryview(first))
    assert 'its content is not %s' % disk_format in str(e.value)


def test_a_qcow2_naming_a_backing_file_is_refused(disk_images):
    with pytest.raises(exception.ImageUnacceptable) as e:
        stream(disk_images.qcow2_backing(HOST_FILE), 'qcow2')
    assert 'qcow2 safety checks' in str(e.value)
    assert 'backing_file' in str(e.value)


def test_a_qcow2_with_a_backing_file_labelled_raw_is_refused(disk_images):
    # The attack of CVE-2024-32498: Glance accepts it as "raw".
    with pytest.raises(exception.ImageUnacceptable) as e:
        stream(disk_images.qcow2_backing(HOST_FILE), 'raw')
    assert 'backing_file' in str(e.value)


def test_a_qcow2_with_an_external_data_file_is_refused(disk_images):
    with pytest.raises(exception.ImageUnacceptable) as e:
        stream(disk_images.qcow2_data_file(), 'qcow2')
    assert 'data_file' in str(e.value)


@pytest.mark.parametrize('extent', [HOST_FILE, 'neighbour.vmdk'])
def test_a_vmdk_descriptor_naming_an_outside_extent_is_refused(
    disk_images, extent
):
    # A bare name is a file beside the image: outside it all the same.
    with pytest.raises(exception.ImageUnacceptable) as e:
        stream(disk_images.vmdk_descriptor(extent), 'vmdk')
    assert not isinstance(e.value, exception.ImageFormatMismatch)


def test_a_vmdk_naming_a_parent_is_refused(disk_images):
    # oslo.utils 10.2 passes it; qemu opens the parent as a backing file.
    with pytest.raises(exception.ImageUnacceptable) as e:
        stream(disk_images.vmdk_parent(), 'vmdk')
    assert 'parent' in str(e.value)


def test_an_image_matching_two_formats_at_once_is_refused(disk_images):
    with pytest.raises(exception.ImageUnacceptable) as e:
        stream(disk_images.qcow2_in_iso(), 'iso')
    assert 'several formats' in str(e.value)


def test_ami_formats_are_not_compared_but_must_be_safe(disk_images):
    assert stream(disk_images.qcow2(), 'ami').detected == 'qcow2'
    with pytest.raises(exception.ImageUnacceptable):
        stream(disk_images.qcow2_backing(), 'aki')


@pytest.mark.parametrize(
    ('disk_format', 'reason'),
    [
        (None, 'no disk_format'),
        ('', 'no disk_format'),
        ('ploop', 'not allowed here'),
        ('qed', 'not allowed here'),
    ],
)
def test_a_disk_format_never_accepted_is_refused_before_any_byte(
    disk_format, reason
):
    with pytest.raises(exception.ImageUnacceptable) as e:
        inspect.StreamInspector(IMAGE_ID, disk_format, ALLOWED)
    assert reason in str(e.value)


def test_an_allowed_disk_format_without_an_inspector_is_refused():
    with pytest.raises(exception.ImageUnacceptable) as e:
        inspect.StreamInspector(IMAGE_ID, 'ploop', ['ploop'])
    assert 'cannot be inspected' in str(e.value)


def test_disk_formats_allowed_narrows_what_is_accepted(disk_images):
    with pytest.raises(exception.ImageUnacceptable) as e:
        stream(disk_images.vdi(), 'vdi', allowed=['raw', 'qcow2'])
    assert 'disk_formats_allowed' in str(e.value)


def test_inspection_keeps_nothing_of_the_reused_buffer(disk_images):
    path = disk_images.qcow2()
    inspector = inspect.StreamInspector(IMAGE_ID, 'qcow2', ALLOWED)
    buffer = bytearray(os.path.getsize(path))
    with open(path, 'rb') as f:
        f.readinto(buffer)
    with memoryview(buffer) as view:
        inspector.update(view)
    buffer[:] = bytes(len(buffer))  # the pipeline reuses its buffers
    assert inspector.finish().detected == 'qcow2'


def test_a_local_file_is_inspected_from_its_first_bytes(disk_images):
    path = disk_images.raw(size=16 * MiB)
    fd = os.open(path, os.O_RDONLY)
    try:
        found = inspect.inspect_file(IMAGE_ID, fd, 'raw', ALLOWED)
    finally:
        os.close(fd)
    assert (found.detected, found.virtual_size) == ('raw', 16 * MiB)


def test_a_source_that_may_be_wrong_is_judged_after_its_hash(disk_images):
    # Another agent's bytes: an early refusal would hide that they fail
    # the hash (and the download would not fall back to Glance).
    inspector = inspect.StreamInspector(
        IMAGE_ID, 'qcow2', ALLOWED, early=False
    )
    with open(disk_images.raw(), 'rb') as f:
        inspector.update(memoryview(f.read()))
    with pytest.raises(exception.ImageFormatMismatch):
        inspector.finish()
