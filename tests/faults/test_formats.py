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


@pytest.fixture
def uploaded(images, demo_context):
    """uploaded(path, disk_format): an image of the file at ``path``."""

    def upload(path, disk_format):
        with open(path, 'rb') as f:
            return images(demo_context, data=f, disk_format=disk_format)

    return upload


@pytest.fixture
def refused(row, api, demo_context):
    """refused(agent, image, cls, **download_args): download ``image``
    with ``agent``, which must fail with ``cls``; what the agent left under
    its root."""

    def download(agent, image, cls, **download_args):
        target = os.path.join(agent.root, 'disk-%s' % image['id'][:8])
        row.add(calls=1, faults=1)
        try:
            api.download(
                demo_context,
                image['id'],
                target,
                host=agent.host,
                **download_args,
            )
        except cls as e:
            row.error(e)
        except Exception as e:
            row.add(failures=1)
            raise AssertionError(
                'expected %s, got %r' % (cls.__name__, e)
            ) from e
        else:
            row.add(failures=1, bytes_lost=os.path.getsize(target))
            raise AssertionError('the image was written')
        left = written(agent.root)
        if left:
            row.add(failures=1)
        return left

    return download


@pytest.mark.scenario('70. qcow2 uploaded as raw')
def test_a_qcow2_labelled_raw_is_refused_with_nothing_written(
    formats_agent, disk_images, uploaded, refused
):
    image = uploaded(disk_images.qcow2(), 'raw')
    left = refused(formats_agent, image, exception.ImageFormatMismatch)
    assert left == []


@pytest.mark.scenario('71. qcow2 naming /etc/passwd, by location')
def test_a_qcow2_backed_by_a_host_file_is_refused(
    formats_agent, disk_images, by_location, refused
):
    before = read(HOST_FILE)
    for disk_format in ('qcow2', 'raw'):
        image = by_location(disk_images.qcow2_backing(HOST_FILE), disk_format)
        left = refused(formats_agent, image, exception.ImageUnacceptable)
        assert left == []
    assert read(HOST_FILE) == before


@pytest.mark.scenario('72. VMDK naming a parent or outside extent')
def test_vmdks_that_read_other_files_are_refused(
    formats_agent, disk_images, by_location, refused
):
    # oslo.utils 10.2 passes both; qemu opens the files they name.
    for path in (
        disk_images.vmdk_parent(),
        disk_images.vmdk_descriptor('neighbour.vmdk'),
        disk_images.vmdk_descriptor(HOST_FILE),
    ):
        image = by_location(path, 'vmdk')
        left = refused(formats_agent, image, exception.ImageUnacceptable)
        assert left == []


@pytest.mark.scenario('73. qcow2 converted to raw')
def test_a_safe_qcow2_converted_to_raw_is_qemu_imgs_by_hand(
    row,
    api,
    formats_agent,
    demo_context,
    disk_images,
    uploaded,
    tmp_path,
):
    source = disk_images.qcow2()
    image = uploaded(source, 'qcow2')
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
    limited_agent, disk_images, uploaded, refused
):
    image = uploaded(disk_images.qcow2(), 'qcow2')
    left = refused(
        limited_agent,
        image,
        exception.ConversionLimitExceeded,
        convert_to='raw',
    )
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
