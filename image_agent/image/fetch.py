"""An image's bytes from Glance's API, resumed where they broke off.

``HttpSource`` streams ``GET /v2/images/<id>/file`` through the keystoneauth
session (TLS options, the caller's token, the global request id) and hands
out the bytes with ``readinto``. When the stream breaks off (the server
died, the connection was reset, the body ended early) the next server of
the rotation is asked for the rest with ``Range: bytes=<offset>-``, so a
multi-GB download that fails near its end does not start over. The last
64 KiB before the offset are asked again and compared with those received:
a server whose ranged answers are wrong is then asked for whole bodies,
whose start is skipped (as for a server that ignores Range and answers
200). The caller verifies the whole image's hash at the end all the same,
which proves that the pieces from different servers fit together.

The body is read with ``http.client``'s ``readinto`` straight into the
caller's buffer: urllib3's ``readinto`` reads into a new ``bytes`` object
and copies it (two extra copies and an allocation per read, which halved
the download rate).
"""

from collections.abc import Callable
import contextlib
import http.client
import re
import threading

from keystoneauth1 import exceptions as ks_exc
from oslo_log import log as logging
import requests
import urllib3

from image_agent import conf
from image_agent import exception
from image_agent.i18n import _
from image_agent.image import auth
from image_agent.image import retry

LOG = logging.getLogger(__name__)
CONF = conf.CONF

# Bytes before the offset asked again on a resume and compared with those
# received: a server whose ranged answers are wrong (Glance's http store
# ignores the offset) is caught at once instead of by the final hash.
OVERLAP = 64 * 1024
# New bytes an attempt must bring for its failure to start a new count of
# num_retries (for a small image, a sixteenth of it): less is no progress,
# as from a server that trickles a few bytes and breaks off.
MIN_PROGRESS = 1024 * 1024
_CONTENT_RANGE = re.compile(r'bytes\s+(\d+)-(\d+)/(\d+|\*)')
# Failures of a request that never got an answer: another server may help.
_CONNECT_ERRORS = (
    ks_exc.ConnectionError,
    requests.exceptions.ConnectionError,
    OSError,
)
# Failures of a body while it streams: resume from the offset reached.
STREAM_ERRORS = (
    OSError,
    http.client.HTTPException,
    urllib3.exceptions.HTTPError,
    requests.exceptions.RequestException,
)


class StreamBroken(Exception):
    """The body ended before its announced length."""


class OtherBytes(StreamBroken):
    """Bytes sent again before the offset differ from those received."""


class Aborted(Exception):
    """``abort`` was called: the transfer was given up from outside."""


def parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    """``(first byte, total size or None)`` of a Content-Range header."""
    match = _CONTENT_RANGE.fullmatch((value or '').strip())
    if not match:
        return None
    total = None if match.group(3) == '*' else int(match.group(3))
    return int(match.group(1)), total


class HttpSource:
    """The data of one image, from whichever Glance server can give it.

    ``next_server(avoid)`` gives the server of each attempt (the rotation
    of ``GlanceClientWrapper``). Failures without progress in between are
    bounded by ``[glance] num_retries``: a stream that moved forward by at
    least ``MIN_PROGRESS`` bytes (a sixteenth of a smaller image) before it
    broke starts a new count, so a long download survives one failure per
    server restart, while a dead deployment fails in a few attempts and a
    server that trickles a few bytes and breaks off fails as fast. However
    much each attempt moves, a download resumes at most ``[glance]
    download_max_resumes`` times.

    ``fetched`` counts the bytes received (those asked again included),
    ``resumes`` the requests made to continue after a failure.
    """

    def __init__(
        self,
        context,
        image_id: str,
        next_server: Callable[..., str],
        expected_size: int | None = None,
        ranges: bool = True,
        start: int = 0,
    ) -> None:
        self.image_id = image_id
        # ``start``: the bytes before it came from elsewhere (a peer).
        self.offset = start
        self.fetched = 0
        self.resumes = 0
        self.total: int | None = expected_size or None
        self._context = context
        self._next_server = next_server
        self._response: requests.Response | None = None
        self._body = None
        self._remaining: int | None = None
        self._skip = 0
        self._ranges = ranges
        self._tail = b''
        self._done = False
        self._tried: list[str] = []
        self._failures = 0
        # The offset at the last failure.
        self._failed_at = start
        self._backoff = retry.Backoff(
            CONF.glance.retry_backoff_base, CONF.glance.retry_backoff_max
        )
        self._aborted = False
        self._lock = threading.Lock()
        self._probe = False

    # -- reading -------------------------------------------------------------

    def open(self) -> None:
        """Get a response to read from (the first one, or after a failure).

        Called by ``readinto`` when needed; calling it first makes refusals
        (404, 403, an image without data) raise before any byte is read.
        """
        while self._body is None and not self._done:
            self._check_aborted()
            self._open()

    def check(self) -> None:
        """Ask Glance whether this caller may download the image now.

        A GET of the image's data with the caller's token, for one byte
        (``Range: bytes=0-0``; a whole body where ranges are not served),
        closed as soon as its answer's status is known: Glance applies its
        download policy and the image's status there. Refusals raise as in
        ``open``.
        """
        self._probe = True
        try:
            self.open()
        finally:
            self._probe = False
            self.close()

    def readinto(self, view: memoryview) -> int:
        """Fill the start of ``view``; return the byte count (0 at the end)."""
        while not self._done:
            if self._body is None:
                self.open()
                continue
            try:
                if self._skip:
                    self._discard(view)
                    continue
                count = self._body.readinto(view)
                if not count and len(view):
                    self._check_complete()
            except http.client.IncompleteRead as e:
                # A chunked body that broke: the whole chunks before the
                # break are at the start of ``view``, and are kept.
                count = len(e.partial or b'')
                self._advance(view[:count])
                self._check_aborted()
                self._broken(e)
                if count:
                    return count
                continue
            except OtherBytes as e:
                self._other_bytes(e)
                continue
            except STREAM_ERRORS + (StreamBroken,) as e:
                self._check_aborted()
                self._broken(e)
                continue
            if count:
                self._advance(view[:count])
                return count
        return 0

    def _advance(self, data: memoryview) -> None:
        count = len(data)
        self.offset += count
        self.fetched += count
        if self.offset - self._failed_at >= self._min_progress():
            self._failures = 0
        if self._remaining is not None:
            self._remaining -= count
        # The last OVERLAP bytes, to compare with a resumed answer.
        if count >= OVERLAP:
            self._tail = data[-OVERLAP:].tobytes()
        elif count:
            self._tail = (self._tail + data.tobytes())[-OVERLAP:]

    def _min_progress(self) -> int:
        if self.total:
            return max(1, min(MIN_PROGRESS, self.total // 16))
        return MIN_PROGRESS

    def _discard(self, view: memoryview) -> None:
        """Drop bytes before the offset, checking those we still know."""
        start = self.offset - self._skip
        count = self._body.readinto(view[: min(len(view), self._skip)])
        if not count:
            raise StreamBroken(_('the body ended before the resume offset'))
        self._skip -= count
        self.fetched += count
        known = self.offset - len(self._tail)
        low, high = max(start, known), start + count
        if low < high and (
            view[low - start : high - start]
            != self._tail[low - known : high - known]
        ):
            raise OtherBytes(
                _('the bytes before offset %d differ from those received')
                % self.offset
            )

    def _other_bytes(self, error: OtherBytes) -> None:
        """A wrong ranged answer: ask for whole bodies from now on."""
        if not self._ranges:
            self._broken(error)
            return
        self._stop_ranges(str(error))

    def _stop_ranges(self, reason: str) -> None:
        """Resume with whole bodies whose start is skipped, from now on."""
        LOG.warning(
            'Glance server %(server)s cannot resume image %(id)s with a '
            'range (%(reason)s); fetching whole bodies and skipping their '
            'start instead',
            {'server': self._tried[-1], 'id': self.image_id, 'reason': reason},
        )
        self._ranges = False
        self.close()

    def _check_complete(self) -> None:
        """At the end of a body: done, or broken off early."""
        if self._remaining:
            raise StreamBroken(
                _('the body ended %d bytes early') % self._remaining
            )
        if self.total is not None and self.offset < self.total:
            raise StreamBroken(
                _('the body ended at byte %(at)d of %(total)d')
                % {'at': self.offset, 'total': self.total}
            )
        self._done = True
        self.close()

    def close(self) -> None:
        """Close the current response (its connection is not reused)."""
        with self._lock:
            response, self._response, self._body = self._response, None, None
        if response is not None:
            response.close()

    def abort(self) -> None:
        """Stop at once, from any thread: a blocked read returns, and
        ``readinto`` raises Aborted instead of resuming."""
        self._aborted = True
        with self._lock:
            response = self._response
            if response is not None:
                # urllib3 >= 2.3 can shut the socket of a response that
                # another thread reads; without it the read ends normally.
                with contextlib.suppress(Exception):
                    response.raw.shutdown()

    def _check_aborted(self) -> None:
        if self._aborted:
            self.close()
            raise Aborted()

    # -- failures and resuming -----------------------------------------------

    def _broken(self, error: BaseException) -> None:
        self.close()
        self._fail(error)
        LOG.warning(
            'Download of image %(id)s broke off at byte %(offset)d on '
            '%(server)s: %(error)s; resuming on the next server',
            {
                'id': self.image_id,
                'offset': self.offset,
                'server': self._tried[-1],
                'error': str(error) or type(error).__name__,
            },
        )

    def _fail(self, error: BaseException) -> None:
        """Count a failure; raise once the retries are used up."""
        self._failures += 1
        self._failed_at = self.offset
        resumes_left = self.resumes < CONF.glance.download_max_resumes
        if self._failures <= CONF.glance.num_retries and resumes_left:
            return
        servers = ', '.join(dict.fromkeys(self._tried))
        reason = str(error)
        if not resumes_left:
            reason = _('%(error)s; resumed %(resumes)d times already') % {
                'error': reason,
                'resumes': self.resumes,
            }
        if self.offset == 0:
            raise exception.GlanceConnectionFailed(
                attempts=len(self._tried), servers=servers, reason=reason
            ) from error
        raise exception.ImageDownloadFailed(
            image_id=self.image_id,
            reason=_(
                'the transfer broke off at byte %(offset)d and could not '
                'be resumed (servers tried: %(servers)s): %(error)s'
            )
            % {'offset': self.offset, 'servers': servers, 'error': reason},
        ) from error

    def _headers(self) -> dict[str, str]:
        headers = {'Accept': 'application/octet-stream'}
        if CONF.auth_strategy == 'noauth':
            headers.update(auth.noauth_identity_headers(self._context))
        if self._probe and self._ranges:
            headers['Range'] = 'bytes=0-0'
        elif self.offset and self._ranges:
            start = self.offset - len(self._tail)
            headers['Range'] = 'bytes=%d-' % start
        return headers

    def _open(self) -> None:
        """One attempt at a response that continues at ``offset``."""
        # Not the server that just failed, while there are others.
        server = self._next_server(self._tried[-1:])
        if self._tried:
            self._backoff.wait(self._tried.count(server))
        self._tried.append(server)
        if self.offset:
            self.resumes += 1
        url = '%s/v2/images/%s/file' % (server, self.image_id)
        try:
            response = self._get(url)
        except _CONNECT_ERRORS as e:
            LOG.warning(
                'Download of image %(id)s from %(server)s failed: %(error)s',
                {'id': self.image_id, 'server': server, 'error': e},
            )
            self._fail(e)
            return
        with self._lock:
            self._response = response
        if self._aborted:
            self._check_aborted()
        try:
            self._accept(response)
        except BaseException:
            self.close()
            raise

    def _get(self, url: str) -> requests.Response:
        """The streamed answer of one attempt (the caller's token)."""
        return auth.get_session().get(
            url,
            auth=auth.auth_for(self._context, False),
            headers=self._headers(),
            global_request_id=getattr(
                self._context, 'global_request_id', None
            ),
            stream=True,
            raise_exc=False,
            connect_retries=0,
        )

    def _accept(self, response: requests.Response) -> None:
        """Check an answer; make its body the one read from."""
        status = response.status_code
        if status == 206:
            self._accept_range(response)
        elif status == 200:
            # A server that ignores Range sends everything again.
            self._skip = self.offset
            self._set_length(response, 0)
        elif status == 416 and self.offset >= (self.total or float('inf')):
            # Everything was received; only the end of the body was lost.
            self._done = True
            self.close()
            return
        elif status in (400, 416) and 'Range' in response.request.headers:
            # Glance answers 400 for a store without random access (http).
            self._stop_ranges(
                _('Glance answered %d to a ranged request') % status
            )
            return
        else:
            self._refuse(response)
        if self._response is not None:
            self._body = _body_reader(response)

    def _accept_range(self, response: requests.Response) -> None:
        parsed = parse_content_range(response.headers.get('Content-Range'))
        if parsed is None or parsed[0] > self.offset:
            self.close()
            self._fail(
                StreamBroken(
                    _('unusable Content-Range %r for offset %d')
                    % (response.headers.get('Content-Range'), self.offset)
                )
            )
            return
        start, total = parsed
        self._skip = self.offset - start
        self._set_length(response, start, total)

    def _set_length(
        self, response: requests.Response, start: int, total: int | None = None
    ) -> None:
        length = response.headers.get('Content-Length')
        self._remaining = int(length) - self._skip if length else None
        if total is None and length and start == 0:
            total = int(length)
        if total is not None:
            self.total = total

    def _refuse(self, response: requests.Response) -> None:
        """Raise the typed error of a status, or count a retriable one."""
        status = response.status_code
        self.close()
        if status in (401, 403):
            raise exception.ImageNotAuthorized(image_id=self.image_id)
        if status == 404:
            raise exception.ImageNotFound(image_id=self.image_id)
        if status == 204:
            raise exception.ImageDownloadFailed(
                image_id=self.image_id, reason=_('image contains no data')
            )
        reason = _('Glance answered %(status)d %(text)s') % {
            'status': status,
            'text': response.reason or '',
        }
        if status == 503:
            self._fail(StreamBroken(reason))
            return
        raise exception.ImageDownloadFailed(
            image_id=self.image_id, reason=reason
        )


def _body_reader(response: requests.Response):
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
