"""Format safety and conversion end to end, through the client library.

Real images made by qemu-img (``tests/disk_images``), uploaded to the real
Glance, downloaded by a real agent over RabbitMQ: what the agent writes is
what the image's disk_format says, safe for qemu, and converted to raw on
request exactly as ``qemu-img convert`` run by hand converts it.
"""

import os
import subprocess
import uuid

import pytest

from image_agent import exception
from image_agent import paths
from tests.disk_images import MiB


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def upload(images, context, path, disk_format):
    with open(path, 'rb') as f:
        return images(context, data=f, disk_format=disk_format)


def written(root):
    """Every file under ``root`` (downloads and temporary files)."""
    return sorted(
        os.path.relpath(os.path.join(d, n), root)
        for d, _, names in os.walk(root)
        for n in names
    )


@pytest.fixture
def workdir(agent):
    """A fresh directory of this test's own under the agent's root."""
    path = os.path.join(agent.root, 'formats-%s' % uuid.uuid4().hex[:8])
    os.makedirs(path)
    return path


def test_a_qcow2_labelled_raw_is_refused_and_nothing_written(
    api,
    agent,
    images,
    demo_context,
    disk_images,
    workdir,
):
    # Glance 33 accepts a valid qcow2 labelled raw; the agent does not.
    image = upload(images, demo_context, disk_images.qcow2(), 'raw')
    with pytest.raises(exception.ImageFormatMismatch) as e:
        api.download(
            demo_context,
            image['id'],
            os.path.join(workdir, 'disk'),
            host=agent.host,
        )
    assert 'its content is qcow2' in str(e.value)
    assert written(workdir) == []


def test_a_safe_image_says_what_it_is(
    api,
    agent,
    images,
    demo_context,
    disk_images,
    workdir,
):
    source = disk_images.vhdx()
    image = upload(images, demo_context, source, 'vhdx')
    target = os.path.join(workdir, 'disk.vhdx')
    result = api.download(demo_context, image['id'], target, host=agent.host)
    assert read(target) == read(source)
    assert result['disk_format_detected'] == 'vhdx'
    assert result['virtual_size'] == 4 * MiB
    assert result['converted_from'] is None


def test_a_qcow2_downloaded_as_raw_is_what_qemu_img_gives_by_hand(
    api,
    agent,
    images,
    demo_context,
    disk_images,
    workdir,
    tmp_path,
):
    source = disk_images.qcow2()
    image = upload(images, demo_context, source, 'qcow2')
    target = os.path.join(workdir, 'disk.raw')
    result = api.download(
        demo_context, image['id'], target, host=agent.host, convert_to='raw'
    )
    by_hand = str(tmp_path / 'by-hand.raw')
    subprocess.run(
        ['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', source, by_hand],
        check=True,
    )  # fmt: skip
    assert read(target) == read(by_hand)
    assert result['converted_from'] == 'qcow2'
    assert result['size'] == result['virtual_size'] == 4 * MiB
    # The hash is the image's (the qcow2 Glance holds), as before.
    assert result['os_hash_value'] == image['os_hash_value']
    assert written(workdir) == ['disk.raw']
    assert not any(paths.is_temp_name(n) for n in os.listdir(workdir))


def test_a_raw_volume_is_uploaded_as_qcow2_and_comes_back_the_same(
    api,
    agent,
    images,
    image_service,
    demo_context,
    admin_context,
    disk_images,
    workdir,
):
    volume = os.path.join(workdir, 'volume')
    with open(disk_images.raw(), 'rb') as f, open(volume, 'wb') as out:
        out.write(f.read())
    created = api.create(
        demo_context,
        {
            'name': 'volume-%s' % uuid.uuid4().hex[:6],
            'disk_format': 'qcow2',
            'container_format': 'bare',
        },
        path=volume,
        host=agent.host,
        convert_from='raw',
    )
    try:
        assert created['disk_format'] == 'qcow2'
        back = os.path.join(workdir, 'back.raw')
        result = api.download(
            demo_context,
            created['id'],
            back,
            host=agent.host,
            convert_to='raw',
        )
        assert result['disk_format_detected'] == 'qcow2'
        assert read(back) == read(volume)
    finally:
        image_service.delete(admin_context, created['id'])


@pytest.fixture(scope='module')
def limited_agent(agent_factory):
    """An agent whose qemu-img may not have the memory it needs."""
    agent = agent_factory(
        'formats-limited-%s' % uuid.uuid4().hex[:4],
        options={'agent': {'qemu_img_address_space_mb': '32'}},
    )
    yield agent
    agent.stop()


def test_a_conversion_past_its_limit_is_a_typed_error_leaving_nothing(
    api,
    limited_agent,
    images,
    demo_context,
    disk_images,
):
    image = upload(images, demo_context, disk_images.qcow2(), 'qcow2')
    with pytest.raises(exception.ConversionLimitExceeded):
        api.download(
            demo_context,
            image['id'],
            os.path.join(limited_agent.root, 'disk.raw'),
            host=limited_agent.host,
            convert_to='raw',
        )
    assert written(limited_agent.root) == []
