"""The path rules: what may be written to and read from, and what not."""

import fcntl
import os
import stat

import pytest

from image_agent import exception
from image_agent import paths


@pytest.fixture
def outside(tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    return outside


@pytest.fixture
def policy(root):
    return paths.PathPolicy([str(root)], 'download')


class TestDestination:
    def test_a_new_file_in_a_root_is_accepted(self, policy, root):
        dest = policy.destination(str(root / 'disk.img'))
        assert dest.directory == os.path.realpath(root)
        assert dest.name == 'disk.img'
        assert dest.path == os.path.join(os.path.realpath(root), 'disk.img')

    def test_a_subdirectory_of_a_root_is_accepted(self, policy, root):
        (root / 'a' / 'b').mkdir(parents=True)
        dest = policy.destination(str(root / 'a' / 'b' / 'x'))
        assert dest.directory.endswith('/a/b')

    def test_outside_every_root_is_not_allowed(self, policy, outside):
        with pytest.raises(exception.PathNotAllowed) as e:
            policy.destination(str(outside / 'x'))
        assert str(outside / 'x') in str(e.value)

    def test_a_sibling_with_the_root_as_prefix_is_not_inside(
        self, policy, root
    ):
        sibling = root.parent / (root.name + '-evil')
        sibling.mkdir()
        with pytest.raises(exception.PathNotAllowed):
            policy.destination(str(sibling / 'x'))

    @pytest.mark.parametrize(
        'suffix', ['../outside/x', 'a/../x', './x', 'a/./x']
    )
    def test_dot_components_are_refused(self, policy, root, suffix):
        (root / 'a').mkdir()
        with pytest.raises(exception.InvalidPath, match='not allowed'):
            policy.destination(str(root) + '/' + suffix)

    def test_a_symlinked_directory_leading_out_is_not_allowed(
        self, policy, root, outside
    ):
        (root / 'link').symlink_to(outside)
        with pytest.raises(exception.PathNotAllowed):
            policy.destination(str(root / 'link' / 'x'))

    def test_a_symlinked_directory_staying_inside_is_fine(self, policy, root):
        (root / 'real').mkdir()
        (root / 'link').symlink_to(root / 'real')
        dest = policy.destination(str(root / 'link' / 'x'))
        assert dest.directory == os.path.realpath(root / 'real')

    def test_a_destination_that_is_a_symlink_is_refused(
        self, policy, root, outside
    ):
        (root / 'x').symlink_to(outside / 'target')
        with pytest.raises(exception.InvalidPath, match='symbolic link'):
            policy.with_existing(policy.destination(str(root / 'x')))

    def test_a_directory_is_refused(self, policy, root):
        (root / 'dir').mkdir()
        with pytest.raises(exception.InvalidPath, match='is a directory'):
            policy.with_existing(policy.destination(str(root / 'dir')))

    def test_a_trailing_slash_is_refused(self, policy, root):
        with pytest.raises(exception.InvalidPath, match='names a directory'):
            policy.destination(str(root) + '/')

    def test_a_fifo_is_refused(self, policy, root):
        os.mkfifo(root / 'fifo')
        with pytest.raises(exception.InvalidPath, match='not a regular'):
            policy.with_existing(policy.destination(str(root / 'fifo')))

    @pytest.mark.skipif(os.geteuid() != 0, reason='mknod needs root')
    def test_a_device_is_refused(self, policy, root):
        os.mknod(root / 'null', 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        with pytest.raises(exception.InvalidPath, match='not a regular'):
            policy.with_existing(policy.destination(str(root / 'null')))

    def test_dev_null_is_outside_the_roots(self, policy):
        with pytest.raises(exception.PathNotAllowed):
            policy.destination('/dev/null')

    def test_a_nul_byte_is_refused_and_shown_escaped(self, policy, root):
        with pytest.raises(exception.InvalidPath, match='NUL') as e:
            policy.destination(str(root) + '/a\0b')
        assert '\0' not in str(e.value)
        assert '\\x00' in str(e.value)

    def test_a_relative_path_is_refused(self, policy):
        with pytest.raises(exception.InvalidPath, match='not absolute'):
            policy.destination('disk.img')

    def test_a_name_longer_than_name_max_is_refused(self, policy, root):
        with pytest.raises(exception.InvalidPath, match='longer than 255'):
            policy.destination(str(root / ('x' * 256)))

    def test_a_path_longer_than_path_max_is_refused(self, policy, root):
        long = str(root) + ('/' + 'd' * 200) * 21
        with pytest.raises(exception.InvalidPath, match='longer than 4096'):
            policy.destination(long)

    def test_the_message_of_a_huge_path_is_cut(self, policy):
        with pytest.raises(exception.InvalidPath) as e:
            policy.destination('/' + 'x' * 10000)
        assert len(str(e.value)) < 500

    def test_not_a_string_is_refused(self, policy):
        with pytest.raises(exception.InvalidPath, match='string'):
            policy.destination(42)

    def test_a_missing_directory_is_refused(self, policy, root):
        with pytest.raises(exception.InvalidPath, match='does not exist'):
            policy.destination(str(root / 'nope' / 'x'))

    def test_our_temporary_names_are_refused(self, policy, root):
        name = paths.temp_name('disk.img')
        with pytest.raises(exception.InvalidPath, match='temporary'):
            policy.destination(str(root / name))

    def test_no_roots_means_nothing_is_allowed(self, root):
        policy = paths.PathPolicy([], 'download')
        with pytest.raises(exception.PathNotAllowed, match='none configured'):
            policy.with_existing(policy.destination(str(root / 'x')))

    def test_relative_roots_are_a_configuration_error(self):
        with pytest.raises(exception.InvalidConfigurationValue):
            paths.PathPolicy(['relative/root'], 'download')

    def test_the_opened_directory_is_where_the_check_said(self, policy, root):
        dest = policy.destination(str(root / 'x'))
        fd = policy.open_directory(dest)
        try:
            assert paths.fd_path(fd) == dest.directory
        finally:
            os.close(fd)

    def test_a_directory_swapped_for_a_link_after_the_check_is_refused(
        self, policy, root, outside
    ):
        (root / 'sub').mkdir()
        dest = policy.destination(str(root / 'sub' / 'x'))
        (root / 'sub').rmdir()
        (root / 'sub').symlink_to(outside)
        with pytest.raises(exception.InvalidPath):
            policy.open_directory(dest)


class TestSource:
    def test_a_regular_file_in_a_root_opens(self, policy, root):
        (root / 'f').write_bytes(b'data')
        with policy.open_source(str(root / 'f')) as f:
            assert f.read() == b'data'

    def test_a_missing_file_is_not_found(self, policy, root):
        with pytest.raises(exception.LocalFileNotFound):
            policy.open_source(str(root / 'missing'))

    def test_a_file_outside_is_not_allowed(self, policy, outside):
        (outside / 'f').write_bytes(b'secret')
        with pytest.raises(exception.PathNotAllowed):
            policy.open_source(str(outside / 'f'))

    def test_a_link_to_a_file_outside_is_not_allowed(
        self, policy, root, outside
    ):
        (outside / 'f').write_bytes(b'secret')
        (root / 'link').symlink_to(outside / 'f')
        with pytest.raises(exception.PathNotAllowed):
            policy.open_source(str(root / 'link'))

    def test_a_fifo_is_refused_without_blocking(self, policy, root):
        os.mkfifo(root / 'fifo')
        with pytest.raises(exception.InvalidPath, match='not a regular'):
            policy.open_source(str(root / 'fifo'))

    def test_a_directory_is_refused(self, policy, root):
        with pytest.raises(exception.InvalidPath, match='not a regular'):
            policy.open_source(str(root))

    def test_proc_and_dev_are_outside(self, policy):
        for path in ('/dev/zero', '/proc/self/environ'):
            with pytest.raises(exception.PathNotAllowed):
                policy.open_source(path)


class TestTempNamesAndOrphans:
    def test_temp_names_are_recognised(self):
        name = paths.temp_name('disk.img')
        assert name.startswith('.disk.img' + paths.TEMP_MARK)
        assert paths.is_temp_name(name)
        assert not paths.is_temp_name('disk.img')
        assert not paths.is_temp_name('.disk.img.image-agent-tmp-')

    def test_temp_names_of_long_names_fit_name_max(self):
        name = paths.temp_name('é' * 127)
        assert len(name.encode()) <= paths.NAME_MAX
        assert paths.is_temp_name(name)

    def test_orphans_are_removed_and_nothing_else(self, root):
        (root / 'a' / 'b').mkdir(parents=True)
        orphans = [
            root / paths.temp_name('x'),
            root / 'a' / 'b' / paths.temp_name('y'),
        ]
        for path in orphans:
            path.write_bytes(b'partial')
        keep = [root / 'x', root / 'a' / '.hidden', root / 'a' / 'b' / 'y']
        for path in keep:
            path.write_bytes(b'data')
        removed = paths.remove_orphans([str(root)], depth=4)
        assert sorted(removed) == sorted(str(p) for p in orphans)
        assert all(p.exists() for p in keep)
        assert not any(p.exists() for p in orphans)

    def test_the_scan_depth_is_bounded(self, root):
        deep = root / 'a' / 'b' / 'c'
        deep.mkdir(parents=True)
        shallow = root / 'a' / paths.temp_name('x')
        far = deep / paths.temp_name('y')
        shallow.write_bytes(b'')
        far.write_bytes(b'')
        paths.remove_orphans([str(root)], depth=1)
        assert not shallow.exists()
        assert far.exists()

    def test_a_locked_temp_file_belongs_to_a_live_transfer(self, root):
        busy = root / paths.temp_name('x')
        with open(busy, 'wb') as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            assert paths.remove_orphans([str(root)], depth=1) == []
        assert busy.exists()

    def test_links_are_not_followed(self, root, outside):
        target = outside / paths.temp_name('x')
        target.write_bytes(b'')
        (root / 'link').symlink_to(outside)
        paths.remove_orphans([str(root)], depth=4)
        assert target.exists()
