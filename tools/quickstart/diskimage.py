"""A small but genuine disk image: an MBR partition table and ext2.

The filesystem is made by ``mke2fs -d`` (e2fsprogs) from a small tree of
files; the partition table is written here. The result is what a cloud
image is at heart (a raw disk a VM could be given, with a partition a
kernel would mount), just a few MiB, so the quickstart moves real image
data without a download from the Internet.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile

from tools.testenv.util import DeploymentError

SECTOR = 512
DISK_SIZE = 8 * 1024 * 1024
#: The first partition starts at 1 MiB, as fdisk and parted align it.
PART_START = 2048
PART_TYPE_LINUX = 0x83
LABEL = 'quickstart'
PAYLOAD_SIZE = 3 * 1024 * 1024
EXT2_MAGIC = 0xEF53
# CHS geometry used by partitioning tools for disks without a real one.
_HEADS, _SECTORS = 255, 63

README = """\
A disk image made by image-agent's quickstart (tools/quickstart.sh).

It holds an MBR partition table and one Linux partition with an ext2
filesystem labelled "quickstart". boot/payload.bin is random data standing
in for the kernel and root filesystem of a real cloud image.
"""


def _chs(lba: int) -> bytes:
    """The 3-byte CHS address of ``lba`` (clamped as tools do)."""
    cylinder = lba // (_HEADS * _SECTORS)
    if cylinder > 1023:
        return bytes((254, 0xFF, 0xFF))
    head = (lba // _SECTORS) % _HEADS
    sector = lba % _SECTORS + 1
    return bytes((head, sector | ((cylinder >> 2) & 0xC0), cylinder & 0xFF))


def mbr(start: int, count: int, disk_id: int) -> bytes:
    """A master boot record with one bootable Linux partition."""
    entry = (
        b'\x80'
        + _chs(start)
        + bytes((PART_TYPE_LINUX,))
        + _chs(start + count - 1)
        + struct.pack('<II', start, count)
    )
    record = bytearray(SECTOR)
    struct.pack_into('<I', record, 440, disk_id)
    record[446 : 446 + 16] = entry
    record[510:512] = b'\x55\xaa'
    return bytes(record)


def _write_tree(root: str) -> None:
    os.makedirs(os.path.join(root, 'etc'))
    os.makedirs(os.path.join(root, 'boot'))
    files = {
        'README': README.encode(),
        'etc/hostname': b'quickstart\n',
        'etc/os-release': b'NAME="quickstart disk"\nID=quickstart\n',
        'boot/payload.bin': os.urandom(PAYLOAD_SIZE),
    }
    for name, data in files.items():
        with open(os.path.join(root, name), 'wb') as f:
            f.write(data)


def _run(cmd: list[str], what: str) -> str:
    if shutil.which(cmd[0]) is None:
        raise DeploymentError(
            '%s is needed to %s: install it (Debian package e2fsprogs)'
            % (cmd[0], what)
        )
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise DeploymentError(
            '%s failed (exit %d): %s'
            % (' '.join(cmd), proc.returncode, proc.stdout + proc.stderr)
        )
    return proc.stdout


def build(path: str) -> str:
    """Write the disk image to ``path`` (atomically); describe it."""
    fs_size = DISK_SIZE - PART_START * SECTOR
    directory = os.path.dirname(path)
    with tempfile.TemporaryDirectory(prefix='.build-', dir=directory) as tmp:
        tree = os.path.join(tmp, 'tree')
        _write_tree(tree)
        fs_path = os.path.join(tmp, 'ext2.img')
        with open(fs_path, 'wb') as f:
            f.truncate(fs_size)
        _run(
            ['mke2fs', '-q', '-F', '-t', 'ext2', '-L', LABEL, '-d', tree,
             fs_path],
            'make the filesystem',
        )  # fmt: skip
        # -f: check everything, -n: change nothing.
        _run(['e2fsck', '-f', '-n', fs_path], 'check the filesystem')
        disk_path = os.path.join(tmp, 'disk.raw')
        with open(disk_path, 'wb') as out, open(fs_path, 'rb') as fs:
            disk_id = int.from_bytes(os.urandom(4), 'little')
            out.write(mbr(PART_START, fs_size // SECTOR, disk_id))
            out.seek(PART_START * SECTOR)
            shutil.copyfileobj(fs, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        description = describe(disk_path)
        os.replace(disk_path, path)
    return description


def describe(path: str) -> str:
    """Check that ``path`` is such a disk image and say what it holds."""
    with open(path, 'rb') as f:
        record = f.read(SECTOR)
        if len(record) < SECTOR or record[510:512] != b'\x55\xaa':
            raise DeploymentError('%s has no MBR signature' % path)
        status, ptype = record[446], record[446 + 4]
        start, count = struct.unpack_from('<II', record, 446 + 8)
        if ptype != PART_TYPE_LINUX or not start or not count:
            raise DeploymentError(
                '%s: partition 1 is not a Linux partition' % path
            )
        f.seek(start * SECTOR + 1024)
        superblock = f.read(1024)
        size = os.fstat(f.fileno()).st_size
    (magic,) = struct.unpack_from('<H', superblock, 56)
    if magic != EXT2_MAGIC:
        raise DeploymentError(
            '%s: partition 1 holds no ext2 filesystem' % path
        )
    label = superblock[120:136].rstrip(b'\0').decode('ascii', 'replace')
    return (
        '%.0f MiB raw disk: MBR, partition 1%s type 0x%02x at sector %d '
        '(%.0f MiB), ext2 filesystem "%s"'
        % (
            size / 2**20,
            ' (bootable)' if status == 0x80 else '',
            ptype,
            start,
            count * SECTOR / 2**20,
            label,
        )
    )
