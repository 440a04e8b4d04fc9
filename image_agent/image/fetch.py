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

Each attempt's request, its answer taken or refused, closing and aborting
are in ``opener``; the rules for one answer (status, Content-Range, the
bytes sent again) in ``answers``; the resume policy (which server, how
many failures and resumes) in ``resume``. This module reads the bodies.

The body is read with ``http.client``'s ``readinto`` straight into the
caller's buffer: urllib3's ``readinto`` reads into a new ``bytes`` object
and copies it (two extra copies and an allocation per read, which halved
the download rate).
"""

import http.client

from oslo_log import log as logging
import requests
import urllib3

from image_agent.i18n import _
from image_agent.image import opener
from image_agent.image.answers import OVERLAP
from image_agent.image.answers import OtherBytes
from image_agent.image.answers import StreamBroken
from image_agent.image.answers import parse_content_range
from image_agent.image.opener import Aborted
from image_agent.image.resume import MIN_PROGRESS

__all__ = [
    'MIN_PROGRESS',
    'OVERLAP',
    'STREAM_ERRORS',
    'Aborted',
    'HttpSource',
    'OtherBytes',
    'StreamBroken',
    'parse_content_range',
]

LOG = logging.getLogger(__name__)

# Failures of a body while it streams: resume from the offset reached.
STREAM_ERRORS = (
    OSError,
    http.client.HTTPException,
    urllib3.exceptions.HTTPError,
    requests.exceptions.RequestException,
)


class HttpSource(opener.Opener):
    """The data of one image, from whichever Glance server can give it.

    ``readinto`` reads the body of the current answer (``opener``) and
    asks for the next one where it breaks off. ``fetched`` counts the
    bytes received (those asked again included), ``resumes`` the requests
    made to continue after a failure.
    """

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
        self._attempts.progressed(self.offset, self.total)
        if self._remaining is not None:
            self._remaining -= count
        self._overlap.keep(data)

    def _discard(self, view: memoryview) -> None:
        """Drop bytes before the offset, checking those we still know."""
        start = self.offset - self._skip
        count = self._body.readinto(view[: min(len(view), self._skip)])
        if not count:
            raise StreamBroken(_('the body ended before the resume offset'))
        self._skip -= count
        self.fetched += count
        self._overlap.check(view[:count], start, self.offset)

    def _other_bytes(self, error: OtherBytes) -> None:
        """A wrong ranged answer: ask for whole bodies from now on."""
        if not self._ranges:
            self._broken(error)
            return
        self._stop_ranges(str(error))

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
