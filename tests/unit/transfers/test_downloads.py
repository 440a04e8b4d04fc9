"""Downloads of images to local files: verified, shared, reused, bounded
and notified (the fixtures are in this folder's ``conftest``)."""

import hashlib
import os
import threading
import time

import pytest

from image_agent import exception
from image_agent import transfers
from tests.unit.glance_http import Answer
from tests.unit.transfers.helpers import DATA
from tests.unit.transfers.helpers import Gate
from tests.unit.transfers.helpers import helpers_wait
from tests.unit.transfers.helpers import is_check
from tests.unit.transfers.helpers import run_in_threads


class TestDownload:
    def test_the_image_lands_verified_with_its_hash(
        self, xfers, ctx, image, root
    ):
        result = xfers.download(ctx, image['id'], str(root / 'disk'))
        assert (root / 'disk').read_bytes() == DATA
        assert result == {
            'path': os.path.realpath(root / 'disk'),
            'size': len(DATA),
            'os_hash_algo': 'sha512',
            'os_hash_value': hashlib.sha512(DATA).hexdigest(),
            'reused': False,
            'source': 'glance',
            'fetched': len(DATA),
            # Inspection is off in these tests (see tests/unit/formats).
            'disk_format_detected': None,
            'virtual_size': None,
            'converted_from': None,
        }
        assert oct(os.stat(root / 'disk').st_mode & 0o777) == oct(0o600)

    def test_altered_bytes_fail_and_leave_nothing(
        self, xfers, ctx, image, root, glance
    ):
        glance.data[image['id']] = DATA[:-1] + b'X'
        with pytest.raises(exception.ImageChecksumMismatch):
            xfers.download(ctx, image['id'], str(root / 'disk'))
        assert os.listdir(root) == []

    def test_a_missing_image_is_image_not_found(self, xfers, ctx, root):
        with pytest.raises(exception.ImageNotFound):
            xfers.download(
                ctx, '11111111-2222-3333-4444-555555555555', str(root / 'x')
            )
        assert os.listdir(root) == []

    def test_the_path_is_checked_before_glance_is_asked(
        self, xfers, ctx, image, glance, tmp_path
    ):
        with pytest.raises(exception.PathNotAllowed):
            xfers.download(ctx, image['id'], str(tmp_path / 'x'))
        assert glance.calls == []

    def test_an_identical_file_is_reused(
        self, xfers, ctx, image, root, glance_http, notes
    ):
        (root / 'disk').write_bytes(DATA)
        os.chmod(root / 'disk', 0o644)
        result = xfers.download(ctx, image['id'], str(root / 'disk'))
        assert result['reused'] is True
        # Glance was asked for the caller's right, for no byte.
        assert [is_check(r) for r in glance_http.requests] == [True]
        assert glance_http.sent <= 1
        assert notes.events == []

    def test_an_identical_file_is_not_reused_for_a_refused_caller(
        self, xfers, ctx, image, root, glance_http
    ):
        (root / 'disk').write_bytes(DATA)
        glance_http.add(Answer(status=403))
        with pytest.raises(exception.ImageNotAuthorized):
            xfers.download(ctx, image['id'], str(root / 'disk'))

    def test_a_file_others_may_change_is_not_vouched_for(
        self, xfers, ctx, image, root
    ):
        (root / 'disk').write_bytes(DATA)
        os.chmod(root / 'disk', 0o666)  # noqa: S103 - what is refused
        with pytest.raises(exception.DestinationExists):
            xfers.download(ctx, image['id'], str(root / 'disk'))

    def test_a_different_file_is_kept_without_overwrite(
        self, xfers, ctx, image, root
    ):
        (root / 'disk').write_bytes(b'other')
        with pytest.raises(exception.DestinationExists):
            xfers.download(ctx, image['id'], str(root / 'disk'))
        assert (root / 'disk').read_bytes() == b'other'

    def test_a_different_file_is_replaced_with_overwrite(
        self, xfers, ctx, image, root
    ):
        (root / 'disk').write_bytes(b'other')
        result = xfers.download(
            ctx, image['id'], str(root / 'disk'), overwrite=True
        )
        assert result['reused'] is False
        assert (root / 'disk').read_bytes() == DATA

    def test_free_space_is_checked_from_the_image_size(
        self, xfers, ctx, glance, glance_http, root
    ):
        huge = glance.add_image(data=b'x')
        glance.images[huge['id']]['size'] = 2**60
        with pytest.raises(exception.InsufficientSpace):
            xfers.download(ctx, huge['id'], str(root / 'disk'))
        assert glance_http.requests == []
        assert os.listdir(root) == []

    def test_the_file_mode_is_configurable(
        self, make_transfers, ctx, image, root
    ):
        make_transfers(file_mode=0o600).download(
            ctx, image['id'], str(root / 'disk')
        )
        assert os.stat(root / 'disk').st_mode & 0o777 == 0o600

    def test_notifications_tell_start_and_end(
        self, xfers, ctx, image, root, notes
    ):
        xfers.download(ctx, image['id'], str(root / 'disk'))
        assert notes.types() == ['image.download.start', 'image.download.end']
        end = notes.events[-1][1]
        assert end['image_id'] == image['id']
        assert end['path'] == os.path.realpath(root / 'disk')
        assert end['bytes'] == len(DATA)
        assert end['size'] == len(DATA)
        assert end['duration'] >= 0
        assert end['rate'] >= 0
        assert end['fetched'] == len(DATA)
        assert end['resumes'] == 0

    def test_progress_is_notified_at_the_configured_interval(
        self, make_transfers, ctx, glance, glance_http, root, notes
    ):
        image = glance.add_image(data=DATA * 60)
        glance_http.add(Answer(block=len(DATA) * 3, delay=0.07))
        xfers = make_transfers(progress_interval=0.2)
        xfers.download(ctx, image['id'], str(root / 'disk'))
        types = notes.types()
        assert types[0] == 'image.download.start'
        assert types[-1] == 'image.download.end'
        progress = [p for e, p, _ in notes.events if e.endswith('progress')]
        assert progress, types
        assert all(0 < p['bytes'] <= len(DATA) * 60 for p in progress)
        assert all(p['size'] == len(DATA) * 60 for p in progress)
        assert all(p['rate'] > 0 for p in progress)

    def test_no_progress_notifications_by_default(
        self, xfers, ctx, glance, glance_http, root, notes
    ):
        image = glance.add_image(data=DATA * 30)
        glance_http.add(Answer(block=len(DATA) * 3, delay=0.02))
        xfers.download(ctx, image['id'], str(root / 'disk'))
        assert notes.types() == ['image.download.start', 'image.download.end']

    def test_a_resumed_download_says_so(
        self, xfers, ctx, image, root, glance_http, notes
    ):
        glance_http.add(Answer(break_after=4000))
        xfers.download(ctx, image['id'], str(root / 'disk'))
        assert (root / 'disk').read_bytes() == DATA
        end = notes.events[-1][1]
        # The 4000 bytes before the break were asked again and compared.
        assert (end['fetched'], end['resumes']) == (len(DATA) + 4000, 1)

    def test_notifications_tell_errors(
        self, xfers, ctx, image, root, notes, glance
    ):
        glance.data[image['id']] = b'X' * len(DATA)
        with pytest.raises(exception.ImageChecksumMismatch):
            xfers.download(ctx, image['id'], str(root / 'disk'))
        event, payload, error = notes.events[-1]
        assert (event, error) == ('image.download.error', True)
        assert payload['error_class'] == 'ImageChecksumMismatch'


class TestConcurrency:
    def test_the_same_image_to_the_same_path_is_one_transfer(
        self, xfers, ctx, image, root, glance_http
    ):
        gate = Gate(glance_http)
        path = str(root / 'disk')
        threads, results, errors = run_in_threads(
            3, lambda i: xfers.download(ctx, image['id'], path)
        )
        assert gate.started.acquire(timeout=5)
        time.sleep(0.2)  # the others join the running transfer
        gate.opened.set()
        for t in threads:
            t.join(10)
        assert errors == [None] * 3
        assert gate.count == 1
        # Each caller that joined was checked by Glance itself.
        assert gate.checks == 2
        assert results[0] == results[1] == results[2]
        assert (root / 'disk').read_bytes() == DATA

    def test_a_caller_arriving_as_the_same_download_ends_reuses_its_file(
        self, xfers, ctx, image, root, service, monkeypatch
    ):
        # The second caller's path is checked before the first download has
        # published its file, and it reaches the shared transfer after that
        # download ended: it must see the finished file, not collide with it.
        path = str(root / 'disk')
        show = service.show
        first = {}

        def show_after_the_first_download(context, image_id):
            if not first:
                first['result'] = 'running'
                first['result'] = xfers.download(ctx, image_id, path)
            return show(context, image_id)

        monkeypatch.setattr(service, 'show', show_after_the_first_download)
        second = xfers.download(ctx, image['id'], path)
        assert first['result']['reused'] is False
        assert second['reused'] is True
        assert (root / 'disk').read_bytes() == DATA

    def test_a_failed_shared_transfer_fails_every_caller(
        self, xfers, ctx, image, root, glance, glance_http
    ):
        glance.data[image['id']] = b'Y' * len(DATA)
        gate = Gate(glance_http)
        threads, _, errors = run_in_threads(
            2, lambda i: xfers.download(ctx, image['id'], str(root / 'd'))
        )
        assert gate.started.acquire(timeout=5)
        time.sleep(0.2)
        gate.opened.set()
        for t in threads:
            t.join(10)
        assert gate.count == 1
        assert gate.checks == 1
        assert all(
            isinstance(e, exception.ImageChecksumMismatch) for e in errors
        )
        assert os.listdir(root) == []

    def test_a_caller_glance_refuses_does_not_get_a_shared_result(
        self, xfers, ctx, image, root, glance_http
    ):
        glance_http.add(Answer(gate=(opened := threading.Event())))
        glance_http.add(Answer(status=403))
        path = str(root / 'disk')
        first = threading.Thread(
            target=xfers.download, args=(ctx, image['id'], path)
        )
        first.start()
        helpers_wait(lambda: len(glance_http.requests) == 1)
        with pytest.raises(exception.ImageNotAuthorized):
            xfers.download(ctx, image['id'], path)
        opened.set()
        first.join(10)
        assert (root / 'disk').read_bytes() == DATA

    def test_a_caller_does_not_inherit_another_callers_refusal(
        self, xfers, ctx, image, root, glance_http
    ):
        gate = threading.Event()
        # The first caller's request is refused (once the second joined).
        glance_http.add(Answer(status=403, gate=gate))
        path = str(root / 'disk')
        threads, results, errors = run_in_threads(
            1, lambda i: xfers.download(ctx, image['id'], path)
        )
        helpers_wait(lambda: len(glance_http.requests) == 1)
        second = threading.Thread(
            target=lambda: results.append(
                xfers.download(ctx, image['id'], path)
            )
        )
        second.start()
        helpers_wait(lambda: len(glance_http.requests) == 2)
        gate.set()
        threads[0].join(10)
        second.join(10)
        assert isinstance(errors[0], exception.ImageNotAuthorized)
        assert results[-1]['size'] == len(DATA)
        assert (root / 'disk').read_bytes() == DATA

    def test_downloads_are_bounded(
        self, make_transfers, ctx, image, root, glance_http
    ):
        xfers = make_transfers(max_downloads=2)
        gate = Gate(glance_http)
        threads, _, errors = run_in_threads(
            4,
            lambda i: xfers.download(ctx, image['id'], str(root / str(i))),
        )
        assert gate.started.acquire(timeout=5)
        assert gate.started.acquire(timeout=5)
        time.sleep(0.3)
        assert gate.count == 2
        assert len(xfers.status()) == 2
        gate.opened.set()
        for t in threads:
            t.join(10)
        assert errors == [None] * 4
        assert gate.count == 4
        assert xfers.status() == []

    def test_cancel_fails_running_and_waiting_transfers_cleanly(
        self, make_transfers, ctx, image, root, glance_http
    ):
        xfers = make_transfers(max_downloads=1)
        started = threading.Event()
        glance_http.add(Answer(block=100, delay=0.05, started=started))
        threads, _, errors = run_in_threads(
            2,
            lambda i: xfers.download(ctx, image['id'], str(root / str(i))),
        )
        assert started.wait(5)
        xfers.cancel_all()
        for t in threads:
            t.join(10)
        assert all(
            isinstance(e, exception.ImageDownloadFailed) for e in errors
        )
        assert all('shutting down' in str(e) for e in errors)
        assert os.listdir(root) == []


class TestBounds:
    """What a caller or a server can make a transfer consume."""

    def test_a_download_reserves_its_space_until_it_ends(
        self, xfers, ctx, image, root, glance_http
    ):
        gate = Gate(glance_http, count=1)
        threads, _, errors = run_in_threads(
            1, lambda i: xfers.download(ctx, image['id'], str(root / 'd'))
        )
        assert gate.started.acquire(timeout=5)
        assert xfers.space.reserved() == len(DATA)
        gate.opened.set()
        threads[0].join(10)
        assert errors == [None]
        assert xfers.space.reserved() == 0

    def test_a_download_that_does_not_fit_beside_another_is_refused(
        self, xfers, ctx, image, root, glance_http, monkeypatch
    ):
        # The filesystem has room for the image once, not twice.
        real = os.statvfs

        def statvfs(path):
            if not str(path).startswith(str(root)):
                return real(path)
            return os.statvfs_result(
                (1, 1, 0, 0, len(DATA) * 3 // 2) + (0,) * 6
            )

        monkeypatch.setattr(transfers.space.os, 'statvfs', statvfs)
        gate = Gate(glance_http, count=1)
        threads, _, errors = run_in_threads(
            1, lambda i: xfers.download(ctx, image['id'], str(root / 'a'))
        )
        assert gate.started.acquire(timeout=5)
        with pytest.raises(exception.InsufficientSpace):
            xfers.download(ctx, image['id'], str(root / 'b'))
        gate.opened.set()
        threads[0].join(10)
        assert errors == [None]
        # Refused before asking Glance for a byte.
        assert gate.count == 1
        assert sorted(os.listdir(root)) == ['a']

    def test_transfer_calls_beyond_the_limit_are_busy(
        self, make_transfers, ctx, image, root, glance_http
    ):
        xfers = make_transfers(max_downloads=1, max_uploads=1, max_waiting=1)
        gate = Gate(glance_http, count=3)
        threads, _, errors = run_in_threads(
            3,
            lambda i: xfers.download(ctx, image['id'], str(root / str(i))),
        )
        assert gate.started.acquire(timeout=5)
        time.sleep(0.3)
        # Three admitted (one running, two waiting): the fourth is not.
        with pytest.raises(exception.AgentBusy):
            xfers.download(ctx, image['id'], str(root / 'more'))
        gate.opened.set()
        for t in threads:
            t.join(10)
        assert errors == [None] * 3

    def test_more_bytes_than_the_size_are_cut(
        self, xfers, ctx, image, root, glance
    ):
        glance.data[image['id']] = DATA + b'more'
        with pytest.raises(exception.ImageDownloadFailed) as info:
            xfers.download(ctx, image['id'], str(root / 'disk'))
        assert 'was cut there' in str(info.value)
        assert os.listdir(root) == []


class TestModes:
    def test_downloads_are_private_by_default(self, xfers, ctx, image, root):
        xfers.download(ctx, image['id'], str(root / 'disk'))
        assert os.stat(root / 'disk').st_mode & 0o777 == 0o600

    def test_the_consumers_group_is_configurable(
        self, make_transfers, ctx, image, root
    ):
        group = os.getegid()
        xfers = make_transfers(file_mode=0o640, file_group=group)
        xfers.download(ctx, image['id'], str(root / 'disk'))
        st = os.stat(root / 'disk')
        assert (st.st_mode & 0o777, st.st_gid) == (0o640, group)
