"""The RPC version a client may send: ``[upgrade_levels] image_agent``.

During a rolling upgrade the callers are pinned to the version of the
oldest agent still running. The level is a version (``1.0``), a release
(looked up in ``ImageAgentAPI.VERSION_ALIASES``) or ``auto``: the version
the agents report in ``ping``, asked once per agent and remembered by the
client, as Nova's compute API remembers the lowest version of its services.
"""

from collections.abc import Callable
import threading
from typing import Any

from image_agent import exception
from image_agent.i18n import _

AUTO = 'auto'
OPTION = '[upgrade_levels] image_agent'


def parse_version(version: str) -> tuple[int, int]:
    """``'1.10'`` as ``(1, 10)``; anything else is a ValueError."""
    major, minor = version.split('.')
    return int(major), int(minor)


def resolve(level: str | None, aliases: dict[str, str]) -> str | None:
    """The version a configured level names: None (no cap), ``AUTO``, or
    a version. A level that is none of them is a configuration error."""
    if level is None or not level.strip():
        return None
    level = level.strip()
    if level.lower() == AUTO:
        return AUTO
    version = aliases.get(level.lower(), level)
    try:
        parse_version(version)
    except ValueError:
        raise exception.InvalidConfigurationValue(
            option=OPTION,
            value=level,
            reason=_(
                'not a version such as 1.0, "auto", or a release among %s'
            )
            % ', '.join(sorted(aliases)),
        ) from None
    return version


def lowest(versions: list[str]) -> str:
    return min(versions, key=parse_version)


class AutoCap:
    """The versions agents report, asked once each and remembered.

    ``probe(ctxt, host)`` pings an agent (``host`` None: any agent of the
    topic) and returns the version it reports. A call to a host is capped
    at that host's version; a call to any agent at the lowest version seen
    so far, the first answer of the topic included.
    """

    def __init__(self, probe: Callable[[Any, str | None], str]) -> None:
        self._probe = probe
        self._lock = threading.Lock()
        self._versions: dict[str | None, str] = {}

    def known(self, host: str | None = None) -> str | None:
        """The cap already known for ``host`` (or any agent), else None."""
        with self._lock:
            if host is not None:
                return self._versions.get(host)
            if None not in self._versions:
                return None
            return lowest(list(self._versions.values()))

    def cap(self, ctxt, host: str | None = None) -> str:
        """The cap for a call to ``host``, asking its agent the first time.

        A failed ping raises what the call itself would have raised (no
        agent answered): nothing is remembered then.
        """
        if self.known(host) is None:
            self.remember(host, self._probe(ctxt, host))
        return self.known(host)

    def remember(self, host: str | None, version: str) -> None:
        """Record the version ``host``'s agent reported (in a ping)."""
        parse_version(version)
        with self._lock:
            self._versions[host] = version

    def reset(self) -> None:
        """Forget every version (after the agents were upgraded)."""
        with self._lock:
            self._versions.clear()
