"""Client side of the image agent RPC API, for the services that call it.

    from image_agent import rpcapi

    agent = rpcapi.ImageAgentAPI()
    image = agent.show(ctxt, image_id)
    result = agent.download(ctxt, image_id, '/var/lib/x/disk', host='node-3')

``ctxt`` is the caller's own request context (any oslo.context context; its
token and service catalog travel with the call). Without ``host`` any agent
listening on the topic serves the call; with it, the agent of that host.
Errors of ``image_agent.exception`` are raised here as the same classes.
"""

from typing import Any

from oslo_config import cfg
import oslo_messaging as messaging

from image_agent import conf
from image_agent import rpc

CONF = conf.CONF


class ImageAgentAPI:
    """Client side of the image agent RPC API.

    API version history:

        * 1.0 - Initial version: ping, show, detail, download, create,
          update, delete, get_location, add_location, get_stores,
          list_members.
    """

    TOPIC = 'image-agent'
    RPC_API_VERSION = '1.0'

    def __init__(
        self,
        transport: messaging.Transport | None = None,
        topic: str | None = None,
        version_cap: str | None = None,
        conf: cfg.ConfigOpts = CONF,
        timeout: int | None = None,
        retry: int | None = None,
    ) -> None:
        """Build a client; with no ``transport``, one from ``conf``.

        A transport given by the caller must have been made with
        ``allowed_remote_exmods`` including ``rpc.ALLOWED_EXMODS`` (see
        ``rpc.get_transport``), or errors arrive as ``RemoteError``.
        ``timeout`` (default ``[DEFAULT] rpc_response_timeout``) bounds the
        calls that are not transfers; ``retry`` is oslo.messaging's (None:
        wait for the broker forever, N: give up after N reconnections).
        """
        self._conf = conf
        self._owns_transport = transport is None
        self._transport = transport or rpc.get_transport(conf)
        self.topic = topic or conf.agent.topic or self.TOPIC
        self.version_cap = version_cap or conf.agent.version_cap
        self.client = rpc.get_client(
            self._transport,
            self.topic,
            self.RPC_API_VERSION,
            version_cap=self.version_cap,
            timeout=timeout,
            retry=retry,
        )

    def close(self) -> None:
        """Release the transport if this client made it."""
        if self._owns_transport:
            self._transport.cleanup()

    def can_send_version(self, version: str) -> bool:
        """Whether the version cap lets calls of ``version`` be sent."""
        return self.client.can_send_version(version)

    def _prepare(
        self, host: str | None, version: str = '1.0', transfer: bool = False
    ):
        """The call context: version, target agent, and timeouts.

        Transfers get the long ``[agent] transfer_timeout`` with heartbeats
        every half ``call_monitor_timeout``: a long download never times
        out while the agent lives, and its death is noticed in seconds.
        """
        options: dict[str, Any] = {'version': version}
        if host:
            options['server'] = host
        if transfer:
            options['timeout'] = self._conf.agent.transfer_timeout
            options['call_monitor_timeout'] = (
                self._conf.agent.call_monitor_timeout
            )
        return self.client.prepare(**options)

    def _call(self, ctxt, method: str, host: str | None, **kwargs):
        return self._call_with(self._prepare(host), ctxt, method, **kwargs)

    @staticmethod
    def _call_with(cctxt, ctxt, method: str, **kwargs):
        return cctxt.call(ctxt, method, **kwargs)

    # -- the API -------------------------------------------------------------

    def ping(self, ctxt, host: str | None = None) -> dict:
        """The answering agent's host, version, uptime and transfers."""
        return self._call(ctxt, 'ping', host)

    def show(self, ctxt, image_id: str, host: str | None = None) -> dict:
        return self._call(ctxt, 'show', host, image_id=image_id)

    def detail(self, ctxt, host: str | None = None, **params) -> list[dict]:
        """Images; ``params`` as GlanceImageService.detail (filters, ...)."""
        return self._call(ctxt, 'detail', host, **params)

    def download(
        self,
        ctxt,
        image_id: str,
        path: str,
        host: str | None = None,
        overwrite: bool = False,
    ) -> dict:
        """Download an image to ``path`` on the agent's host.

        Returns ``path`` (resolved), ``size``, ``os_hash_algo``,
        ``os_hash_value`` and ``reused``.
        """
        cctxt = self._prepare(host, transfer=True)
        return self._call_with(
            cctxt,
            ctxt,
            'download',
            image_id=image_id,
            path=path,
            overwrite=overwrite,
        )

    def create(
        self,
        ctxt,
        image_meta: dict,
        path: str | None = None,
        host: str | None = None,
    ) -> dict:
        """Create an image, uploading the file at ``path`` if given."""
        cctxt = self._prepare(host, transfer=path is not None)
        return self._call_with(
            cctxt, ctxt, 'create', image_meta=image_meta, path=path
        )

    def update(
        self,
        ctxt,
        image_id: str,
        image_meta: dict,
        path: str | None = None,
        purge_props: bool = True,
        store_id: str | None = None,
        base_image_ref: str | None = None,
        host: str | None = None,
    ) -> dict:
        """Update an image's metadata, uploading ``path`` first if given."""
        cctxt = self._prepare(host, transfer=path is not None)
        return self._call_with(
            cctxt,
            ctxt,
            'update',
            image_id=image_id,
            image_meta=image_meta,
            path=path,
            purge_props=purge_props,
            store_id=store_id,
            base_image_ref=base_image_ref,
        )

    def delete(self, ctxt, image_id: str, host: str | None = None) -> bool:
        return self._call(ctxt, 'delete', host, image_id=image_id)

    def get_location(
        self, ctxt, image_id: str, host: str | None = None
    ) -> tuple[str | None, list | None]:
        """``(direct_url, locations)``, as GlanceImageService.get_location."""
        result = self._call(ctxt, 'get_location', host, image_id=image_id)
        return result['direct_url'], result['locations']

    def add_location(
        self,
        ctxt,
        image_id: str,
        url: str,
        metadata: dict,
        host: str | None = None,
    ) -> dict:
        return self._call(
            ctxt,
            'add_location',
            host,
            image_id=image_id,
            url=url,
            metadata=metadata,
        )

    def get_stores(self, ctxt, host: str | None = None) -> list[dict]:
        return self._call(ctxt, 'get_stores', host)

    def list_members(
        self, ctxt, image_id: str, host: str | None = None
    ) -> list[dict]:
        return self._call(ctxt, 'list_members', host, image_id=image_id)
