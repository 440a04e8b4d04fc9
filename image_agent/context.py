"""The request context: who calls, with which token and catalog."""

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

    def elevated(self) -> 'RequestContext':
        """A copy with the admin flag set (the token is kept)."""
        copy = self.from_dict(self.to_dict())
        copy.is_admin = True
        if 'admin' not in copy.roles:
            copy.roles = copy.roles + ['admin']
        return copy


def get_admin_context() -> RequestContext:
    """A context without a token, for the agent's own work."""
    return RequestContext(is_admin=True, overwrite=False)
