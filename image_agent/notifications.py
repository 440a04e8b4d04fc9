"""Notifications of transfers: ``image.download.*`` and ``image.upload.*``.

``image.precache.start``, ``.progress`` (one per host) and ``.end`` are sent
by the caller of ``ImageAgentAPI.precache`` (publisher
``image-agent-client.<host>``), which alone sees every host's outcome.

Off unless ``[oslo_messaging_notifications] driver`` names a driver. The
payload names the image, the local path, the bytes moved and the duration;
oslo.messaging strips the token from the context it sends along.
"""

from typing import Any

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging as messaging

from image_agent import rpc

LOG = logging.getLogger(__name__)


class Notifier:
    """Sends notifications as ``<publisher>.<host>``."""

    def __init__(
        self, conf: cfg.ConfigOpts, host: str, publisher: str = 'image-agent'
    ) -> None:
        self._transport = messaging.get_notification_transport(conf)
        drivers = conf.oslo_messaging_notifications.driver
        self.enabled = any(d != 'noop' for d in drivers)
        self._notifier = None
        if self.enabled:
            self._notifier = messaging.Notifier(
                self._transport,
                publisher_id='%s.%s' % (publisher, host),
                serializer=rpc.RequestContextSerializer(),
            )

    def __call__(
        self, context, event_type: str, payload: dict[str, Any], error=False
    ) -> None:
        """Send one notification; a failure to send is logged, not raised."""
        if self._notifier is None:
            return
        send = self._notifier.error if error else self._notifier.info
        try:
            send(context, event_type, payload)
        except Exception:
            LOG.exception('Could not send notification %s', event_type)

    def cleanup(self) -> None:
        self._transport.cleanup()
