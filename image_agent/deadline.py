"""How long a request may wait for an agent before it must not run.

A caller stops waiting for an answer at some point: after its timeout for
a plain call, after the heartbeat window (``call_monitor_timeout``) for a
transfer no agent has taken up. What arrives at an agent after that must
not run: the caller was told it failed, and may have tried again.

Two mechanisms enforce it. The broker drops a plain call's message once
its lifetime (the caller's timeout, a relative TTL set by oslo.messaging)
is over. And every request carries, in its context, when it was sent and
how long it may wait to be started (``start_within``); the agent refuses
to start one that waited longer (``check``). The second is a comparison of
two hosts' clocks, so it allows ``[agent] clock_skew`` seconds of
difference; it is what stops transfers, whose messages live as long as a
transfer may last because oslo.messaging gives a call one value for both.

A transfer must start within about half its heartbeat window: the
agent's first heartbeat comes half a window after it starts, and must reach
the caller before the caller gives up (``start_window`` keeps a second of
that half for the clock skew the agent allows and the way back).
"""

import time
from typing import Any

from oslo_log import log as logging

from image_agent import exception
from image_agent.i18n import _

LOG = logging.getLogger(__name__)

# The key of the context dict that carries the deadline over RPC.
CONTEXT_KEY = 'image_agent_deadline'


def start_window(
    timeout: float, call_monitor_timeout: float | None = None
) -> float:
    """Seconds after sending within which an agent may start a request.

    With heartbeats, a little less than half the heartbeat window (the
    first heartbeat must still arrive in time); without, the caller's
    whole timeout.
    """
    if call_monitor_timeout:
        half = call_monitor_timeout / 2
        return min(timeout, max(half - 1, half / 2))
    return timeout


def stamp(
    values: dict[str, Any], start_within: float, now: float | None = None
) -> dict[str, Any]:
    """``values`` (a context dict) with the deadline of a request sent now."""
    stamped = dict(values)
    stamped[CONTEXT_KEY] = {
        'sent_at': time.time() if now is None else now,
        'start_within': float(start_within),
    }
    return stamped


def parse(values: dict[str, Any]) -> dict[str, float] | None:
    """Take the deadline out of a received context dict (None if absent).

    Callers older than this module send none; their requests are served as
    before. A malformed one is refused.
    """
    deadline = values.pop(CONTEXT_KEY, None)
    if deadline is None:
        return None
    ok = isinstance(deadline, dict) and all(
        isinstance(deadline.get(k), (int, float))
        and not isinstance(deadline.get(k), bool)
        for k in ('sent_at', 'start_within')
    )
    if not ok or deadline['start_within'] < 0:
        raise exception.InvalidInput(
            reason=_('malformed request context: %s is malformed')
            % CONTEXT_KEY
        )
    return {
        'sent_at': float(deadline['sent_at']),
        'start_within': float(deadline['start_within']),
    }


def check(
    deadline: dict[str, float] | None,
    method: str,
    clock_skew: float,
    context: Any = None,
    now: float | None = None,
) -> None:
    """Refuse (RequestExpired) a request its caller no longer waits for."""
    if deadline is None:
        return
    now = time.time() if now is None else now
    waited = now - deadline['sent_at']
    if waited <= deadline['start_within'] + clock_skew:
        return
    LOG.warning(
        'Dropped an expired %(method)s request %(request)s of user '
        '%(user)s, project %(project)s: sent %(waited).1f s ago, to be '
        'started within %(within).1f s (clock skew allowed: %(skew).1f s); '
        'its caller has stopped waiting',
        {
            'method': method,
            'request': getattr(context, 'request_id', None),
            'user': getattr(context, 'user_id', None),
            'project': getattr(context, 'project_id', None),
            'waited': waited,
            'within': deadline['start_within'],
            'skew': clock_skew,
        },
    )
    raise exception.RequestExpired(
        method=method,
        waited=round(waited, 1),
        start_within=deadline['start_within'],
    )
