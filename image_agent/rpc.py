"""oslo.messaging plumbing shared by the agent and its callers.

Both sides use the same serializer: request contexts travel as dicts (token,
user, project, roles, service catalog, global request id) and results as
JSON-able values with ISO 8601 datetimes. A context the agent receives is
marked as having come over RPC (``context.mark_remote``): nothing in it is
trusted until ``identity`` asked Keystone about its token. Exceptions of
``image_agent.exception`` are raised again on the caller's side as the same
classes: by oslo.messaging when that module is in the transport's allowed
remote modules, else from the ``RemoteError`` it gives (``typed_error``),
so a caller's own transport works too.
"""

import datetime
import importlib
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging as messaging
from oslo_messaging.rpc import dispatcher

from image_agent import context as ia_context
from image_agent import deadline
from image_agent import exception
from image_agent.i18n import _

LOG = logging.getLogger(__name__)

ALLOWED_EXMODS = ['image_agent.exception']
# The exchange of the agents' topics, on both sides, whatever the caller's
# [DEFAULT] control_exchange is (Nova's is "nova", Cinder's "openstack").
EXCHANGE = 'image-agent'
# Options oslo.messaging reads from a transport's ConfigOpts but registers
# only on cfg.CONF, on import (18.x): (module, its list and group name).
_GLOBAL_ONLY_OPTS = (
    ('oslo_messaging._tracing.client', 'oslo_messaging_tracing'),
    ('oslo_messaging._metrics.client', 'oslo_messaging_metrics'),
)


def register_messaging_opts(conf: cfg.ConfigOpts) -> None:
    """Register on ``conf`` what oslo.messaging registers only on
    ``cfg.CONF`` (its tracing and metrics options): without them every
    call on a transport made from a private ConfigOpts fails with
    ``NoSuchOptError``."""
    for module_name, name in _GLOBAL_ONLY_OPTS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # another oslo.messaging: nothing to do
            continue
        conf.register_opts(getattr(module, name), group=name)


def typed_error(error: messaging.RemoteError) -> Exception:
    """The ``image_agent.exception`` error an agent raised, as that class.

    A transport made without ``ALLOWED_EXMODS`` (a consumer's own) delivers
    an agent's error as ``RemoteError`` naming its class: the same class is
    rebuilt with the agent's message (its other parameters do not cross).
    Any other remote error is returned unchanged.
    """
    cls = getattr(exception, error.exc_type or '', None)
    if not (
        isinstance(cls, type)
        and issubclass(cls, exception.ImageAgentException)
    ):
        return error
    return cls(error.value or error.exc_type)


def to_primitive(value: Any) -> Any:
    """``value`` as JSON-able data: datetimes in ISO 8601, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): to_primitive(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_primitive(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return str(value)


def context_to_dict(ctxt: Any) -> dict[str, Any]:
    """Any oslo.context context (or a dict) as the dict that travels."""
    if isinstance(ctxt, dict):
        return dict(ctxt)
    values = ctxt.to_dict()
    values.setdefault(
        'service_catalog', getattr(ctxt, 'service_catalog', None) or []
    )
    return values


_CONTEXT_STRINGS = (
    'user',
    'project_id',
    'project',
    'domain',
    'user_domain',
    'project_domain',
    'user_name',
    'project_name',
    'system_scope',
)
# Values sent to Glance as HTTP headers.
_CONTEXT_HEADERS = ('auth_token', 'request_id', 'global_request_id')
MAX_TOKEN_LENGTH = 8192
MAX_ID_LENGTH = 255


def _header_safe(value: Any, limit: int) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= limit
        # Visible ASCII only ('!' to '~'), without a loop over every
        # character of a token on every call.
        and value.isascii()
        and value.isprintable()
        and ' ' not in value
    )


def _invalid_context(reason: str) -> exception.InvalidInput:
    return exception.InvalidInput(
        reason=_('malformed request context: %s') % reason
    )


def check_context_dict(values: Any) -> None:
    """Refuse a context the agent could not act on safely.

    It arrives from any caller on the bus; what becomes an HTTP header must
    be one, and the catalog must have the shape it is read with.
    """
    if not isinstance(values, dict):
        raise _invalid_context(_('not a dict'))
    for key in _CONTEXT_HEADERS:
        value = values.get(key)
        limit = MAX_TOKEN_LENGTH if key == 'auth_token' else MAX_ID_LENGTH
        if value is not None and not _header_safe(value, limit):
            raise _invalid_context(
                _('%s must be printable ASCII without spaces') % key
            )
    for key in _CONTEXT_STRINGS:
        value = values.get(key)
        if value is not None and not (
            isinstance(value, str) and len(value) <= MAX_ID_LENGTH
        ):
            raise _invalid_context(_('%s must be a short string') % key)
    roles = values.get('roles')
    if roles is not None and not (
        isinstance(roles, list) and all(isinstance(r, str) for r in roles)
    ):
        raise _invalid_context(_('roles must be a list of strings'))
    for key in ('is_admin', 'read_only', 'show_deleted', 'is_admin_project'):
        if values.get(key) is not None and not isinstance(values[key], bool):
            raise _invalid_context(_('%s must be a boolean') % key)
    _check_catalog(values.get('service_catalog'))


def _check_catalog(catalog: Any) -> None:
    if catalog is None:
        return
    if not isinstance(catalog, list):
        raise _invalid_context(_('service_catalog must be a list'))
    for entry in catalog:
        if not isinstance(entry, dict):
            raise _invalid_context(_('catalog entries must be dicts'))
        endpoints = entry.get('endpoints', [])
        if not isinstance(endpoints, list) or not all(
            isinstance(e, dict) for e in endpoints
        ):
            raise _invalid_context(_('endpoints must be a list of dicts'))


class RequestContextSerializer(messaging.Serializer):
    """Contexts as dicts on the wire, RequestContext objects at the ends."""

    def serialize_entity(self, ctxt, entity):
        return to_primitive(entity)

    def deserialize_entity(self, ctxt, entity):
        return entity

    def serialize_context(self, ctxt):
        return context_to_dict(ctxt)

    def deserialize_context(self, ctxt):
        check_context_dict(ctxt)
        values = dict(ctxt)
        limit = deadline.parse(values)
        context = ia_context.mark_remote(
            ia_context.RequestContext.from_dict(values)
        )
        # Read by the endpoint before it starts the work (deadline.check).
        context.deadline = limit
        return context


def get_transport(
    conf: cfg.ConfigOpts, url: str | None = None
) -> messaging.Transport:
    """An RPC transport that rebuilds this project's exceptions."""
    register_messaging_opts(conf)
    return messaging.get_rpc_transport(
        conf, url=url, allowed_remote_exmods=ALLOWED_EXMODS
    )


def get_server(
    transport: messaging.Transport,
    topic: str,
    host: str,
    endpoints: list,
    exchange: str | None = EXCHANGE,
) -> messaging.MessageHandlingServer:
    """An RPC server on ``topic`` and ``topic.host`` of ``exchange``
    (None: the transport's ``control_exchange``, where agents before the
    exchange of their own listened)."""
    target = messaging.Target(exchange=exchange, topic=topic, server=host)
    return messaging.get_rpc_server(
        transport,
        target,
        endpoints,
        serializer=RequestContextSerializer(),
        access_policy=dispatcher.DefaultRPCAccessPolicy,
    )


def get_client(
    transport: messaging.Transport,
    topic: str,
    version: str,
    version_cap: str | None = None,
    timeout: int | None = None,
    retry: int | None = None,
) -> messaging.RPCClient:
    """An RPC client for ``topic`` of the agents' exchange, sending
    ``version`` by default."""
    target = messaging.Target(exchange=EXCHANGE, topic=topic, version=version)
    return messaging.get_rpc_client(
        transport,
        target,
        version_cap=version_cap,
        serializer=RequestContextSerializer(),
        timeout=timeout,
        retry=retry,
    )


def delete_server_queues(
    transport: messaging.Transport, topic: str, host: str
) -> dict[str, int]:
    """Remove the queues of a stopped server; ``{queue: requests dropped}``.

    Without them, a request to this agent finds no queue: the caller, who
    publishes with the mandatory flag, is told at once that nobody listens,
    and nothing waits in the broker to run when the agent comes back. A
    queue another agent still consumes from (the shared topic, or the same
    host name twice) is left alone. Only RabbitMQ has queues to remove.
    """
    driver = getattr(transport, '_driver', None)
    get_connection = getattr(driver, '_get_connection', None)
    if get_connection is None:
        return {}
    removed = {}
    try:
        # A connection of its own: the pooled ones have a heartbeat thread
        # reading from their socket, which would race with this.
        with get_connection('send') as pooled:
            broker = pooled.connection.connection.clone()
        with broker:
            channel = broker.channel()
            for queue in ('%s.%s' % (topic, host), topic):
                try:
                    removed[queue] = channel.queue_delete(
                        queue, if_unused=True
                    )
                except Exception as e:  # noqa: BLE001 - in use, or gone
                    LOG.debug('Queue %s kept: %s', queue, e)
                    break  # a refused delete closes the channel
    except Exception as e:  # noqa: BLE001 - the broker may be away
        LOG.warning('Could not remove the queues of %s: %s', host, e)
    return removed
