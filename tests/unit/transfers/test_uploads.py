"""Uploads of local files: the roots, sharing per caller, notifications."""

import os
import threading
import time

import pytest

from image_agent import exception
from image_agent import transfers
from image_agent.transfers import uploads
from tests.unit.transfers.helpers import DATA
from tests.unit.transfers.helpers import run_in_threads


class TestUpload:
    def test_create_from_a_local_file(self, xfers, ctx, service, root, glance):
        (root / 'src').write_bytes(DATA)
        image = xfers.upload(
            ctx,
            str(root / 'src'),
            lambda data: service.create(ctx, {'name': 'n'}, data=data),
        )
        assert glance.data[image['id']] == DATA

    def test_the_file_is_sent_in_pieces_glance_reads_at_once(
        self, xfers, ctx, root
    ):
        # glanceclient asks for 1 MiB at a time and sends what it gets as
        # one chunk; Glance's stores read 64 KiB at a time.
        data = os.urandom(3 * 1024 * 1024 + 5)
        (root / 'src').write_bytes(data)
        pieces = []

        def send(body):
            while piece := body.read(1024 * 1024):
                pieces.append(piece)
            return {'id': 'x'}

        xfers.upload(ctx, str(root / 'src'), send)
        assert max(map(len, pieces)) == uploads.PIECE == 64 * 1024
        assert b''.join(pieces) == data

    def test_update_twice_at_once_is_one_upload(
        self, xfers, ctx, service, root, glance
    ):
        target = glance.add_image()
        (root / 'src').write_bytes(DATA)
        started, release = threading.Event(), threading.Event()
        sent = []

        def send(data):
            sent.append(data.read())
            started.set()
            assert release.wait(10)
            return {'id': target['id']}

        threads, results, errors = run_in_threads(
            2,
            lambda i: xfers.upload(
                ctx, str(root / 'src'), send, image_id=target['id']
            ),
        )
        assert started.wait(5)
        time.sleep(0.2)
        release.set()
        for t in threads:
            t.join(10)
        assert errors == [None, None]
        assert sent == [DATA]
        assert results[0] == results[1]

    def test_a_file_outside_the_upload_roots_is_refused(
        self, xfers, ctx, tmp_path
    ):
        (tmp_path / 'secret').write_bytes(b'x')
        with pytest.raises(exception.PathNotAllowed):
            xfers.upload(ctx, str(tmp_path / 'secret'), lambda data: {})

    def test_upload_roots_default_to_the_download_roots(
        self, service, root, tmp_path
    ):
        xfers = transfers.Transfers(service, [str(root)], None)
        assert xfers.uploads.roots == [os.path.realpath(root)]
        other = tmp_path / 'up'
        other.mkdir()
        xfers = transfers.Transfers(service, [str(root)], [str(other)])
        assert xfers.uploads.roots == [os.path.realpath(other)]

    def test_two_callers_updating_at_once_are_each_sent(
        self, xfers, ctx, service, root, glance
    ):
        """Glance checks every token: one caller's upload is not another's."""
        target = glance.add_image()
        (root / 'src').write_bytes(DATA)
        other = ctx.to_dict()
        other['auth_token'] = 'another-token'
        contexts = [ctx, type(ctx).from_dict(other)]
        started = threading.Barrier(2, timeout=5)
        sent = []

        def send(data):
            sent.append(data.read())
            started.wait()
            return {'id': target['id']}

        threads, _, errors = run_in_threads(
            2,
            lambda i: xfers.upload(
                contexts[i], str(root / 'src'), send, image_id=target['id']
            ),
        )
        for t in threads:
            t.join(10)
        assert errors == [None, None]
        assert sent == [DATA, DATA]

    def test_a_device_is_refused(self, make_transfers, ctx, service):
        xfers = transfers.Transfers(service, ['/dev'], None)
        with pytest.raises(exception.InvalidPath, match='not a regular'):
            xfers.upload(ctx, '/dev/null', lambda data: {})

    def test_upload_notifications(self, xfers, ctx, service, root, notes):
        (root / 'src').write_bytes(DATA)
        image = xfers.upload(
            ctx,
            str(root / 'src'),
            lambda data: service.create(ctx, {'name': 'n'}, data=data),
        )
        assert notes.types() == ['image.upload.start', 'image.upload.end']
        end = notes.events[-1][1]
        assert end['image_id'] == image['id']
        assert end['bytes'] == len(DATA)
