"""The agent's local copy of an image file vs ``cp``, same file, same run.

    python -m tools.bench.local_copy [--size-mib 1024] [--runs 3] [--dir D]

Makes a file of random bytes in ``--dir`` (default /var/tmp; source and
copies on the same filesystem, as a Glance file store and the agent's
roots or cache usually are), then alternates:

* ``agent copy (verified, fsync)``: ``localcopy.copy_verified`` into a
  fresh file (reflink or ``copy_file_range``, the copy read back and
  sha512-hashed while it runs), then ``fsync``: what the agent does for a
  ``file://`` location or a cache entry;
* ``kernel copy (fsync)``: the ``copy_file_range`` loop alone (no hash);
* ``cp (+ fsync)``: ``cp SRC DST`` then ``sync DST``;
* ``cp (+ sha512sum, fsync)``: the agent's work by hand.

The source is read once first, so every method starts with it in the page
cache. Prints every run, the medians in MB/s (10^6 bytes/s), and the ratio
of the agent's copy to ``cp``.
"""

import argparse
import contextlib
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from image_agent.data import localcopy
from image_agent.data import verify

CHUNK = 16 * 1024 * 1024


def make_source(path: str, size: int) -> dict:
    """A file of ``size`` random bytes; the image dict Glance would show."""
    block = os.urandom(CHUNK)
    digest = hashlib.sha512()
    with open(path, 'wb') as f:
        left = size
        while left:
            piece = block[: min(left, CHUNK)]
            f.write(piece)
            digest.update(piece)
            left -= len(piece)
        f.flush()
        os.fsync(f.fileno())
    return {
        'id': 'bench',
        'size': size,
        'os_hash_algo': 'sha512',
        'os_hash_value': digest.hexdigest(),
    }


@contextlib.contextmanager
def open_source(src: str):
    """The source as the agent opens a local file (a descriptor)."""
    fd = localcopy.open_regular(src)
    try:
        yield fd
    finally:
        os.close(fd)


def agent_copy(src: str, dst: str, image: dict) -> None:
    fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open_source(src) as source:
            localcopy.copy_verified(
                source, fd, image['size'], verify.ImageHasher(image)
            )
        os.fsync(fd)
    finally:
        os.close(fd)


def kernel_copy(src: str, dst: str) -> None:
    fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open_source(src) as source:
            size = os.fstat(source).st_size
            done = 0
            while done < size:
                done += os.copy_file_range(source, fd, size - done)
        os.fsync(fd)
    finally:
        os.close(fd)


def cp(src: str, dst: str, verify: bool = False) -> None:
    subprocess.run(['cp', src, dst], check=True)
    if verify:
        subprocess.run(
            ['sha512sum', dst], check=True, stdout=subprocess.DEVNULL
        )
    subprocess.run(['sync', dst], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size-mib', type=int, default=1024)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--dir', default='/var/tmp')  # noqa: S108
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    workdir = tempfile.mkdtemp(prefix='image-agent-bench-copy-', dir=args.dir)
    methods = {
        'agent copy (verified, fsync)': lambda s, d: agent_copy(s, d, image),
        'kernel copy (fsync)': kernel_copy,
        'cp (+ fsync)': cp,
        'cp (+ sha512sum, fsync)': lambda s, d: cp(s, d, verify=True),
    }
    results: dict[str, list[float]] = {name: [] for name in methods}
    try:
        src = os.path.join(workdir, 'source')
        print('writing %d MiB of random bytes to %s...' % (args.size_mib, src))
        image = make_source(src, size)
        with open(src, 'rb') as f:  # into the page cache, for everyone
            while f.read(CHUNK):
                pass
        how = '?'
        probe = os.path.join(workdir, 'probe')
        with (
            open_source(src) as source,
            open(probe, 'w+b') as out,
        ):
            how = 'reflink' if localcopy.clone(source, out.fileno()) else (
                'copy_file_range'
            )  # fmt: skip
        os.remove(probe)
        for run in range(args.runs):
            for name, method in methods.items():
                dst = os.path.join(workdir, 'copy')
                started = time.perf_counter()
                method(src, dst)
                results[name].append(time.perf_counter() - started)
                os.remove(dst)
            print(
                'run %d: %s'
                % (
                    run + 1,
                    ', '.join(
                        '%s %.0f MB/s' % (name, size / 1e6 / times[-1])
                        for name, times in results.items()
                    ),
                )
            )
        print(
            '\n%d MiB file on %s (%s), %d runs, medians:'
            % (args.size_mib, args.dir, how, args.runs)
        )
        medians = {}
        for name, times in results.items():
            medians[name] = statistics.median(times)
            print(
                '  %-32s %6.2f s  %6.0f MB/s'
                % (name, medians[name], size / 1e6 / medians[name])
            )
        ratio = (
            medians['cp (+ fsync)'] / medians['agent copy (verified, fsync)']
        )
        by_hand = (
            medians['cp (+ sha512sum, fsync)']
            / medians['agent copy (verified, fsync)']
        )
        print(
            '\nagent copy throughput: %.2f x cp, %.2f x cp + sha512sum'
            % (ratio, by_hand)
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
