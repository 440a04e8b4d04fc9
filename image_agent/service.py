"""The agent as an oslo.service service.

The transport, the RPC server and the transfer machinery are built in
``start()``, which runs in the worker process after the launcher forked, and
released in ``stop()``. On SIGTERM the server stops taking new calls, lets
the running ones finish (up to ``[agent] drain_timeout``), then cancels the
transfers still running so that they fail cleanly instead of being killed
halfway, and removes its queues from the broker: a request sent to a
stopped agent fails at once rather than waiting to run when it is back.
"""

import threading

from oslo_config import cfg
from oslo_log import log as logging
from oslo_service import service

from image_agent import admission
from image_agent import identity
from image_agent import manager
from image_agent import notifications
from image_agent import reports
from image_agent import rpc
from image_agent import transfers
from image_agent.image import glance
from image_agent.peers import runtime as peers_runtime

LOG = logging.getLogger(__name__)
# Left of graceful_shutdown_timeout for cancelled transfers to clean up,
# and the longest they are waited for.
_CANCEL_MARGIN = 5


class AgentService(service.ServiceBase):
    """Listens on ``[agent] topic`` and ``<topic>.<host>``."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self.host = conf.host
        self.topic = conf.agent.topic
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._transport = None
        self._server = None
        self._legacy_server = None
        self._notifier = None
        self._transfers = None
        self._peers = None

    def start(self) -> None:
        with self._lock:
            self._stopped.clear()
            images = glance.get_default_image_service()
            self._notifier = notifications.Notifier(self.conf, self.host)
            self._transfers = transfers.Transfers.from_conf(
                self.conf, images, self._notifier
            )
            removed = self._transfers.remove_orphans(
                self.conf.agent.orphan_scan_depth
            )
            if removed:
                LOG.info(
                    'Removed %d temporary file(s) of interrupted transfers',
                    len(removed),
                )
            self._transport = rpc.get_transport(self.conf)
            validator = identity.TokenValidator()
            self._peers = peers_runtime.start(
                self.conf,
                images,
                self._transfers,
                self._transport,
                self.topic,
                validator,
            )
            endpoint = manager.ImageAgentManager(
                self.host,
                self.topic,
                images,
                self._transfers,
                validator=validator,
                peer_url=self._peers.url if self._peers else None,
            )
            self._server = rpc.get_server(
                self._transport, self.topic, self.host, [endpoint]
            )
            self._server.start(
                override_pool_size=admission.executor_threads(self.conf)
            )
            self._legacy_server = self._listen_on_control_exchange(endpoint)
            reports.setup(self.conf, self._transfers)
            LOG.info(
                'image-agent %(host)s listening on %(topic)s and '
                '%(topic)s.%(host)s (download roots: %(roots)s)',
                {
                    'host': self.host,
                    'topic': self.topic,
                    'roots': ', '.join(self._transfers.downloads.roots)
                    or 'none',
                },
            )

    def _listen_on_control_exchange(self, endpoint):
        """A second server on the topic in ``[DEFAULT] control_exchange``,
        where callers of earlier versions send (``[agent]
        listen_on_control_exchange``); the same endpoint serves both."""
        if not self.conf.agent.listen_on_control_exchange:
            return None
        if self.conf.control_exchange == rpc.EXCHANGE:
            return None
        server = rpc.get_server(
            self._transport, self.topic, self.host, [endpoint], exchange=None
        )
        # The endpoint's admission bounds the transfer calls of both.
        server.start(override_pool_size=admission.executor_threads(self.conf))
        return server

    def stop(self, graceful: bool = True) -> None:
        with self._lock:
            if self._legacy_server is not None:
                self._legacy_server.stop()
            listened = self._server is not None
            if self._server is not None:
                self._server.stop()
                self._drain()
                self._server = None
            if self._legacy_server is not None:
                self._legacy_server.wait()
                self._legacy_server = None
            if listened:
                # Once no server of this agent consumes from them.
                self._remove_queues()
            if self._peers is not None:
                self._peers.stop()
                self._peers = None
            if self._transport is not None:
                self._transport.cleanup()
                self._transport = None
            if self._notifier is not None:
                self._notifier.cleanup()
                self._notifier = None
            self._stopped.set()
            LOG.info('image-agent %s stopped', self.host)

    def _remove_queues(self) -> None:
        """Requests sent now fail at once instead of running later."""
        removed = rpc.delete_server_queues(
            self._transport, self.topic, self.host
        )
        for queue, dropped in removed.items():
            LOG.info(
                'Removed queue %(queue)s (%(dropped)s request(s) in it '
                'dropped: their callers get no answer)',
                {'queue': queue, 'dropped': dropped},
            )

    def _drain(self) -> None:
        """Wait for running calls; cancel transfers that take too long."""
        timeout = self.conf.agent.drain_timeout
        try:
            limit = self.conf.graceful_shutdown_timeout
        except cfg.NoSuchOptError:
            limit = 0
        if limit:
            timeout = max(0, min(timeout, limit - _CANCEL_MARGIN))
        waiter = threading.Thread(target=self._server.wait, daemon=True)
        waiter.start()
        waiter.join(timeout)
        if waiter.is_alive():
            LOG.warning(
                'Calls still running after %d s: cancelling the transfers',
                timeout,
            )
            self._transfers.cancel_all()
            # A call that does not end even now (stuck where a cancel
            # cannot reach it) is not waited for: the process ends, and
            # its temporary file is removed at the next start.
            waiter.join(_CANCEL_MARGIN)
            if waiter.is_alive():
                LOG.error(
                    'Calls still running %d s after their transfers were '
                    'cancelled: stopping without them',
                    _CANCEL_MARGIN,
                )

    def wait(self) -> None:
        self._stopped.wait()

    def reset(self) -> None:
        """Nothing to reload: options are read when they are used."""
