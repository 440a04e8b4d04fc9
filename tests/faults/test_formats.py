"""What an image's bytes say, played by an attacker (scenarios 70-75).

qemu trusts a disk image's header: a qcow2 naming a backing or data file,
a VMDK naming a parent, makes it read host files into a guest
(CVE-2024-32498). Glance 33 refuses such an upload, but accepts a valid
qcow2 labelled ``raw`` and serves images added by location as they are
(here: the deployment's ``web`` http store and its file server). The
agent refuses them all over RPC, and leaves nothing behind: neither at
the destination nor in its cache. Conversions run under process limits.
"""

import os
import subprocess
import uuid

import pytest

from image_agent import exception
from tests.disk_images import HOST_FILE
from tests.disk_images import MiB

pytestmark = pytest.mark.slow


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def written(root):
    return sorted(
        os.path.relpath(os.path.join(d, n), root)
        for d, _, names in os.walk(root)
        for n in names
    )


@pytest.fixture(scope='module')
def formats_agent(agent_factory):
    """An agent with a cache: refused images must not enter it."""
    agent = agent_factory('formats-%s' % uuid.uuid4().hex[:4], start=False)
    with open(agent.config_file, 'a') as f:
        f.write(
            '[agent]\ncache_dir = %s\n' % os.path.join(agent.root, 'cache')
        )
    agent.start()
    yield agent
    agent.stop()


@pytest.fixture(scope='module')
def limited_agent(agent_factory):
    agent = agent_factory(
        'formats-limited-%s' % uuid.uuid4().hex[:4],
        options={'agent': {'qemu_img_address_space_mb': '32'}},
    )
    yield agent
    agent.stop()


@pytest.fixture
def by_location(deployment, image_service, images, demo_context):
    """An image whose bytes are the file at ``path``, served by the
    deployment's file server through Glance's http store: Glance never
    looked at them."""

    def add(path, disk_format):
        name = 'formats-%s' % uuid.uuid4().hex[:8]
        with open(os.path.join(deployment.fileserver_dir, name), 'wb') as f:
            f.write(read(path))
        made = images(demo_context, disk_format=disk_format)
        image_service.add_location(
            demo_context,
            made['id'],
            '%s/%s' % (deployment.fileserver_url, name),
            {'origin': 'formats-test'},
        )
        return made

    return add


def _refused(row, api, context, image, agent, cls):
    """Download ``image`` with ``agent``: the error, and what was left."""
    target = os.path.join(agent.root, 'disk-%s' % image['id'][:8])
    row.add(calls=1, faults=1)
    try:
        api.download(context, image['id'], target, host=agent.host)
    except cls as e:
        row.error(e)
    except Exception as e:
        row.add(failures=1)
        raise AssertionError('expected %s, got %r' % (cls.__name__, e)) from e
    else:
        row.add(failures=1, bytes_lost=os.path.getsize(target))
        raise AssertionError('the image was written')
    left = written(agent.root)
    if left:
        row.add(failures=1)
    return left


@pytest.mark.scenario('70. qcow2 uploaded as raw')
def test_a_qcow2_labelled_raw_is_refused_with_nothing_written(
    row,
    api,
    formats_agent,
    images,
    demo_context,
    disk_images,
):
    with open(disk_images.qcow2(), 'rb') as f:
        image = images(demo_context, data=f, disk_format='raw')
    left = _refused(
        row,
        api,
        demo_context,
        image,
        formats_agent,
        exception.ImageFormatMismatch,
    )
    assert left == []


@pytest.mark.scenario('71. qcow2 naming /etc/passwd, by location')
def test_a_qcow2_backed_by_a_host_file_is_refused(
    row,
    api,
    formats_agent,
    demo_context,
    disk_images,
    by_location,
):
    before = read(HOST_FILE)
    for disk_format in ('qcow2', 'raw'):
        image = by_location(disk_images.qcow2_backing(HOST_FILE), disk_format)
        left = _refused(
            row,
            api,
            demo_context,
            image,
            formats_agent,
            exception.ImageUnacceptable,
        )
        assert left == []
    assert read(HOST_FILE) == before


@pytest.mark.scenario('72. VMDK naming a parent or outside extent')
def test_vmdks_that_read_other_files_are_refused(
    row,
    api,
    formats_agent,
    demo_context,
    disk_images,
    by_location,
):
    # oslo.utils 10.2 passes both; qemu opens the files they name.
    for path in (
        disk_images.vmdk_parent(),
        disk_images.vmdk_descriptor('neighbour.vmdk'),
        disk_images.vmdk_descriptor(HOST_FILE),
    ):
        image = by_location(path, 'vmdk')
        left = _refused(
            row,
            api,
            demo_context,
            image,
            formats_agent,
            exception.ImageUnacceptable,
        )
        assert left == []


@pytest.mark.scenario('73. qcow2 converted to raw')
def test_a_safe_qcow2_converted_to_raw_is_qemu_imgs_by_hand(
    row,
    api,
    formats_agent,
    images,
    demo_context,
    disk_images,
    tmp_path,
):
    source = disk_images.qcow2()
    with open(source, 'rb') as f:
        image = images(demo_context, data=f, disk_format='qcow2')
    by_hand = str(tmp_path / 'by-hand.raw')
    subprocess.run(
        ['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', source, by_hand],
        check=True,
    )  # fmt: skip
    expected = read(by_hand)
    for attempt in ('glance', 'cache'):
        target = os.path.join(formats_agent.root, 'raw-%s' % attempt)
        row.add(calls=1)
        result = api.download(
            demo_context,
            image['id'],
            target,
            host=formats_agent.host,
            convert_to='raw',
        )
        got = read(target)
        if got != expected:
            row.add(failures=1, bytes_lost=len(expected))
        assert got == expected
        assert result['converted_from'] == 'qcow2'
        assert result['virtual_size'] == 4 * MiB
        os.unlink(target)
    assert result['source'] == 'cache'


@pytest.mark.scenario('74. Conversion past its process limit')
def test_a_conversion_past_its_limit_is_typed_and_leaves_nothing(
    row,
    api,
    limited_agent,
    images,
    demo_context,
    disk_images,
):
    with open(disk_images.qcow2(), 'rb') as f:
        image = images(demo_context, data=f, disk_format='qcow2')
    target = os.path.join(limited_agent.root, 'disk.raw')
    row.add(calls=1, faults=1)
    with pytest.raises(exception.ConversionLimitExceeded) as e:
        api.download(
            demo_context,
            image['id'],
            target,
            host=limited_agent.host,
            convert_to='raw',
        )
    row.error(e.value)
    left = written(limited_agent.root)
    if left:
        row.add(failures=1)
    assert left == []


@pytest.mark.scenario('75. Unsafe file uploaded with convert_from')
def test_an_unsafe_local_file_is_never_converted_nor_sent(
    row,
    api,
    formats_agent,
    images,
    image_service,
    demo_context,
    disk_images,
):
    # qemu-img would read /etc/passwd into the upload: Glance would get
    # the agent host's file.
    source = os.path.join(formats_agent.root, 'volume.qcow2')
    with open(disk_images.qcow2_backing(HOST_FILE), 'rb') as f:
        data = f.read()
    with open(source, 'wb') as f:
        f.write(data)
    target = images(demo_context)
    row.add(calls=1, faults=1)
    with pytest.raises(exception.ImageUnacceptable) as e:
        api.update(
            demo_context,
            target['id'],
            {'disk_format': 'raw'},
            path=source,
            host=formats_agent.host,
            convert_from='qcow2',
        )
    row.error(e.value)
    os.unlink(source)
    shown = image_service.show(demo_context, target['id'])
    if shown['status'] != 'queued':
        row.add(failures=1)
    assert shown['status'] == 'queued'
