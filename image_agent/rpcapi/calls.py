"""How a call reaches an agent: the base of ``ImageAgentAPI``.

The transport and the RPC client made from the caller's configuration;
the version a call may be sent at (``[upgrade_levels] image_agent``:
pinned, or ``auto``: asked of each agent, see ``upgrade_levels``); the
call context (target agent, timeouts, heartbeats of transfers); every
call stamped with its deadline (``image_agent.deadline``) and its errors
raised as the typed classes of ``image_agent.exception``.
"""

import dataclasses
from typing import Any

from kombu import exceptions as kombu_exceptions
from oslo_config import cfg
import oslo_messaging as messaging

from image_agent import deadline
from image_agent import exception
from image_agent import rpc
from image_agent import upgrade_levels
from image_agent.conf import client as client_conf


@dataclasses.dataclass
class Prepared:
    """A call context and what the caller waits for: its limits, its
    target in words, and what the caller can do about a timeout."""

    cctxt: Any
    target: str
    timeout: float
    monitor: float | None = None
    hint: str = ""


class AgentCalls:
    """Calls to the agents of one topic, at the version they understand.

    The subclass names the API: ``TOPIC``, ``RPC_API_VERSION`` and
    ``VERSION_ALIASES`` (see ``ImageAgentAPI``).
    """

    TOPIC: str
    RPC_API_VERSION: str
    VERSION_ALIASES: dict[str, str]

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
        ) <= upgrade_levels.parse_version(cap or "1.0")

    def _require(
        self, version: str, method: str, ctxt=None, host: str | None = None
    ) -> None:
        if not self.can_send_version(version, ctxt, host):
            cap = self.version_cap
            if self._auto_cap is not None:
                cap = "auto: %s" % (self._auto_cap.known(host) or "1.0")
            raise exception.RPCVersionCapped(
                method=method, version=version, cap=cap
            )

    def _agent_version(self, ctxt, host: str | None) -> str:
        """The RPC version an agent reports (``auto`` asks it once)."""
        status = self._call_with(self._prepare(host), ctxt, "ping")
        return str(status.get("version") or "1.0")

    def _prepare(
        self,
        host: str | None,
        version: str = "1.0",
        transfer: bool = False,
        timeout: float | None = None,
    ) -> Prepared:
        """The call context: version, target agent, and timeouts.

        Transfers get the long ``[image_agent] transfer_timeout`` with
        heartbeats every half ``call_monitor_timeout``: a long download never
        times out while the agent lives, and its death is noticed in seconds.
        Every call is published with the mandatory flag: when no queue of
        an agent is there to take it, the broker says so at once.
        """
        options: dict[str, Any] = {
            "version": version,
            "transport_options": messaging.TransportOptions(
                at_least_once=True
            ),
        }
        if host:
            options["server"] = host
        monitor = None
        if transfer:
            client_options = self._conf[client_conf.GROUP]
            monitor = client_options.call_monitor_timeout
            if self._timeout:
                monitor = max(2, min(monitor, int(self._timeout)))
            options["timeout"] = client_options.transfer_timeout
            options["call_monitor_timeout"] = monitor
        if timeout is not None:
            options["timeout"] = timeout
        wait = options.get("timeout") or self._timeout
        if wait is None:
            wait = self._transport.conf.rpc_response_timeout
        target = "topic %s, %s" % (
            self.topic,
            "host %s" % host if host else "any host",
        )
        return Prepared(self.client.prepare(**options), target, wait, monitor)

    def _call(self, ctxt, method: str, host: str | None, **kwargs):
        return self._call_with(self._prepare(host), ctxt, method, **kwargs)

    @staticmethod
    def _call_with(prepared: Prepared, ctxt, method: str, **kwargs):
        """Send a call stamped with its deadline; type what comes back.

        A request the agent refused as expired did not run: it waited
        longer than its deadline, most often because sending it waited for
        the broker (``retry=None`` waits through an outage) while its
        deadline ran. It is sent once more, with a new deadline.
        """
        for attempt in (1, 2):
            try:
                return send(prepared, ctxt, method, kwargs)
            except exception.RequestExpired:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def send(prepared: Prepared, ctxt, method: str, kwargs: dict) -> Any:
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
    except kombu_exceptions.OperationalError as e:
        # oslo.messaging lets the RabbitMQ driver's own connection error
        # through when the broker refuses the caller (seen while it
        # restarted under load): a caller must not have to know kombu.
        raise exception.BrokerUnreachable(
            target=prepared.target, reason=e
        ) from e
    except messaging.MessagingTimeout as e:
        if isinstance(e, exception.ImageAgentException):
            raise
        raise exception.AgentTimeout(
            target=prepared.target,
            seconds=prepared.monitor or prepared.timeout,
            hint=prepared.hint,
        ) from e
