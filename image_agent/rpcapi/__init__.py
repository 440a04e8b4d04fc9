"""Client side of the image agent RPC API, for the services that call it.

    from image_agent import rpcapi

    agent = rpcapi.ImageAgentAPI(conf=CONF, transport=rpc.TRANSPORT)
    image = agent.show(ctxt, image_id)
    result = agent.download(ctxt, image_id, '/var/lib/x/disk', host='node-3')

``ctxt`` is the caller's own request context (any oslo.context context; its
token and service catalog travel with the call). Without ``host`` any agent
listening on the topic serves the call; with it, the agent of that host.
Errors of ``image_agent.exception`` are raised here as the same classes,
whatever transport the caller passes.

The calls are grouped by what they do: how a call reaches an agent
(``calls``: version cap, targets, timeouts, deadlines, typed errors), the
transfers (``transfer_calls``), the image cache (``cache_calls``); the
calls about images are here.

Importing this module registers no option: ``ImageAgentAPI`` registers the
``[image_agent]`` and ``[upgrade_levels] image_agent`` options on the
ConfigOpts it is given (``image_agent.conf.client``).

Pre-caching images on many hosts fans out from here, the caller's side
(``image_agent.precache``):

    results = agent.precache(ctxt, [image_a, image_b], ['node-1', 'node-2'])
    results['node-1'][image_a]['status']   # cached, existing, error, skipped
"""

from image_agent.rpcapi import cache_calls
from image_agent.rpcapi import transfer_calls

__all__ = ["ImageAgentAPI"]


class ImageAgentAPI(transfer_calls.TransferCalls, cache_calls.CacheCalls):
    """Client side of the image agent RPC API.

    API version history:

        * 1.0 - Initial version: ping, show, detail, download, create,
          update, delete, get_location, add_location, get_stores,
          list_members.
        * 1.1 - The image cache: list_cache, evict, and precache (one host's
          share of ImageAgentAPI.precache); download may be served from the
          cache and its result tells the ``source`` and ``fetched`` bytes.
        * 1.2 - create takes an ``idempotency_key``.
        * 1.3 - precache takes ``peers`` (hosts to fetch the bytes from);
          ping shows the agent's ``peer_url`` when it serves peers.
        * 1.4 - download takes ``convert_to`` (``raw``) and its result
          tells ``disk_format_detected``, ``virtual_size`` and
          ``converted_from``; create and update from a path take
          ``convert_from``.

    Every request carries its deadline (see ``image_agent.deadline``): an
    agent does not start a request its caller stopped waiting for. A
    request to a topic or host where no agent listens fails at once with
    ``AgentNotListening``; one nobody answers in time with
    ``AgentTimeout`` (both are ``MessagingTimeout`` too).
    """

    TOPIC = "image-agent"
    RPC_API_VERSION = "1.4"
    # [upgrade_levels] image_agent may name a release: the API version its
    # agents serve, by series and by name, as in Nova's compute API.
    VERSION_ALIASES = {
        "2026.2": "1.1",
        "hibiscus": "1.1",
        # The series in development; its name joins it once it is chosen.
        "2027.1": "1.4",
    }

    # -- the API -------------------------------------------------------------

    def ping(self, ctxt, host: str | None = None) -> dict:
        """The answering agent's host, version, uptime and transfers."""
        return self._call(ctxt, "ping", host)

    def show(self, ctxt, image_id: str, host: str | None = None) -> dict:
        return self._call(ctxt, "show", host, image_id=image_id)

    def detail(self, ctxt, host: str | None = None, **params) -> list[dict]:
        """Images; ``params`` as GlanceImageService.detail (filters, ...)."""
        return self._call(ctxt, "detail", host, **params)

    def delete(self, ctxt, image_id: str, host: str | None = None) -> bool:
        return self._call(ctxt, "delete", host, image_id=image_id)

    def get_location(
        self, ctxt, image_id: str, host: str | None = None
    ) -> tuple[str | None, list | None]:
        """``(direct_url, locations)``, as GlanceImageService.get_location."""
        result = self._call(ctxt, "get_location", host, image_id=image_id)
        return result["direct_url"], result["locations"]

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
            "add_location",
            host,
            image_id=image_id,
            url=url,
            metadata=metadata,
        )

    def get_stores(self, ctxt, host: str | None = None) -> list[dict]:
        return self._call(ctxt, "get_stores", host)

    def list_members(
        self, ctxt, image_id: str, host: str | None = None
    ) -> list[dict]:
        return self._call(ctxt, "list_members", host, image_id=image_id)
