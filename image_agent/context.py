"""The request context: who calls, with which token and catalog.

A context made in the caller's own process (Cinder importing
``image_agent.image.glance``) is trusted: keystonemiddleware built it. A
context that arrived over RPC is not: the RPC serializer marks it
(``over_rpc``), the agent replaces its claims with what Keystone says about
its token, and the library applies the stricter rules of ``policy`` and
``image.servers`` to it. The mark never travels: a caller cannot set it.
"""

from typing import Any

from oslo_context import context

# Only the catalog entries the agent needs travel with a context.
_CATALOG_TYPES = ('image', 'identity')


class RequestContext(context.RequestContext):
    """oslo.context's context plus the caller's service catalog.

    The catalog is kept in whatever shape the caller had it (keystonemiddleware
    gives the old v2 shape, a token body the v3 one); only image and identity
    entries are kept, to keep RPC messages small.
    """

    FROM_DICT_EXTRA_KEYS = ['service_catalog']

    def __init__(
        self, service_catalog: list | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        # Set by the RPC serializer only; never read from a dict.
        self.over_rpc = False
        self.service_catalog = [
            entry
            for entry in (service_catalog or [])
            if entry.get('type') in _CATALOG_TYPES
        ]

    def to_dict(self) -> dict[str, Any]:
        values = super().to_dict()
        values.update(
            {
                'user_name': self.user_name,
                'project_name': self.project_name,
                'service_catalog': self.service_catalog,
            }
        )
        return values

    def get_logging_values(self) -> dict[str, Any]:
        values = super().get_logging_values()
        values.pop('service_catalog', None)
        return values


def is_remote(context: Any) -> bool:
    """Whether ``context`` arrived over RPC (and so proves nothing).

    Contexts of other projects (Cinder's own) have no mark: they were made
    in-process, behind keystonemiddleware.
    """
    return bool(getattr(context, 'over_rpc', False))


def mark_remote(context: 'RequestContext') -> 'RequestContext':
    """Mark a context received over RPC; returns it."""
    context.over_rpc = True
    return context
