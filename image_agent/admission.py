"""How many transfer calls the agent holds at once, and the threads they take.

oslo.messaging runs every RPC call on a thread of its executor until it
returns, and a call waiting for a transfer slot (or for a transfer another
call started) holds its thread all that time. Unbounded, queued downloads
would take every thread, and ``ping``, ``show`` and the heartbeats' replies
would wait behind them. So:

- at most ``max_concurrent_downloads + max_concurrent_uploads +
  max_waiting_transfers`` transfer calls (downloads, uploads from a path,
  pre-caching) are in the agent at once; one more is refused at once with
  AgentBusy, before it costs a Glance call or a byte of disk;
- the executor has at least that many threads plus ``CHEAP_CALLS`` more
  (``executor_threads``), so the other calls always find one.
"""

import contextlib
import threading

from oslo_config import cfg
from oslo_log import log as logging

from image_agent import exception

LOG = logging.getLogger(__name__)

# Threads kept for calls that are not transfers (ping, show, detail...).
CHEAP_CALLS = 16


class Admission:
    """Counts the transfer calls in the agent; refuses those beyond."""

    def __init__(self, running: int, waiting: int) -> None:
        self.limit = running + waiting
        self._count = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def admit(self):
        """Hold one place for a transfer call; AgentBusy when none is left."""
        with self._lock:
            if self._count >= self.limit:
                raise exception.AgentBusy(limit=self.limit)
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1

    @property
    def count(self) -> int:
        return self._count


def transfer_calls(conf: cfg.ConfigOpts) -> int:
    """The most transfer calls the agent admits at once."""
    agent = conf.agent
    return (
        agent.max_concurrent_downloads
        + agent.max_concurrent_uploads
        + agent.max_waiting_transfers
    )


def executor_threads(conf: cfg.ConfigOpts) -> int:
    """RPC executor threads: ``executor_thread_pool_size``, raised to what
    the admitted transfer calls and the cheap calls need."""
    configured = conf.executor_thread_pool_size
    needed = transfer_calls(conf) + CHEAP_CALLS
    if configured < needed:
        LOG.info(
            'Using %(needed)d RPC executor threads instead of '
            'executor_thread_pool_size = %(configured)d: %(calls)d transfer '
            'calls may be in the agent at once, and %(cheap)d threads are '
            'kept for other calls',
            {
                'needed': needed,
                'configured': configured,
                'calls': transfer_calls(conf),
                'cheap': CHEAP_CALLS,
            },
        )
    return max(configured, needed)
