"""HttpSource: an image's bytes over HTTP, resumed from the byte offset.

Real HTTP against the stand-in servers of ``glance_http`` (two of them,
sharing one script of answers): what is tested is what goes over the wire
(Range headers, which server) and what comes out (every byte, once).
"""

import os

import pytest

from image_agent import exception
from image_agent.image import client as client_mod
from image_agent.image import fetch
from tests.unit import conftest
from tests.unit.glance_http import Answer

IMAGE_ID = '5b1c6e3a-0d4f-4d8e-9a51-7a3c2b1d0e9f'
DATA = os.urandom(300 * 1024 + 7)


@pytest.fixture
def image(glance):
    return glance.add_image(id=IMAGE_ID, data=DATA)


def source(ctx, expected_size=-1, **kwargs):
    if expected_size == -1:
        expected_size = len(DATA)
    _, next_server = client_mod.GlanceClientWrapper().server_picker(ctx)
    return fetch.HttpSource(
        ctx, IMAGE_ID, next_server, expected_size=expected_size, **kwargs
    )


def resumed_at(offset):
    """The Range of a resume at ``offset``: the overlap is asked again."""
    return 'bytes=%d-' % max(0, offset - fetch.OVERLAP)


def read_all(src, piece=64 * 1024):
    out = bytearray()
    buffer = memoryview(bytearray(piece))
    while count := src.readinto(buffer):
        out += buffer[:count]
    return bytes(out)


def other(scripts, url):
    [rest] = [u for u in scripts.urls if u != url]
    return rest


class TestResume:
    def test_a_whole_stream_is_one_request_without_range(
        self, ctx, image, glance_http
    ):
        src = source(ctx)
        assert read_all(src) == DATA
        assert glance_http.ranges() == [None]
        assert (src.fetched, src.resumes, src.offset) == (
            len(DATA),
            0,
            len(DATA),
        )

    def test_a_broken_stream_resumes_at_its_offset_on_the_next_server(
        self, ctx, image, glance_http
    ):
        glance_http.add(
            Answer(break_after=100_000), Answer(break_after=100_000)
        )
        src = source(ctx)
        assert read_all(src) == DATA
        second_end = 100_000 - fetch.OVERLAP + 100_000
        assert glance_http.ranges() == [
            None,
            resumed_at(100_000),
            resumed_at(second_end),
        ]
        first, second, third = glance_http.servers()
        assert second == other(glance_http, first)
        assert third == first
        assert src.fetched == len(DATA) + 2 * fetch.OVERLAP
        assert src.resumes == 2

    def test_a_reset_connection_resumes_too(self, ctx, image, glance_http):
        glance_http.add(Answer(break_after=200_000, reset=True))
        src = source(ctx)
        assert read_all(src) == DATA
        [resumed] = glance_http.ranges()[1:]
        offset = int(resumed[len('bytes=') : -1]) + fetch.OVERLAP
        # What the reset swallowed is asked again, with the overlap.
        assert 0 < offset <= 200_000
        assert src.fetched == len(DATA) + fetch.OVERLAP

    def test_a_server_ignoring_range_has_the_start_skipped(
        self, ctx, image, glance_http
    ):
        glance_http.add(Answer(break_after=120_000), Answer(ignore_range=True))
        src = source(ctx)
        assert read_all(src) == DATA
        assert glance_http.ranges() == [None, resumed_at(120_000)]
        # The skipped bytes were received again, and counted.
        assert src.fetched == len(DATA) + 120_000

    def test_a_range_starting_earlier_is_skipped_to_the_offset(
        self, ctx, image, glance_http
    ):
        glance_http.add(Answer(break_after=120_000), Answer(range_start=1000))
        assert read_all(source(ctx)) == DATA

    def test_a_range_starting_later_is_refused_and_retried(
        self, ctx, image, glance_http
    ):
        glance_http.add(
            Answer(break_after=120_000), Answer(range_start=130_000)
        )
        src = source(ctx)
        assert read_all(src) == DATA
        assert glance_http.ranges() == [
            None,
            resumed_at(120_000),
            resumed_at(120_000),
        ]

    def test_the_overlap_asked_again_is_skipped_and_counted(
        self, ctx, image, glance_http
    ):
        glance_http.add(Answer(break_after=200_000))
        src = source(ctx)
        assert read_all(src) == DATA
        assert src.fetched == len(DATA) + fetch.OVERLAP

    def test_a_range_answered_with_other_bytes_turns_ranges_off(
        self, ctx, image, glance_http
    ):
        """Glance's http store ignores the offset of a ranged request."""
        glance_http.add(Answer(break_after=150_000), Answer(send_from=0))
        src = source(ctx)
        assert read_all(src) == DATA
        assert glance_http.ranges() == [None, resumed_at(150_000), None]
        assert src.fetched == len(DATA) + 150_000 + fetch.OVERLAP

    @pytest.mark.parametrize('status', [400, 416])
    def test_a_range_refused_turns_ranges_off(
        self, ctx, image, glance_http, status
    ):
        """Glance refuses ranges (400) for stores without random access."""
        glance_http.add(Answer(break_after=150_000), Answer(status=status))
        src = source(ctx)
        assert read_all(src) == DATA
        assert glance_http.ranges() == [None, resumed_at(150_000), None]

    def test_without_ranges_a_resume_fetches_and_skips_the_start(
        self, ctx, image, glance_http
    ):
        glance_http.add(Answer(break_after=150_000))
        src = source(ctx, ranges=False)
        assert read_all(src) == DATA
        assert glance_http.ranges() == [None, None]
        assert src.fetched == len(DATA) + 150_000

    def test_a_whole_body_with_other_bytes_is_a_failure(
        self, ctx, glance, image, glance_http
    ):
        glance_http.add(Answer(break_after=150_000))
        src = source(ctx, ranges=False)
        buffer = memoryview(bytearray(150_000))
        assert src.readinto(buffer) == 150_000
        glance.data[IMAGE_ID] = os.urandom(len(DATA))
        glance_http.add(Answer(break_after=0))
        with pytest.raises(exception.ImageDownloadFailed) as info:
            src.readinto(buffer)
        assert 'differ from those received' in str(info.value)

    def test_a_chunked_stream_of_unknown_size_is_read_to_its_end(
        self, ctx, image, glance_http
    ):
        glance_http.add(Answer(chunked=True))
        src = source(ctx, expected_size=None)
        assert read_all(src) == DATA
        assert src.total is None

    def test_a_broken_chunked_stream_resumes(self, ctx, image, glance_http):
        glance_http.add(Answer(chunked=True, break_after=70_000))
        src = source(ctx, expected_size=None)
        assert read_all(src) == DATA
        assert glance_http.ranges()[0] is None
        assert glance_http.ranges()[1].startswith('bytes=')

    def test_a_stream_ending_early_but_cleanly_is_resumed(
        self, ctx, image, glance_http
    ):
        """Without a Content-Length only the image size tells."""
        glance_http.add(Answer(chunked=True, end_at=90_000))
        src = source(ctx)
        assert read_all(src) == DATA
        assert glance_http.ranges() == [None, resumed_at(90_000)]

    def test_a_stream_cut_right_at_its_end_finishes_on_416(
        self, ctx, image, glance_http
    ):
        glance_http.add(Answer(chunked=True, break_after=len(DATA)))
        src = source(ctx)
        assert read_all(src) == DATA
        assert glance_http.ranges() == [None, resumed_at(len(DATA))]

    def test_failures_after_progress_do_not_use_up_the_retries(
        self, ctx, config, image, glance_http
    ):
        config.config(group='glance', num_retries=1)
        glance_http.add(*[Answer(break_after=100_000) for _ in range(3)])
        assert read_all(source(ctx)) == DATA
        assert len(glance_http.requests) == 4

    def test_failures_without_progress_are_bounded(
        self, ctx, config, image, glance_http
    ):
        config.config(group='glance', num_retries=2)
        glance_http.add(
            Answer(break_after=40_000),
            *[Answer(break_after=0) for _ in range(5)],
        )
        with pytest.raises(exception.ImageDownloadFailed) as info:
            read_all(source(ctx))
        # The request that made progress, then two retries.
        assert len(glance_http.requests) == 3
        assert 'broke off at byte 40000' in str(info.value)
        assert not isinstance(info.value, exception.ImageChecksumMismatch)

    def test_a_trickle_is_no_progress(self, ctx, config, image, glance_http):
        # Each attempt brings a few new bytes past the overlap asked again,
        # then breaks off: without a bound this would resume for ever.
        config.config(group='glance', num_retries=2)
        step = fetch.OVERLAP + 100
        glance_http.add(
            Answer(break_after=70_000),
            *[Answer(break_after=step) for _ in range(50)],
        )
        with pytest.raises(exception.ImageDownloadFailed) as info:
            read_all(source(ctx))
        # The request that made progress, then two trickles.
        assert len(glance_http.requests) == 3
        assert 'broke off at byte 70200' in str(info.value)

    def test_resumes_are_bounded_however_far_each_got(
        self, ctx, config, image, glance_http
    ):
        config.config(group='glance', num_retries=3, download_max_resumes=2)
        glance_http.add(*[Answer(break_after=100_000) for _ in range(3)])
        with pytest.raises(exception.ImageDownloadFailed) as info:
            read_all(source(ctx))
        # The first request and two resumes.
        assert len(glance_http.requests) == 3
        assert 'resumed 2 times already' in str(info.value)


class TestAnswers:
    def test_a_503_is_retried_on_the_next_server(
        self, ctx, image, glance_http
    ):
        glance_http.add(Answer(status=503))
        src = source(ctx)
        src.open()
        first, second = glance_http.servers()
        assert second == other(glance_http, first)
        assert read_all(src) == DATA

    def test_nothing_but_failures_is_glance_connection_failed(
        self, ctx, config, image, glance_http
    ):
        config.config(group='glance', num_retries=2)
        glance_http.add(*[Answer(status=503)] * 3)
        with pytest.raises(exception.GlanceConnectionFailed) as info:
            source(ctx).open()
        assert 'after 3 attempt(s)' in str(info.value)
        for url in glance_http.urls:
            assert url in str(info.value)

    def test_a_dead_server_is_skipped(self, ctx, config, image, glance_http):
        dead = 'http://127.0.0.1:9'
        config.config(group='glance', api_servers=[dead, glance_http.urls[0]])
        src = source(ctx)
        assert read_all(src) == DATA

    @pytest.mark.parametrize(
        'status, error',
        [
            (404, exception.ImageNotFound),
            (403, exception.ImageNotAuthorized),
            (401, exception.ImageNotAuthorized),
            (500, exception.ImageDownloadFailed),
        ],
    )
    def test_refusals_are_typed_and_not_retried(
        self, ctx, image, glance_http, status, error
    ):
        glance_http.add(Answer(status=status))
        with pytest.raises(error):
            source(ctx).open()
        assert len(glance_http.requests) == 1

    def test_an_image_without_data_says_so(self, ctx, glance, glance_http):
        glance.add_image(id=IMAGE_ID)
        with pytest.raises(exception.ImageDownloadFailed) as info:
            source(ctx, expected_size=None).open()
        assert 'image contains no data' in str(info.value)

    def test_the_caller_token_and_request_id_travel(
        self, ctx, image, glance_http
    ):
        read_all(source(ctx))
        [request] = glance_http.requests
        assert request.path == '/v2/images/%s/file' % IMAGE_ID
        assert request.headers['X-Auth-Token'] == conftest.USER_TOKEN
        assert (
            request.headers['X-OpenStack-Request-ID']
            == conftest.GLOBAL_REQUEST_ID
        )

    def test_noauth_sends_identity_headers(
        self, ctx, config, image, glance_http
    ):
        config.config(auth_strategy='noauth')
        read_all(source(ctx))
        [request] = glance_http.requests
        assert request.headers['X-Identity-Status'] == 'Confirmed'
        assert request.headers['X-Project-Id'] == conftest.PROJECT_ID
        assert request.headers['X-Roles'] == 'member,reader'
