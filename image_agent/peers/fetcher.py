"""The fetching side in an agent: which peers to ask, what they sent.

A pre-cache request may name peer *hosts* (the caller's placement, see
``placement``); never URLs, which would let anyone on the bus point the
agent, and the caller's token, at any address. Each named host's agent is
asked over RPC (``ping``, with the caller's context) for the URL of its
peer server, which comes from that agent's own configuration.

The bytes are read by ``data.sources`` (the ``peer_agents`` source) and
hashed like any other; a peer whose bytes failed Glance's hash is avoided
for ``[peers] avoid_seconds``, and the image fetched from Glance alone.
"""

from concurrent import futures
import dataclasses
import threading
import time
from typing import Any

from oslo_log import log as logging
import requests

from image_agent.peers import source as peer_source

LOG = logging.getLogger(__name__)


class PeerFetcher:
    """Peers of one agent: their URLs, the ones to avoid, the transfers."""

    def __init__(self, conf, api, own_url: str | None = None) -> None:
        """``api``: an ``ImageAgentAPI`` on the agent's own transport."""
        self._options = conf.peers
        self._api = api
        self._own_url = own_url
        self._avoid: dict[str, float] = {}
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.verify = self._options.tls_ca_file or True

    def close(self) -> None:
        self._session.close()

    # -- which peers -------------------------------------------------------

    def urls(self, context, hosts: list[str]) -> dict[str, str]:
        """``{url: host}`` of ``hosts``' peer servers, in their order,
        without this agent, the avoided ones and those that do not answer
        in time."""
        if not hosts:
            return {}
        with futures.ThreadPoolExecutor(
            min(len(hosts), 8), thread_name_prefix='peer-ping'
        ) as pool:
            found = list(pool.map(lambda h: self._url(context, h), hosts))
        urls: dict[str, str] = {}
        for host, url in zip(hosts, found, strict=True):
            if url and url != self._own_url and not self.avoided(url):
                urls.setdefault(url, host)
        return dict(list(urls.items())[: self._options.max_peers])

    def _url(self, context, host: str) -> str | None:
        try:
            status = self._api.ping(context, host=host)
        except Exception as e:  # noqa: BLE001 - a missing peer is skipped
            LOG.info(
                'Peer %(host)s did not answer: %(error)s',
                {'host': host, 'error': e},
            )
            return None
        url = status.get('peer_url')
        return url if isinstance(url, str) else None

    def avoided(self, url: str) -> bool:
        with self._lock:
            until = self._avoid.get(url)
            if until is not None and until <= time.monotonic():
                del self._avoid[url]
                until = None
        return until is not None

    def avoid(self, urls) -> None:
        until = time.monotonic() + self._options.avoid_seconds
        with self._lock:
            for url in urls:
                self._avoid[url] = until

    # -- the transfer ------------------------------------------------------

    def open(
        self, context, image: dict[str, Any], urls: list[str], glance_at
    ) -> peer_source.PeersThenGlance:
        """The bytes of ``image`` from the peers at ``urls`` (then from
        Glance, ``glance_at(offset)``)."""
        return peer_source.PeersThenGlance(
            peer_source.PeerSource(context, image, urls, self._session),
            glance_at,
        )

    def rejected(
        self, stream: peer_source.PeersThenGlance, error: BaseException
    ) -> list[str]:
        """The bytes of ``stream`` did not match Glance's hash: avoid
        every peer that sent any (the caller throws the bytes away);
        return their URLs."""
        senders = [u for u, n in stream.peers.served.items() if n]
        self.avoid(senders)
        LOG.error(
            'Image %(id)s from peers %(peers)s does not match the hash '
            'Glance recorded (%(error)s): bytes thrown away, peers avoided '
            'for %(seconds)d s',
            {
                'id': stream.peers.image_id,
                'peers': ', '.join(senders) or 'none',
                'error': error,
                'seconds': self._options.avoid_seconds,
            },
        )
        return senders


@dataclasses.dataclass
class Peers:
    """The peer hosts one pre-cache request named, for ``data.sources``;
    ``rejected`` lists those whose bytes failed Glance's hash (the caller's
    placement stops naming them)."""

    fetcher: PeerFetcher
    hosts: list[str]
    rejected_hosts: list[str] = dataclasses.field(default_factory=list)
    _urls: dict[str, str] = dataclasses.field(default_factory=dict)

    def open(self, context, image, glance_at):
        """The peers' stream, or None when no peer answers."""
        self._urls = self.fetcher.urls(context, self.hosts)
        if not self._urls:
            return None
        return self.fetcher.open(context, image, list(self._urls), glance_at)

    def rejected(self, stream, error: BaseException) -> None:
        for url in self.fetcher.rejected(stream, error):
            host = self._urls.get(url)
            if host and host not in self.rejected_hosts:
                self.rejected_hosts.append(host)
