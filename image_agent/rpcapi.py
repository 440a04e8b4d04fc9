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

Importing this module registers no option: ``ImageAgentAPI`` registers the
``[image_agent]`` and ``[upgrade_levels] image_agent`` options on the
ConfigOpts it is given (``image_agent.conf.client``).

Pre-caching images on many hosts fans out from here, the caller's side
(``image_agent.precache``):

    results = agent.precache(ctxt, [image_a, image_b], ['node-1', 'node-2'])
    results['node-1'][image_a]['status']   # cached, existing, error, skipped
"""

from collections.abc import Callable
import dataclasses
import socket
from typing import Any

from oslo_config import cfg
import oslo_messaging as messaging

from image_agent import deadline
from image_agent import exception
from image_agent import idempotency
from image_agent import notifications
from image_agent import precache as precache_mod
from image_agent import rpc
from image_agent import upgrade_levels
from image_agent.conf import client as client_conf


@dataclasses.dataclass
class _Prepared:
    """A call context and what the caller waits for: its limits, its
    target in words, and what the caller can do about a timeout."""

    cctxt: Any
    target: str
    timeout: float
    monitor: float | None = None
    hint: str = ''


class ImageAgentAPI:
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

    TOPIC = 'image-agent'
    RPC_API_VERSION = '1.4'
    # [upgrade_levels] image_agent may name a release: the API version its
    # agents serve, by series and by name, as in Nova's compute API.
    VERSION_ALIASES = {
        '2026.2': '1.1',
        'hibiscus': '1.1',
        # The series in development; its name joins it once it is chosen.
        '2027.1': '1.4',
    }
    # Hosts pre-cached at once by precache().
    PRECACHE_WORKERS = 16
    # Hosts one pre-cached host serves at once when the agents spread
    # images among themselves ([peers] enabled on the agents).
    PEER_FANOUT = 3
    # Seconds an agent has to answer the ping that precedes its pre-cache.
    PRECACHE_PING_TIMEOUT = 5

    def __init__(
        self,
        transport: messaging.Transport | None = None,
        topic: str | None = None,
        version_cap: str | None = None,
        conf: cfg.ConfigOpts | None = None,
        timeout: int | None = None,
        retry: int | None = None,
    ) -> None:
        """Build a client; with no ``transport``, one from ``conf``.

        ``conf`` (default: the global ``cfg.CONF``) is the caller's
        configuration: the client's options are registered on it and read
        from its ``[image_agent]`` group and ``[upgrade_levels]
        image_agent``. ``transport`` may be the caller's own (made without
        ``rpc.ALLOWED_EXMODS``: errors are typed all the same).
        ``topic``, ``version_cap`` (a version, a release or ``auto``) and
        ``timeout`` override the options; ``timeout`` also bounds the
        heartbeat window of transfers when shorter than their
        ``call_monitor_timeout``. ``retry`` is oslo.messaging's (None: wait
        for the broker forever, N: give up after N reconnections).
        """
        conf = cfg.CONF if conf is None else conf
        client_conf.register_opts(conf)
        self._conf = conf
        self._owns_transport = transport is None
        self._transport = transport or rpc.get_transport(conf)
        rpc.register_messaging_opts(self._transport.conf)
        options = conf[client_conf.GROUP]
        self._timeout = timeout or options.timeout
        self.topic = topic or options.topic or self.TOPIC
        level = upgrade_levels.resolve(
            version_cap or conf[client_conf.UPGRADE_LEVELS].image_agent,
            self.VERSION_ALIASES,
        )
        self._auto_cap = None
        if level == upgrade_levels.AUTO:
            self._auto_cap = upgrade_levels.AutoCap(self._agent_version)
            level = None
        self.version_cap = level
        self.client = rpc.get_client(
            self._transport,
            self.topic,
            self.RPC_API_VERSION,
            version_cap=self.version_cap,
            timeout=timeout or options.timeout,
            retry=retry,
        )

    def close(self) -> None:
        """Release the transport if this client made it."""
        if self._owns_transport:
            self._transport.cleanup()

    def can_send_version(
        self, version: str, ctxt=None, host: str | None = None
    ) -> bool:
        """Whether the version cap lets calls of ``version`` be sent.

        With ``[upgrade_levels] image_agent = auto``, the cap of ``host``'s
        agent (or of any agent): asked with ``ctxt`` the first time; without
        ``ctxt`` and not known yet, only 1.0 is sure to be understood.
        """
        if self._auto_cap is None:
            return self.client.can_send_version(version)
        cap = self._auto_cap.known(host)
        if cap is None and ctxt is not None:
            cap = self._auto_cap.cap(ctxt, host)
        return upgrade_levels.parse_version(
            version
        ) <= upgrade_levels.parse_version(cap or '1.0')

    def _require(
        self, version: str, method: str, ctxt=None, host: str | None = None
    ) -> None:
        if not self.can_send_version(version, ctxt, host):
            cap = self.version_cap
            if self._auto_cap is not None:
                cap = 'auto: %s' % (self._auto_cap.known(host) or '1.0')
            raise exception.RPCVersionCapped(
                method=method, version=version, cap=cap
            )

    def _agent_version(self, ctxt, host: str | None) -> str:
        """The RPC version an agent reports (``auto`` asks it once)."""
        status = self._call_with(self._prepare(host), ctxt, 'ping')
        return str(status.get('version') or '1.0')

    def _prepare(
        self,
        host: str | None,
        version: str = '1.0',
        transfer: bool = False,
        timeout: float | None = None,
    ) -> _Prepared:
        """The call context: version, target agent, and timeouts.

        Transfers get the long ``[image_agent] transfer_timeout`` with
        heartbeats every half ``call_monitor_timeout``: a long download never
        times out while the agent lives, and its death is noticed in seconds.
        Every call is published with the mandatory flag: when no queue of
        an agent is there to take it, the broker says so at once.
        """
        options: dict[str, Any] = {
            'version': version,
            'transport_options': messaging.TransportOptions(
                at_least_once=True
            ),
        }
        if host:
            options['server'] = host
        monitor = None
        if transfer:
            client_options = self._conf[client_conf.GROUP]
            monitor = client_options.call_monitor_timeout
            if self._timeout:
                monitor = max(2, min(monitor, int(self._timeout)))
            options['timeout'] = client_options.transfer_timeout
            options['call_monitor_timeout'] = monitor
        if timeout is not None:
            options['timeout'] = timeout
        wait = options.get('timeout') or self._timeout
        if wait is None:
            wait = self._transport.conf.rpc_response_timeout
        target = 'topic %s, %s' % (
            self.topic,
            'host %s' % host if host else 'any host',
        )
        return _Prepared(self.client.prepare(**options), target, wait, monitor)

    def _call(self, ctxt, method: str, host: str | None, **kwargs):
        return self._call_with(self._prepare(host), ctxt, method, **kwargs)

    @staticmethod
    def _call_with(prepared: _Prepared, ctxt, method: str, **kwargs):
        """Send a call stamped with its deadline; type what comes back.

        A request the agent refused as expired did not run: it waited
        longer than its deadline, most often because sending it waited for
        the broker (``retry=None`` waits through an outage) while its
        deadline ran. It is sent once more, with a new deadline.
        """
        for attempt in (1, 2):
            try:
                return _send(prepared, ctxt, method, kwargs)
            except exception.RequestExpired:
                if attempt == 2:
                    raise
        raise AssertionError('unreachable')

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
        convert_to: str | None = None,
    ) -> dict:
        """Download an image to ``path`` on the agent's host.

        Returns ``path`` (resolved), ``size``, ``os_hash_algo``,
        ``os_hash_value`` and ``reused``; from agents of 1.4 on also
        ``disk_format_detected`` and ``virtual_size`` (what the agent's
        inspection found the bytes to be) and ``converted_from``. With
        ``convert_to='raw'`` (1.4) the file is the image converted to raw
        by the agent (``virtual_size`` bytes, sparse).
        """
        version = '1.0'
        kwargs: dict[str, Any] = {
            'image_id': image_id,
            'path': path,
            'overwrite': overwrite,
        }
        if convert_to is not None:
            self._require('1.4', 'download with convert_to', ctxt, host)
            version = '1.4'
            kwargs['convert_to'] = convert_to
        return self._call_with(
            self._prepare(host, version=version, transfer=True),
            ctxt,
            'download',
            **kwargs,
        )

    def create(
        self,
        ctxt,
        image_meta: dict,
        path: str | None = None,
        host: str | None = None,
        idempotency_key: str | None = None,
        convert_from: str | None = None,
    ) -> dict:
        """Create an image, uploading the file at ``path`` if given.

        With an ``idempotency_key`` (RPC 1.2), the key is recorded on the
        image (property ``image_agent_idempotency_key``) and a create with
        a key the caller's project already used returns that image instead
        of making another: after a timeout, repeat the call with the same
        key, or look the image up with ``find_created``.

        With ``convert_from`` (RPC 1.4), the file at ``path`` is in that
        format (``raw``, ``qcow2``...) and is uploaded converted to the
        ``disk_format`` of ``image_meta`` (Cinder's upload of a raw volume
        as qcow2); the agent inspects it first.
        """
        version = '1.0'
        kwargs: dict[str, Any] = {'image_meta': image_meta, 'path': path}
        if idempotency_key is not None:
            self._require('1.2', 'create with an idempotency key', ctxt, host)
            version = '1.2'
            kwargs['idempotency_key'] = idempotency_key
        if convert_from is not None:
            self._require('1.4', 'create with convert_from', ctxt, host)
            version = '1.4'
            kwargs['convert_from'] = convert_from
        prepared = self._prepare(
            host, version=version, transfer=path is not None
        )
        if idempotency_key is not None:
            prepared.hint = (
                ' The image may have been created: look it up by its '
                'idempotency key %s, or create again with the same key.'
                % idempotency_key
            )
        return self._call_with(prepared, ctxt, 'create', **kwargs)

    def find_created(
        self, ctxt, idempotency_key: str, host: str | None = None
    ) -> dict | None:
        """The image a create with ``idempotency_key`` made, or None."""
        images = self.detail(
            ctxt, host=host, filters=idempotency.filters(ctxt, idempotency_key)
        )
        return images[0] if images else None

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
        convert_from: str | None = None,
    ) -> dict:
        """Update an image's metadata, uploading ``path`` first if given.

        With ``convert_from`` (RPC 1.4), as ``create``: the file is
        uploaded converted to the ``disk_format`` of ``image_meta``, else
        to the image's own.
        """
        version = '1.0'
        kwargs: dict[str, Any] = {
            'image_id': image_id,
            'image_meta': image_meta,
            'path': path,
            'purge_props': purge_props,
            'store_id': store_id,
            'base_image_ref': base_image_ref,
        }
        if convert_from is not None:
            self._require('1.4', 'update with convert_from', ctxt, host)
            version = '1.4'
            kwargs['convert_from'] = convert_from
        return self._call_with(
            self._prepare(host, version=version, transfer=path is not None),
            ctxt,
            'update',
            **kwargs,
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

    # -- 1.1: the image cache ------------------------------------------------

    def list_cache(self, ctxt, host: str) -> dict:
        """The cache of ``host``'s agent: ``directory``, ``max_size``,
        ``size`` and ``entries`` (least recently used first)."""
        self._require('1.1', 'list_cache', ctxt, host)
        return self._call_with(
            self._prepare(host, version='1.1'), ctxt, 'list_cache'
        )

    def evict(self, ctxt, image_id: str, host: str) -> dict:
        """Remove an image from ``host``'s cache; ``evicted`` lists the
        entries removed (CacheEntryInUse while one is being read)."""
        self._require('1.1', 'evict', ctxt, host)
        return self._call_with(
            self._prepare(host, version='1.1'),
            ctxt,
            'evict',
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
        self._require('1.1', 'precache', ctxt, host)
        kwargs: dict[str, Any] = {'image_ids': list(image_ids)}
        version = '1.1'
        if peers and self.can_send_version('1.3', ctxt, host):
            version = '1.3'
            kwargs['peers'] = list(peers)
        return self._call_with(
            self._prepare(host, version=version, transfer=True),
            ctxt,
            'precache',
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
            self._require('1.1', 'precache')
        image_ids = list(dict.fromkeys(image_ids))
        hosts = list(dict.fromkeys(hosts))
        workers = max(1, min(len(hosts), max_workers or self.PRECACHE_WORKERS))
        if ping_timeout is None:
            ping_timeout = self.PRECACHE_PING_TIMEOUT

        def ping(host: str) -> dict:
            status = self._call_with(
                self._prepare(host, timeout=ping_timeout), ctxt, 'ping'
            )
            if self._auto_cap is not None:
                version = str(status.get('version') or '1.0')
                self._auto_cap.remember(host, version)
            return status

        def cache(host: str, peers: list[str]) -> dict:
            return self.precache_host(ctxt, image_ids, host, peers)

        own_notifier = None
        if notifier is None:
            own_notifier = notifier = notifications.Notifier(
                self._conf,
                _own_host(self._conf),
                publisher='image-agent-client',
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


def _send(prepared: _Prepared, ctxt, method: str, kwargs: dict) -> Any:
    """One call, stamped with its deadline now; errors as typed classes."""
    window = deadline.start_window(prepared.timeout, prepared.monitor)
    values = deadline.stamp(rpc.context_to_dict(ctxt), window)
    try:
        return prepared.cctxt.call(values, method, **kwargs)
    except messaging.MessageUndeliverable as e:
        raise exception.AgentNotListening(
            target=prepared.target, queue=e.routing_key
        ) from e
    except messaging.RemoteError as e:
        typed = rpc.typed_error(e)
        if typed is e:
            raise
        raise typed from e
    except messaging.MessagingTimeout as e:
        if isinstance(e, exception.ImageAgentException):
            raise
        raise exception.AgentTimeout(
            target=prepared.target,
            seconds=prepared.monitor or prepared.timeout,
            hint=prepared.hint,
        ) from e
