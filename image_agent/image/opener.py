"""One answer at a time to the data requests of a download.

The asking half of ``fetch.HttpSource``: each attempt's request (the
caller's token, the ``Range`` that continues at the offset), its answer
judged by ``answers`` and either made the body to read or counted as a
failure by ``resume.Attempts``, and the answer closed or aborted from
another thread. Reading the body is ``fetch``'s.
"""

from collections.abc import Callable
import contextlib
import threading

from keystoneauth1 import exceptions as ks_exc
from oslo_log import log as logging
import requests

from image_agent import conf
from image_agent.image import answers
from image_agent.image import auth
from image_agent.image import resume

# The download's lines keep one logger, whichever half writes them.
LOG = logging.getLogger('image_agent.image.fetch')
CONF = conf.CONF

# Failures of a request that never got an answer: another server may help.
_CONNECT_ERRORS = (
    ks_exc.ConnectionError,
    requests.exceptions.ConnectionError,
    OSError,
)


class Aborted(Exception):
    """``abort`` was called: the transfer was given up from outside."""


class Opener:
    """The answers of one image's data, asked of server after server.

    ``next_server(avoid)`` gives the server of each attempt (the rotation
    of ``GlanceClientWrapper``); when to resume and when to give up is
    ``resume.Attempts``'s policy. ``offset`` is where the next byte goes,
    ``total`` the image's size once known.
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
        self.total: int | None = expected_size or None
        self._context = context
        self._attempts = resume.Attempts(next_server, start)
        self._response: requests.Response | None = None
        self._body = None
        self._remaining: int | None = None
        self._skip = 0
        self._ranges = ranges
        self._overlap = answers.Overlap()
        self._done = False
        self._aborted = False
        self._lock = threading.Lock()
        self._probe = False

    @property
    def resumes(self) -> int:
        return self._attempts.resumes

    @property
    def _tried(self) -> list[str]:
        """The servers asked so far, in order."""
        return self._attempts.tried

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

    def _fail(self, error: BaseException) -> None:
        """Count a failure; raise once the retries are used up."""
        self._attempts.fail(error, self.offset, self.image_id)

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

    def _open(self) -> None:
        """One attempt at a response that continues at ``offset``."""
        server = self._attempts.next(self.offset)
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

    def _headers(self) -> dict[str, str]:
        headers = {'Accept': 'application/octet-stream'}
        if CONF.auth_strategy == 'noauth':
            headers.update(auth.noauth_identity_headers(self._context))
        if self._probe and self._ranges:
            headers['Range'] = 'bytes=0-0'
        elif self.offset and self._ranges:
            start = self.offset - len(self._overlap)
            headers['Range'] = 'bytes=%d-' % start
        return headers

    def _accept(self, response: requests.Response) -> None:
        """Check an answer (see ``answers.judge``); make its body the one
        read from."""
        answer = answers.judge(response, self.offset, self.total)
        if answer.kind == answers.DONE:
            self._done = True
            self.close()
            return
        if answer.kind == answers.NO_RANGES:
            self._stop_ranges(answer.reason)
            return
        if answer.kind == answers.UNUSABLE:
            self.close()
            self._fail(answers.StreamBroken(answer.reason))
            return
        if answer.kind == answers.REFUSED:
            self._refuse(response)
            return
        self._skip, self._remaining = answer.skip, answer.remaining
        if answer.total is not None:
            self.total = answer.total
        if self._response is not None:
            self._body = answers.body_reader(response)

    def _refuse(self, response: requests.Response) -> None:
        """Raise the typed error of a status, or count a retriable one."""
        self.close()
        error = answers.refusal(response, self.image_id)
        if isinstance(error, answers.StreamBroken):
            self._fail(error)
            return
        raise error
