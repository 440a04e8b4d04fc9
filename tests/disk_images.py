"""Disk images of every format the agent inspects, made at test time.

One factory for the unit, functional and fault suites (the ``disk_images``
fixture, a plugin of ``tests/conftest.py``): real images made by
``qemu-img`` (Debian's qemu-utils; ``tools/ensure-services.sh qemu-img``),
and a few hand-built headers (ISO, GPT, VMDK descriptors) where qemu-img
makes none. Unsafe images name host files; they are made so that nothing
is ever written to what they name (``qemu-img create -u`` does not open a
backing file; a data file is always a file of the factory's own:
qemu-img create truncates the data file it is given).
"""

import os
import shutil
import struct
import subprocess

import pytest

MiB = 1024 * 1024
# A host file the unsafe images point at (only ever read by a victim).
HOST_FILE = '/etc/passwd'


def qemu_img(*args: str) -> None:
    subprocess.run(
        ['qemu-img', *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def pattern(size: int, seed: int = 1) -> bytes:
    """``size`` bytes that are not zeros (zeros hide conversion bugs)."""
    block = bytes((seed * 7 + i * 13) % 251 + 1 for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


class DiskImages:
    """Makes images in ``directory``; every method returns a path."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def raw(self, name: str = 'disk.raw', size: int = 4 * MiB) -> str:
        """A raw disk: a data pattern, with a run of zeros in the middle."""
        data = bytearray(pattern(size))
        data[size // 4 : size // 2] = bytes(size // 2 - size // 4)
        path = self.path(name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def converted(self, fmt: str, name: str, *options: str) -> str:
        """A raw disk converted to ``fmt`` (qemu-img's name) by qemu-img."""
        raw = self.raw(name + '.src')
        path = self.path(name)
        qemu_img('convert', '-f', 'raw', '-O', fmt, *options, raw, path)
        os.unlink(raw)
        return path

    def qcow2(self, name: str = 'disk.qcow2') -> str:
        return self.converted('qcow2', name)

    def qcow2_backing(
        self, backing: str = HOST_FILE, name: str = 'backing.qcow2'
    ) -> str:
        """A qcow2 whose backing file is ``backing`` (never opened here)."""
        path = self.path(name)
        qemu_img(
            'create', '-f', 'qcow2', '-u', '-b', backing, '-F', 'raw', path,
            '1M',
        )  # fmt: skip
        return path

    def qcow2_data_file(self, name: str = 'datafile.qcow2') -> str:
        """A qcow2 whose data lives in an external file (of our own)."""
        path = self.path(name)
        data = self.path(name + '.data')
        qemu_img(
            'create', '-f', 'qcow2', '-o', 'data_file=' + data, path, '1M'
        )
        return path

    def vmdk(self, name: str = 'disk.vmdk') -> str:
        return self.converted('vmdk', name, '-o', 'subformat=monolithicSparse')

    def vmdk_stream_optimized(self, name: str = 'stream.vmdk') -> str:
        return self.converted('vmdk', name, '-o', 'subformat=streamOptimized')

    def vmdk_parent(self, name: str = 'child.vmdk') -> str:
        """A monolithicSparse VMDK naming a parent (a backing file)."""
        parent = self.vmdk('parent.vmdk')
        path = self.path(name)
        qemu_img('create', '-f', 'vmdk', '-b', parent, '-F', 'vmdk', path)
        return path

    def vmdk_descriptor(
        self, extent: str = HOST_FILE, name: str = 'descriptor.vmdk'
    ) -> str:
        """A text-only VMDK whose one extent is the file ``extent``."""
        text = (
            '# Disk DescriptorFile\n'
            'version=1\n'
            'CID=fffffffe\n'
            'parentCID=ffffffff\n'
            'createType="monolithicSparse"\n\n'
            '# Extent description\n'
            'RW 2048 SPARSE "%s"\n\n'
            '# The Disk Data Base\n'
            'ddb.virtualHWVersion = "4"\n' % extent
        )
        path = self.path(name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def vhd(self, name: str = 'disk.vhd') -> str:
        return self.converted('vpc', name)

    def vhdx(self, name: str = 'disk.vhdx') -> str:
        return self.converted('vhdx', name)

    def vdi(self, name: str = 'disk.vdi') -> str:
        return self.converted('vdi', name)

    def iso(
        self, name: str = 'disk.iso', blocks: int = 64, mbr: bool = False
    ) -> str:
        """An ISO 9660 image: a primary volume descriptor at 32 KiB
        (``blocks`` blocks of 2 KiB); with ``mbr``, a hybrid ISO whose
        system area holds a protective MBR (a bootable ISO's GPT)."""
        data = bytearray(pattern(blocks * 2048, seed=3))
        data[: 32 * 1024] = bytes(32 * 1024)
        if mbr:
            data[:512] = _protective_mbr(blocks * 4)
        descriptor = bytearray(2048)
        descriptor[0] = 1
        descriptor[1:7] = b'CD001\x01'
        descriptor[80:88] = struct.pack('<I', blocks) + struct.pack(
            '>I', blocks
        )
        descriptor[128:132] = struct.pack('<H', 2048) + struct.pack('>H', 2048)
        data[32 * 1024 : 34 * 1024] = descriptor
        return self._write(name, data)

    def gpt(self, name: str = 'disk.gpt', size: int = 2 * MiB) -> str:
        """A whole-disk image with a GPT (its protective MBR)."""
        data = bytearray(pattern(size, seed=5))
        data[:512] = _protective_mbr(size // 512)
        return self._write(name, data)

    def qcow2_in_iso(self, name: str = 'polyglot.iso') -> str:
        """An ISO whose system area starts with a qcow2 header."""
        iso = bytearray(open(self.iso('inner.iso'), 'rb').read())  # noqa: SIM115
        with open(self.qcow2('inner.qcow2'), 'rb') as f:
            iso[:512] = f.read(512)
        return self._write(name, iso)

    def _write(self, name: str, data: bytes) -> str:
        path = self.path(name)
        with open(path, 'wb') as f:
            f.write(data)
        return path


def _protective_mbr(sectors: int) -> bytes:
    mbr = bytearray(512)
    entry = struct.pack(
        '<B3BB3BII', 0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1, sectors - 1
    )
    mbr[446:462] = entry
    mbr[510:512] = b'\x55\xaa'
    return bytes(mbr)


def have_qemu_img() -> bool:
    return shutil.which('qemu-img') is not None


@pytest.fixture
def disk_images(tmp_path) -> DiskImages:
    """A DiskImages factory in a directory of the test's own."""
    if not have_qemu_img():
        pytest.fail(
            'qemu-img is missing: tools/ensure-services.sh qemu-img '
            'installs it (Debian qemu-utils)'
        )
    directory = tmp_path / 'disk-images'
    directory.mkdir()
    return DiskImages(str(directory))
