"""Cinder's own image_utils, with each image service, compared.

``cinder.image.image_utils`` is what cinder-volume runs to make a volume
from an image and an image from a volume. Each function runs here with
``image_agent.image.glance.GlanceImageService`` and with Cinder's own
``cinder.image.glance.GlanceImageService`` against the same Glance, and
what they leave (files, images, errors) is compared. qemu-img is real.
"""

import hashlib
import io
import json
import os
import subprocess
import sys

from cinder import exception as cinder_exception
import pytest

from image_agent.image import glance
from tests.consumers.cinder_setup import cinder_glance
from tests.consumers.cinder_setup import image_utils

# A raw disk with recognisable content: 2 MiB of random bytes then zeros.
RAW = os.urandom(2 * 1024 * 1024) + bytes(2 * 1024 * 1024)
PROPERTIES = {'hw_disk_bus': 'scsi', 'kept': 'yes'}


def _sha(path) -> str:
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()


def _qemu_img(*args: str) -> None:
    subprocess.run(['qemu-img', *args], check=True, capture_output=True)


@pytest.fixture(scope='module')
def qcow2_bytes(tmp_path_factory) -> bytes:
    """RAW as a qcow2 file made by qemu-img."""
    base = tmp_path_factory.mktemp('qcow2')
    raw, qcow2 = base / 'disk.raw', base / 'disk.qcow2'
    raw.write_bytes(RAW)
    _qemu_img('convert', '-f', 'raw', '-O', 'qcow2', str(raw), str(qcow2))
    return qcow2.read_bytes()


@pytest.fixture
def qcow2_image(images, cinder_demo_context, qcow2_bytes):
    return images(
        cinder_demo_context,
        {'disk_format': 'qcow2'},
        data=io.BytesIO(qcow2_bytes),
        properties=dict(PROPERTIES),
    )


@pytest.fixture
def each_service(image_services, tmp_path):
    """(name, service, a directory of its own) for both services."""
    for name in image_services:
        (tmp_path / name).mkdir()
    return [
        (name, service, tmp_path / name)
        for name, service in image_services.items()
    ]


def test_fetch_verify_image(
    each_service, cinder_demo_context, qcow2_image, qcow2_bytes
):
    digests = {}
    for name, service, where in each_service:
        dest = str(where / 'fetched')
        image_utils.fetch_verify_image(
            cinder_demo_context, service, qcow2_image['id'], dest
        )
        digests[name] = _sha(dest)
    assert digests['image_agent'] == digests['cinder']
    assert digests['cinder'] == hashlib.sha256(qcow2_bytes).hexdigest()
    info = image_utils.qemu_img_info(dest, run_as_root=False)
    assert info.file_format == 'qcow2'


def test_fetch_to_raw_converts_with_qemu_img(
    each_service, cinder_demo_context, qcow2_image
):
    expected = hashlib.sha256(RAW).hexdigest()
    for _, service, where in each_service:
        dest = str(where / 'volume.raw')
        image_utils.fetch_to_raw(
            cinder_demo_context,
            service,
            qcow2_image['id'],
            dest,
            blocksize=1024 * 1024,
            size=1,
            run_as_root=False,
        )
        assert _sha(dest) == expected


def test_a_volume_too_small_is_refused_alike(
    each_service, cinder_demo_context, images
):
    # A qcow2 image whose virtual size (3 GiB) does not fit a 1 GiB
    # volume: both refuse it the same way, before converting.
    base = each_service[0][2]
    big = base / 'big.qcow2'
    _qemu_img('create', '-f', 'qcow2', str(big), '3G')
    made = images(
        cinder_demo_context,
        {'disk_format': 'qcow2'},
        data=io.BytesIO(big.read_bytes()),
    )
    errors = {}
    for name, service, where in each_service:
        with pytest.raises(cinder_exception.ImageUnacceptable) as info:
            image_utils.fetch_to_raw(
                cinder_demo_context,
                service,
                made['id'],
                str(where / 'volume.raw'),
                blocksize=1024 * 1024,
                size=1,
                run_as_root=False,
            )
        errors[name] = info.value.msg
    assert errors['image_agent'] == errors['cinder']


def test_upload_volume_keeps_the_properties(
    each_service, cinder_demo_context, images, tmp_path
):
    volume = tmp_path / 'volume'
    volume.write_bytes(RAW)
    shown = {}
    for name, service, _ in each_service:
        made = images(
            cinder_demo_context,
            {'name': 'upload-%s' % name},
            properties=dict(PROPERTIES),
        )
        image_utils.upload_volume(
            cinder_demo_context,
            service,
            made,
            str(volume),
            run_as_root=False,
            store_id='cheap',
        )
        image = service.show(cinder_demo_context, made['id'])
        shown[name] = {
            'status': image['status'],
            'size': image['size'],
            'os_hash_value': image['os_hash_value'],
            'stores': image.get('stores', image['properties'].get('stores')),
            'custom': {k: image['properties'].get(k) for k in PROPERTIES},
        }
    assert shown['image_agent'] == shown['cinder']
    assert shown['cinder'] == {
        'status': 'active',
        'size': len(RAW),
        'os_hash_value': hashlib.sha512(RAW).hexdigest(),
        'stores': 'cheap',
        'custom': PROPERTIES,
    }


def test_upload_volume_converting_to_qcow2(
    each_service, cinder_demo_context, images, tmp_path
):
    volume = tmp_path / 'volume'
    volume.write_bytes(RAW)
    for name, service, where in each_service:
        made = images(
            cinder_demo_context,
            {'name': 'upload-%s' % name, 'disk_format': 'qcow2'},
        )
        image_utils.upload_volume(
            cinder_demo_context, service, made, str(volume), run_as_root=False
        )
        back = where / 'back.raw'
        image_utils.fetch_to_raw(
            cinder_demo_context,
            service,
            made['id'],
            str(back),
            blocksize=1024 * 1024,
            run_as_root=False,
        )
        assert back.read_bytes() == RAW


@pytest.fixture
def library_as_cinders_module(monkeypatch):
    """image_utils calls ``glance.get_default_image_service()`` itself:
    make that name image_agent's module, as a deployment swapping the
    module would."""

    def use(module):
        monkeypatch.setattr(image_utils, 'glance', module)

    return use


@pytest.mark.parametrize(
    ('store_id', 'error'),
    [
        ('fast', None),
        ('cheap', None),
        ('web', cinder_exception.GlanceStoreReadOnly),
        ('nowhere', cinder_exception.GlanceStoreNotFound),
    ],
)
def test_validate_stores_id(
    cinder_config,
    cinder_demo_context,
    library_as_cinders_module,
    store_id,
    error,
):
    for module in (glance, cinder_glance):
        library_as_cinders_module(module)
        if error is None:
            image_utils.validate_stores_id(cinder_demo_context, store_id)
        else:
            with pytest.raises(error):
                image_utils.validate_stores_id(cinder_demo_context, store_id)


def test_temporary_images_fetch_once(
    each_service, cinder_demo_context, qcow2_image, monkeypatch
):
    expected = hashlib.sha256(RAW).hexdigest()
    for _, service, where in each_service:
        downloads = []
        download = service.download

        def counted(*args, _download=download, _seen=downloads, **kwargs):
            _seen.append(args)
            return _download(*args, **kwargs)

        monkeypatch.setattr(service, 'download', counted)
        assert service.temp_images is None
        with image_utils.TemporaryImages.fetch(
            service, cinder_demo_context, qcow2_image['id']
        ) as tmp:
            assert os.path.exists(tmp)
            registry = service.temp_images
            assert registry.get(cinder_demo_context, qcow2_image['id']) == tmp
            # fetch_to_raw uses the file fetched above: no second download.
            image_utils.fetch_to_raw(
                cinder_demo_context,
                service,
                qcow2_image['id'],
                str(where / 'volume.raw'),
                blocksize=1024 * 1024,
                run_as_root=False,
            )
        assert len(downloads) == 1
        assert not os.path.exists(tmp)
        assert registry.get(cinder_demo_context, qcow2_image['id']) is None
        assert _sha(where / 'volume.raw') == expected


@pytest.mark.parametrize('service', ['image_agent', 'cinder'])
def test_fetch_twice_from_one_native_thread(
    deployment, images, cinder_demo_context, tmp_path, service
):
    # cinder-volume on native threads fetches image after image from the
    # same worker thread; the second fetch used to hang with image_agent's
    # service (its writes came from a new helper thread each time).
    made = images(cinder_demo_context, data=io.BytesIO(RAW))
    args = {
        'service': service,
        'glance_urls': deployment.glance_urls,
        'creds': deployment.authenticate('demo'),
        'image_id': made['id'],
        'dir': str(tmp_path),
        'timeout': 60,
    }
    done = subprocess.run(
        [sys.executable, '-m', 'tests.consumers.fetch_twice'],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, OS_CINDER_DISABLE_EVENTLET_PATCHING='1'),
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result['sha256'] == [hashlib.sha256(RAW).hexdigest()] * 2
