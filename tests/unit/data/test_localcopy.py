"""Kernel copies of local files, verified while they run."""

import errno
import os

import pytest

from image_agent import exception
from image_agent.data import localcopy
from image_agent.data import verify
from tests.unit.transfers.helpers import fake_image


class TestCopyVerified:
    @pytest.mark.parametrize('reflink', [True, False])
    def test_copy_methods(self, tmp_path, reflink, monkeypatch):
        data = os.urandom(3 * localcopy.COPY_STEP // 2 + 7)
        src = tmp_path / 'src'
        src.write_bytes(data)
        image = fake_image('x', data)
        seen = []
        with open(src, 'rb') as s, open(tmp_path / 'dst', 'w+b') as d:
            size, how = localcopy.copy_verified(
                s.fileno(),
                d.fileno(),
                len(data),
                verify.ImageHasher(image),
                seen.append,
                reflink=reflink,
            )
        assert size == len(data)
        assert how in ('reflink', 'copy_file_range', 'read_write')
        assert (tmp_path / 'dst').read_bytes() == data
        assert seen[-1] == len(data)

    def test_without_kernel_copy_bytes_are_read_and_written(
        self, tmp_path, monkeypatch
    ):
        def unsupported(*args):
            raise OSError(errno.EXDEV, 'cross-device')

        monkeypatch.setattr(os, 'copy_file_range', unsupported)
        data = os.urandom(5000)
        (tmp_path / 'src').write_bytes(data)
        with (
            open(tmp_path / 'src', 'rb') as s,
            open(tmp_path / 'dst', 'w+b') as d,
        ):
            size, how = localcopy.copy_verified(
                s.fileno(),
                d.fileno(),
                len(data),
                verify.ImageHasher(fake_image('x', data)),
                reflink=False,
            )
        assert how == 'read_write'
        assert (tmp_path / 'dst').read_bytes() == data

    def test_a_wrong_hash_is_an_error(self, tmp_path):
        (tmp_path / 'src').write_bytes(b'abc')
        with (
            open(tmp_path / 'src', 'rb') as s,
            open(tmp_path / 'dst', 'w+b') as d,
            pytest.raises(exception.ImageChecksumMismatch),
        ):
            localcopy.copy_verified(
                s.fileno(),
                d.fileno(),
                3,
                verify.ImageHasher(fake_image('x', b'abd')),
            )

    def test_only_a_regular_file_is_opened(self, tmp_path):
        with pytest.raises(OSError):
            localcopy.open_regular(str(tmp_path))
