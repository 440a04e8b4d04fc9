"""Who fetches from whom during a pre-cache (the caller's side).

A tree that grows as hosts finish: the first host able to serve peers (its
``ping`` shows a ``peer_url``) fetches from Glance; every host that has
cached the images becomes a source for ``fanout`` hosts at once, each of
which is told that source first and a few other finished hosts after it
(if its source dies or lies, the agent goes on with the next, then with
Glance). Glance serves about one copy, and the number of copies doubles
(or more) at each step instead of every host queueing on Glance.

With ``streaming``, a host becomes a source as soon as its download is
under way (the caller sees it in the host's ``ping``; the agent serves the
entry it is still writing): the tree's levels then stream at once instead
of one after the other.

Hosts that cannot serve (peers off, an older agent) are not held back:
they start at once and fetch from Glance as before. When no source has
room and no serving host is running (the seed failed), the next host
starts as a new seed.
"""

import dataclasses

# Peers named to one host: its source first, then fallbacks.
MAX_PEERS = 4


@dataclasses.dataclass
class _Source:
    host: str
    free: int


class Spread:
    """The order of a pre-cache over ``hosts`` and the peers of each."""

    def __init__(
        self,
        hosts: list[str],
        serving: set[str],
        fanout: int,
        seeds: int = 1,
        streaming: bool = False,
    ) -> None:
        """``serving``: the hosts that can serve peers; ``fanout``: hosts a
        source serves at once (0: no spreading, everyone from Glance)."""
        self._fanout = fanout
        self._streaming = streaming
        self._seeds = seeds if fanout else 0
        serving = serving if fanout else set()
        # Hosts that cannot serve go first, all at once.
        self._pending = [h for h in hosts if h not in serving] + [
            h for h in hosts if h in serving
        ]
        self._serving = serving
        self._sources: list[_Source] = []
        # The source each running host was given.
        self._source_of: dict[str, _Source | None] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    def ready(self, room: int) -> list[tuple[str, list[str]]]:
        """Up to ``room`` hosts to start now, each with its peers."""
        started = []
        while self._pending and len(started) < room:
            host = self._pending[0]
            if host not in self._serving:
                started.append(self._start(host, None))
            elif self._seeds > 0 or self._stalled():
                self._seeds = max(0, self._seeds - 1)
                started.append(self._start(host, None))
            else:
                source = self._roomiest()
                if source is None:
                    break
                started.append(self._start(host, source))
        return started

    def finished(self, host: str, cached: bool) -> None:
        """``host`` is done; with ``cached`` it now serves others."""
        source = self._source_of.pop(host, None)
        if source is not None:
            source.free += 1
        known = self._source(host)
        if not cached and known is not None:
            self._sources.remove(known)
        elif cached and known is None and host in self._serving:
            self._sources.append(_Source(host, self._fanout))

    def waiting(self) -> list[str]:
        """With ``streaming``: the running hosts that could serve while
        they download, not sources yet (the caller watches them)."""
        if not self._streaming:
            return []
        return [
            h
            for h in self._source_of
            if h in self._serving and self._source(h) is None
        ]

    def downloading(self, host: str) -> None:
        """``host``'s download is under way: it serves others already."""
        if self._source(host) is None:
            self._sources.append(_Source(host, self._fanout))

    def _source(self, host: str) -> _Source | None:
        return next((s for s in self._sources if s.host == host), None)

    def distrust(self, hosts: list[str]) -> None:
        """Stop naming ``hosts`` (their bytes failed Glance's hash)."""
        self._sources = [s for s in self._sources if s.host not in hosts]

    def _start(self, host: str, source: _Source | None):
        self._pending.pop(0)
        self._source_of[host] = source
        if source is not None:
            source.free -= 1
        return host, self._peers(source)

    def _peers(self, first: _Source | None) -> list[str]:
        """The source, then the other finished hosts with most room."""
        others = sorted(
            (s for s in self._sources if s is not first),
            key=lambda s: -s.free,
        )
        chosen = ([first] if first is not None else []) + others
        return [s.host for s in chosen[:MAX_PEERS]]

    def _roomiest(self) -> _Source | None:
        best = max(self._sources, key=lambda s: s.free, default=None)
        return best if best is not None and best.free > 0 else None

    def _stalled(self) -> bool:
        """No source has room and no serving host is running to become
        one: waiting would never end."""
        if self._roomiest() is not None:
            return False
        return not any(h in self._serving for h in self._source_of)
