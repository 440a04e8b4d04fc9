"""answers: the verdict on one answer to a data request.

What ``fetch.HttpSource`` does with each verdict over real HTTP is
specified in ``test_fetch``; here are the rules themselves.
"""

import pytest
import requests

from image_agent import exception
from image_agent.image import answers

IMAGE_ID = '5b1c6e3a-0d4f-4d8e-9a51-7a3c2b1d0e9f'


def response(status, ranged=False, reason='', **headers):
    made = requests.Response()
    made.status_code = status
    made.reason = reason
    made.headers.update(headers)
    made.request = requests.Request(
        'GET', 'http://glance', headers={'Range': 'bytes=1-'} if ranged else {}
    ).prepare()
    return made


@pytest.mark.parametrize(
    'header, parsed',
    [
        ('bytes 10-99/100', (10, 100)),
        ('bytes 0-0/*', (0, None)),
        ('bytes */100', None),
        ('items 1-2/3', None),
        (None, None),
    ],
)
def test_content_range_parsing(header, parsed):
    assert answers.parse_content_range(header) == parsed


def test_a_whole_body_is_read_from_its_start_skipped_to_the_offset():
    answer = answers.judge(
        response(200, **{'Content-Length': '100'}), 30, None
    )
    assert answer == answers.Answer(
        answers.BODY, skip=30, remaining=70, total=100
    )


def test_a_range_from_before_the_offset_skips_the_bytes_sent_again():
    answer = answers.judge(
        response(
            206, **{'Content-Range': 'bytes 20-99/100', 'Content-Length': '80'}
        ),
        30,
        100,
    )
    assert answer == answers.Answer(
        answers.BODY, skip=10, remaining=70, total=100
    )


@pytest.mark.parametrize('header', ['bytes 40-99/100', 'nonsense', None])
def test_a_range_that_does_not_reach_the_offset_is_unusable(header):
    headers = {'Content-Range': header} if header else {}
    answer = answers.judge(response(206, **headers), 30, 100)
    assert answer.kind == answers.UNUSABLE
    assert 'for offset 30' in answer.reason


def test_416_after_the_last_byte_is_done():
    assert answers.judge(response(416, ranged=True), 100, 100).kind == (
        answers.DONE
    )


@pytest.mark.parametrize('status', [400, 416])
def test_a_ranged_request_refused_turns_ranges_off(status):
    answer = answers.judge(response(status, ranged=True), 30, 100)
    assert answer.kind == answers.NO_RANGES


@pytest.mark.parametrize('status', [400, 401, 403, 404, 204, 500, 503])
def test_other_statuses_are_refusals(status):
    assert answers.judge(response(status), 0, 100).kind == answers.REFUSED


@pytest.mark.parametrize(
    'status, expected',
    [
        (401, exception.ImageNotAuthorized),
        (403, exception.ImageNotAuthorized),
        (404, exception.ImageNotFound),
        (204, exception.ImageDownloadFailed),
        (500, exception.ImageDownloadFailed),
        (503, answers.StreamBroken),
    ],
)
def test_refusals_are_typed_and_503_is_worth_another_server(status, expected):
    error = answers.refusal(response(status, reason='Why'), IMAGE_ID)
    assert type(error) is expected


def test_the_overlap_accepts_the_same_bytes_and_refuses_others():
    overlap = answers.Overlap()
    received = bytes(range(256)) * 512
    overlap.keep(memoryview(received))
    assert len(overlap) == answers.OVERLAP
    offset = len(received)
    again = memoryview(received[-1000:])
    overlap.check(again, offset - 1000, offset)
    with pytest.raises(answers.OtherBytes):
        overlap.check(memoryview(b'x' * 1000), offset - 1000, offset)


def test_bytes_older_than_the_overlap_are_not_compared():
    overlap = answers.Overlap()
    overlap.keep(memoryview(b'a' * 10))
    overlap.check(memoryview(b'zzzzz'), 0, 15)
