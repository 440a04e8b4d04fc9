"""The image cache of each agent: listed, evicted, and filled on many
hosts at once (the pre-cache fan-out runs here, the caller's side, with
``image_agent.precache``)."""

from collections.abc import Callable
import socket
from typing import Any

from oslo_config import cfg

from image_agent import notifications
from image_agent import precache as precache_mod
from image_agent.rpcapi import calls


class CacheCalls(calls.AgentCalls):
    """The cache calls of RPC 1.1 (``peers`` of the pre-cache: 1.3)."""

    # Hosts pre-cached at once by precache().
    PRECACHE_WORKERS = 16
    # Hosts one pre-cached host serves at once when the agents spread
    # images among themselves ([peers] enabled on the agents).
    PEER_FANOUT = 3
    # Seconds an agent has to answer the ping that precedes its pre-cache.
    PRECACHE_PING_TIMEOUT = 5

    def list_cache(self, ctxt, host: str) -> dict:
        """The cache of ``host``'s agent: ``directory``, ``max_size``,
        ``size`` and ``entries`` (least recently used first)."""
        self._require("1.1", "list_cache", ctxt, host)
        return self._call_with(
            self._prepare(host, version="1.1"), ctxt, "list_cache"
        )

    def evict(self, ctxt, image_id: str, host: str) -> dict:
        """Remove an image from ``host``'s cache; ``evicted`` lists the
        entries removed (CacheEntryInUse while one is being read)."""
        self._require("1.1", "evict", ctxt, host)
        return self._call_with(
            self._prepare(host, version="1.1"),
            ctxt,
            "evict",
            image_id=image_id,
        )

    def precache_host(
        self,
        ctxt,
        image_ids: list[str],
        host: str,
        peers: list[str] | None = None,
    ) -> dict:
        """Cache ``image_ids`` on one host; the outcome per image id.

        ``peers``: hosts whose agents may have the images (1.3; an older
        agent is asked without them and fetches from Glance).
        """
        self._require("1.1", "precache", ctxt, host)
        kwargs: dict[str, Any] = {"image_ids": list(image_ids)}
        version = "1.1"
        if peers and self.can_send_version("1.3", ctxt, host):
            version = "1.3"
            kwargs["peers"] = list(peers)
        return self._call_with(
            self._prepare(host, version=version, transfer=True),
            ctxt,
            "precache",
            **kwargs,
        )

    def precache(
        self,
        ctxt,
        image_ids: list[str],
        hosts: list[str],
        max_workers: int | None = None,
        ping_timeout: float | None = None,
        progress: Callable[[str, dict, int, int], None] | None = None,
        notifier: Callable[..., None] | None = None,
        peer_fanout: int | None = None,
    ) -> dict[str, dict[str, dict]]:
        """Put images in the caches of many hosts at once.

        Each host's agent is first pinged (``ping_timeout`` seconds); one
        that does not answer is ``skipped``. The others cache the images
        one after another, up to ``max_workers`` hosts at once. Returns
        ``{host: {image_id: outcome}}``, the outcome's ``status`` being
        ``cached`` (copied in now; ``fetched``: bytes received from
        Glance), ``existing`` (it was there), ``error`` (with
        ``error_class`` and ``error``) or ``skipped``.

        ``progress(host, outcomes, hosts_done, hosts_total)`` is called as
        each host finishes. Notifications ``image.precache.start``,
        ``image.precache.progress`` (after each host) and
        ``image.precache.end`` go through ``notifier`` (by default a
        ``notifications.Notifier`` of this caller, publisher
        ``image-agent-client.<host>``; off unless notifications are
        configured).

        Agents that serve peers (``[peers] enabled``; their ping shows a
        ``peer_url``) spread the images among themselves: one fetches from
        Glance, and each host that has them serves ``peer_fanout`` others
        at once (default ``PEER_FANOUT``; 0 turns spreading off). See
        ``image_agent.peers.placement``. An outcome's ``source`` then may
        be ``peers``; ``rejected_peers`` names peers whose bytes did not
        match Glance's hash (they are not named to other hosts).
        """
        if self._auto_cap is None:  # else each host's agent is asked
            self._require("1.1", "precache")
        image_ids = list(dict.fromkeys(image_ids))
        hosts = list(dict.fromkeys(hosts))
        workers = max(1, min(len(hosts), max_workers or self.PRECACHE_WORKERS))
        if ping_timeout is None:
            ping_timeout = self.PRECACHE_PING_TIMEOUT

        def ping(host: str) -> dict:
            status = self._call_with(
                self._prepare(host, timeout=ping_timeout), ctxt, "ping"
            )
            if self._auto_cap is not None:
                version = str(status.get("version") or "1.0")
                self._auto_cap.remember(host, version)
            return status

        def cache(host: str, peers: list[str]) -> dict:
            return self.precache_host(ctxt, image_ids, host, peers)

        own_notifier = None
        if notifier is None:
            own_notifier = notifier = notifications.Notifier(
                self._conf,
                _own_host(self._conf),
                publisher="image-agent-client",
            )
        try:
            return precache_mod.fan_out(
                ctxt,
                image_ids,
                hosts,
                ping,
                cache,
                workers,
                notifier,
                progress,
                fanout=self.PEER_FANOUT
                if peer_fanout is None
                else peer_fanout,
            )
        finally:
            if own_notifier is not None:
                own_notifier.cleanup()


def _own_host(conf: cfg.ConfigOpts) -> str:
    """The caller's ``[DEFAULT] host`` when it has one, else its hostname."""
    try:
        return conf.host or socket.gethostname()
    except cfg.NoSuchOptError:
        return socket.gethostname()
