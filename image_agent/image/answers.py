"""What an answer to a data request says, and whether it can be read.

The rules of ``fetch.HttpSource`` for one answer of Glance (or of a peer):
its status and ``Content-Range`` decide whether its body continues the
bytes received (and how many of its first bytes to skip), ends a
transfer that had everything, turns ranges off, or is a refusal; the
bytes a resumed answer sends again before the offset must equal those
received (``Overlap``).
"""

import dataclasses
import http.client
import re

import requests

from image_agent import exception
from image_agent.i18n import _

# Bytes before the offset asked again on a resume and compared with those
# received: a server whose ranged answers are wrong (Glance's http store
# ignores the offset) is caught at once instead of by the final hash.
OVERLAP = 64 * 1024
_CONTENT_RANGE = re.compile(r'bytes\s+(\d+)-(\d+)/(\d+|\*)')

# What to do with an answer (``Answer.kind``).
BODY = 'body'  # read its body, after ``skip`` bytes
DONE = 'done'  # everything was received already
NO_RANGES = 'no_ranges'  # the server cannot serve ranges: ask whole bodies
UNUSABLE = 'unusable'  # a range that does not reach the offset: a failure
REFUSED = 'refused'  # any other status: see ``refusal``


class StreamBroken(Exception):
    """The body ended before its announced length."""


class OtherBytes(StreamBroken):
    """Bytes sent again before the offset differ from those received."""


@dataclasses.dataclass
class Answer:
    """The verdict on one answer, for a transfer at ``offset``."""

    kind: str
    # Bytes of the body before the offset (sent again), to skip.
    skip: int = 0
    # Bytes of the body after those skipped, when its length is known.
    remaining: int | None = None
    # The image's size, when the answer tells it.
    total: int | None = None
    reason: str = ''


def parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    """``(first byte, total size or None)`` of a Content-Range header."""
    match = _CONTENT_RANGE.fullmatch((value or '').strip())
    if not match:
        return None
    total = None if match.group(3) == '*' else int(match.group(3))
    return int(match.group(1)), total


def judge(
    response: requests.Response, offset: int, total: int | None
) -> Answer:
    """The verdict on ``response`` for a transfer that has ``offset``
    bytes of an image of ``total`` bytes (None: unknown)."""
    status = response.status_code
    if status == 206:
        return _judge_range(response, offset)
    if status == 200:
        # A server that ignores Range sends everything again.
        return _body(response, skip=offset, start=0)
    if status == 416 and offset >= (total or float('inf')):
        # Everything was received; only the end of the body was lost.
        return Answer(DONE)
    if status in (400, 416) and 'Range' in response.request.headers:
        # Glance answers 400 for a store without random access (http).
        return Answer(
            NO_RANGES,
            reason=_('Glance answered %d to a ranged request') % status,
        )
    return Answer(REFUSED)


def refusal(response: requests.Response, image_id: str) -> Exception:
    """The typed error of a refused answer; a StreamBroken for one worth
    asking the next server about (503)."""
    status = response.status_code
    if status in (401, 403):
        return exception.ImageNotAuthorized(image_id=image_id)
    if status == 404:
        return exception.ImageNotFound(image_id=image_id)
    if status == 204:
        return exception.ImageDownloadFailed(
            image_id=image_id, reason=_('image contains no data')
        )
    reason = _('Glance answered %(status)d %(text)s') % {
        'status': status,
        'text': response.reason or '',
    }
    if status == 503:
        return StreamBroken(reason)
    return exception.ImageDownloadFailed(image_id=image_id, reason=reason)


def _judge_range(response: requests.Response, offset: int) -> Answer:
    header = response.headers.get('Content-Range')
    parsed = parse_content_range(header)
    if parsed is None or parsed[0] > offset:
        return Answer(
            UNUSABLE,
            reason=_('unusable Content-Range %r for offset %d')
            % (header, offset),
        )
    start, total = parsed
    return _body(response, skip=offset - start, start=start, total=total)


def _body(
    response: requests.Response,
    skip: int,
    start: int,
    total: int | None = None,
) -> Answer:
    length = response.headers.get('Content-Length')
    remaining = int(length) - skip if length else None
    if total is None and length and start == 0:
        total = int(length)
    return Answer(BODY, skip=skip, remaining=remaining, total=total)


def body_reader(response: requests.Response):
    """What to ``readinto`` from: http.client's response when possible.

    urllib3 keeps the http.client response as ``_fp``; reading it directly
    skips urllib3's copies. A body with a Content-Encoding needs urllib3's
    decoding, and another urllib3 may lack ``_fp``: both use its readinto.
    """
    raw = response.raw
    inner = getattr(raw, '_fp', None)
    if isinstance(inner, http.client.HTTPResponse) and not (
        response.headers.get('Content-Encoding')
    ):
        return inner
    raw.decode_content = True
    return raw


class Overlap:
    """The last ``OVERLAP`` bytes received, to compare with the bytes a
    resumed answer sends again before the offset."""

    def __init__(self) -> None:
        self.tail = b''

    def __len__(self) -> int:
        return len(self.tail)

    def keep(self, data: memoryview) -> None:
        """Remember the end of the bytes just received."""
        count = len(data)
        if count >= OVERLAP:
            self.tail = data[-OVERLAP:].tobytes()
        elif count:
            self.tail = (self.tail + data.tobytes())[-OVERLAP:]

    def check(self, data: memoryview, start: int, offset: int) -> None:
        """Raise OtherBytes unless ``data``, bytes ``start`` on of the
        image (all before ``offset``), equals what was received there."""
        known = offset - len(self.tail)
        low, high = max(start, known), start + len(data)
        if low < high and (
            data[low - start : high - start]
            != self.tail[low - known : high - known]
        ):
            raise OtherBytes(
                _('the bytes before offset %d differ from those received')
                % offset
            )
