"""Turning ``[peers] enabled`` into a running server and a fetcher."""

from oslo_log import log as logging

from image_agent import exception
from image_agent import rpcapi
from image_agent.i18n import _
from image_agent.peers import fetcher
from image_agent.peers import server

LOG = logging.getLogger(__name__)


class PeerRuntime:
    """The peer server of one agent and its fetching side."""

    def __init__(self, server_: server.PeerServer, fetcher_, api) -> None:
        self.server = server_
        self.fetcher = fetcher_
        self._api = api

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()
        self.fetcher.close()
        self._api.close()


def start(
    conf, images, transfers, transport, topic: str, validator
) -> PeerRuntime | None:
    """Serve the cache to peers and fetch from them; None when off."""
    if not conf.peers.enabled:
        return None
    if transfers.cache is None:
        raise exception.InvalidConfigurationValue(
            option='[peers] enabled',
            value=True,
            reason=_('peers exchange cached images: set [agent] cache_dir'),
        )
    peer_server = server.PeerServer(
        conf, server.PeerApp(images, transfers.cache, validator)
    )
    url = peer_server.start()
    api = rpcapi.ImageAgentAPI(
        transport=transport,
        topic=topic,
        conf=conf,
        timeout=max(1, int(conf.peers.timeout)),
    )
    transfers.peers = fetcher.PeerFetcher(conf, api, own_url=url)
    return PeerRuntime(peer_server, transfers.peers, api)
