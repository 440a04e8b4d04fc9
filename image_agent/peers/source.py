"""Fetching an image's bytes from peer agents, with Glance behind them.

``PeerSource`` is ``fetch.HttpSource`` pointed at the peers' servers: the
same streaming, the same resume with ``Range`` (and the check of the bytes
before the offset) when a peer breaks off, each peer tried once. It sends
the caller's token alone (never a service token) and counts what each
peer served. ``PeersThenGlance`` continues from Glance, at the offset
reached, when no peer can give the rest.

Only Glance's whole-image hash is trustworthy (a peer could lie about any
per-piece hash it made up), so the caller hashes every byte as it goes and
checks the hash at the end: bytes that do not match are thrown away, the
peers that sent them avoided, and the image fetched from Glance alone.
"""

from collections.abc import Callable
import threading

from oslo_log import log as logging
import requests

from image_agent import conf
from image_agent.data import pipeline
from image_agent.i18n import _
from image_agent.image import fetch

LOG = logging.getLogger(__name__)
CONF = conf.CONF


class PeersExhausted(fetch.StreamBroken):
    """Every peer was tried and none can give the rest."""


class PeerSource(fetch.HttpSource):
    """The bytes of one image from the servers ``urls`` of peer agents."""

    def __init__(
        self,
        context,
        image: dict,
        urls: list[str],
        session: requests.Session,
    ) -> None:
        self._urls = list(urls)
        self._session = session
        # Bytes each peer sent (those kept: after the resume overlap).
        self.served: dict[str, int] = {}
        super().__init__(
            context,
            image['id'],
            self._next_url,
            expected_size=image.get('size'),
        )

    def _next_url(self, avoid=()) -> str:
        """The next peer not tried yet in this transfer."""
        for url in self._urls:
            if url not in self._tried:
                return url
        raise PeersExhausted(
            _('no peer left to try (tried %s)') % ', '.join(self._tried)
        )

    def _get(self, url: str) -> requests.Response:
        headers = self._headers()
        headers['X-Auth-Token'] = self._context.auth_token
        request_id = getattr(self._context, 'global_request_id', None)
        if request_id:
            headers['X-OpenStack-Request-ID'] = request_id
        # verify given per request: requests lets REQUESTS_CA_BUNDLE
        # override a session's own.
        return self._session.get(
            url,
            headers=headers,
            stream=True,
            timeout=CONF.peers.timeout,
            verify=self._session.verify,
        )

    def _advance(self, data: memoryview) -> None:
        super()._advance(data)
        peer = self._tried[-1]
        self.served[peer] = self.served.get(peer, 0) + len(data)

    def _refuse(self, response: requests.Response) -> None:
        """A peer without the image, refusing the token or failing: the
        next peer (Glance decides for the caller in the end)."""
        self.close()
        self._fail(
            fetch.StreamBroken(
                _('peer %(url)s answered %(status)d')
                % {'url': self._tried[-1], 'status': response.status_code}
            )
        )

    def _fail(self, error: BaseException) -> None:
        if isinstance(error, PeersExhausted):
            raise error
        super()._fail(error)


class PeersThenGlance:
    """A pipeline source: peers first, then Glance from where they left.

    ``glance_at(offset)`` opens Glance's answer for the bytes from
    ``offset`` on; it is called at most once.
    """

    def __init__(
        self,
        peers: PeerSource,
        glance_at: Callable[[int], fetch.HttpSource],
    ) -> None:
        self.peers = peers
        self.glance: fetch.HttpSource | None = None
        self._glance_at = glance_at
        self._lock = threading.Lock()
        self._aborted = False

    def readinto(self, view: memoryview) -> int:
        if self.glance is None:
            try:
                return self.peers.readinto(view)
            except (fetch.Aborted, pipeline.Cancelled):
                raise
            except Exception as e:
                self._to_glance(e)
        return self.glance.readinto(view)

    def _to_glance(self, error: Exception) -> None:
        offset = self.peers.offset
        LOG.warning(
            'Peers could not give image %(id)s past byte %(offset)d '
            '(%(error)s); the rest comes from Glance',
            {'id': self.peers.image_id, 'offset': offset, 'error': error},
        )
        self.peers.close()
        glance = self._glance_at(offset)
        with self._lock:
            self.glance = glance
            aborted = self._aborted
        if aborted:
            glance.abort()

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            glance = self.glance
        self.peers.abort()
        if glance is not None:
            glance.abort()

    def close(self) -> None:
        self.peers.close()
        if self.glance is not None:
            self.glance.close()

    @property
    def fetched(self) -> int:
        """Bytes received from Glance (after the peers gave up)."""
        return self.glance.fetched if self.glance is not None else 0

    @property
    def resumes(self) -> int:
        glance = self.glance.resumes if self.glance is not None else 0
        return self.peers.resumes + glance
