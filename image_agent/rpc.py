"""oslo.messaging plumbing shared by the agent and its callers.

Both sides use the same serializer: request contexts travel as dicts (token,
user, project, roles, service catalog, global request id) and results as
JSON-able values with ISO 8601 datetimes. Exceptions of
``image_agent.exception`` are raised again on the caller's side as the same
classes, because that module is in the transport's allowed remote modules.
"""

import datetime
from typing import Any

from oslo_config import cfg
import oslo_messaging as messaging
from oslo_messaging.rpc import dispatcher

from image_agent import context as ia_context

ALLOWED_EXMODS = ['image_agent.exception']


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


class RequestContextSerializer(messaging.Serializer):
    """Contexts as dicts on the wire, RequestContext objects at the ends."""

    def serialize_entity(self, ctxt, entity):
        return to_primitive(entity)

    def deserialize_entity(self, ctxt, entity):
        return entity

    def serialize_context(self, ctxt):
        return context_to_dict(ctxt)

    def deserialize_context(self, ctxt):
        return ia_context.RequestContext.from_dict(ctxt)


def get_transport(
    conf: cfg.ConfigOpts, url: str | None = None
) -> messaging.Transport:
    """An RPC transport that rebuilds this project's exceptions."""
    return messaging.get_rpc_transport(
        conf, url=url, allowed_remote_exmods=ALLOWED_EXMODS
    )


def get_server(
    transport: messaging.Transport, topic: str, host: str, endpoints: list
) -> messaging.MessageHandlingServer:
    """An RPC server on ``topic`` and ``topic.host``."""
    target = messaging.Target(topic=topic, server=host)
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
    """An RPC client for ``topic``, sending ``version`` by default."""
    target = messaging.Target(topic=topic, version=version)
    return messaging.get_rpc_client(
        transport,
        target,
        version_cap=version_cap,
        serializer=RequestContextSerializer(),
        timeout=timeout,
        retry=retry,
    )
