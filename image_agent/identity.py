"""Who calls: a caller's token as Keystone describes it.

Anything on the bus can send a request with any token string and any
claims. Before the agent acts on a call it asks Keystone (with its own
service credentials) what the token is; the user, project and roles
Keystone gives replace those of the request in the context the agent uses.
Answers are kept ``[policy] token_cache_time`` seconds, keyed by a hash of
the token (as keystonemiddleware does), in a bounded cache. Tokens are
never logged.

With ``auth_strategy = noauth`` there is no Keystone to ask: the request's
claims are taken as they come, which trusts everyone on the bus.
"""

import collections
from collections.abc import Callable
import dataclasses
import datetime
import hashlib
import threading
import time
from typing import Any

from oslo_log import log as logging
from oslo_utils import timeutils

from image_agent import conf
from image_agent import context as context_mod
from image_agent import exception
from image_agent.i18n import _
from image_agent.image import auth

LOG = logging.getLogger(__name__)
CONF = conf.CONF

# Tokens whose answer is kept at once; the oldest answers go first.
MAX_CACHED_TOKENS = 4096


@dataclasses.dataclass(frozen=True)
class Identity:
    """What Keystone says a token is."""

    user_id: str | None
    user_name: str | None
    user_domain_id: str | None
    project_id: str | None
    project_name: str | None
    project_domain_id: str | None
    domain_id: str | None
    system_scope: str | None
    roles: tuple[str, ...]
    expires_at: datetime.datetime | None

    @classmethod
    def from_token(cls, body: dict[str, Any]) -> 'Identity':
        user = body.get('user') or {}
        project = body.get('project') or {}
        domain = body.get('domain') or {}
        system = body.get('system') or {}
        expires = body.get('expires_at')
        return cls(
            user_id=user.get('id'),
            user_name=user.get('name'),
            user_domain_id=(user.get('domain') or {}).get('id'),
            project_id=project.get('id'),
            project_name=project.get('name'),
            project_domain_id=(project.get('domain') or {}).get('id'),
            domain_id=domain.get('id'),
            system_scope='all' if system.get('all') else None,
            roles=tuple(
                sorted(
                    {r['name'] for r in body.get('roles') or () if 'name' in r}
                )
            ),
            expires_at=timeutils.parse_isotime(expires) if expires else None,
        )

    def seconds_left(self) -> float:
        if self.expires_at is None:
            return float('inf')
        return (
            self.expires_at - timeutils.utcnow(with_timezone=True)
        ).total_seconds()


def keystone_identity(token: str) -> Identity:
    """Ask Keystone about ``token`` (NotAuthorized when it is unknown)."""
    return Identity.from_token(auth.token_info(token))


class TokenValidator:
    """Keystone's answers about tokens, kept briefly and in bounded number.

    Unknown tokens are remembered too, so that a caller repeating a bad
    token does not make the agent ask Keystone each time.
    """

    def __init__(
        self,
        ask: Callable[[str], Identity] = keystone_identity,
        max_entries: int = MAX_CACHED_TOKENS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ask = ask
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        # sha256 of the token -> (monotonic expiry, Identity or None).
        self._answers: collections.OrderedDict[
            str, tuple[float, Identity | None]
        ] = collections.OrderedDict()

    def validate(self, token: str) -> Identity:
        """The identity of ``token``; ``NotAuthorized`` if Keystone has
        none."""
        key = hashlib.sha256(token.encode('utf-8')).hexdigest()
        now = self._clock()
        with self._lock:
            cached = self._answers.get(key)
            if cached is not None and cached[0] > now:
                self._answers.move_to_end(key)
                return self._answer(cached[1])
        try:
            identity = self._ask(token)
        except exception.NotAuthorized:
            self._keep(key, now + CONF.policy.token_cache_time, None)
            raise
        keep = min(CONF.policy.token_cache_time, identity.seconds_left())
        self._keep(key, now + keep, identity)
        return identity

    @staticmethod
    def _answer(identity: Identity | None) -> Identity:
        if identity is None:
            raise exception.NotAuthorized(
                _('Keystone does not accept the caller\'s token')
            )
        return identity

    def _keep(self, key: str, until: float, identity: Identity | None) -> None:
        if until <= self._clock():
            return
        with self._lock:
            self._answers[key] = (until, identity)
            self._answers.move_to_end(key)
            while len(self._answers) > self._max:
                self._answers.popitem(last=False)


def authenticate(context, validator: TokenValidator):
    """The context the agent acts in for a call received over RPC.

    keystone: the caller's token, with the user, project and roles Keystone
    gives for it (``NotAuthorized`` without a token or with one Keystone
    does not know). noauth: the request's claims as they are. Either way
    the context is marked as having come over RPC.
    """
    if CONF.auth_strategy == 'noauth':
        return context_mod.mark_remote(
            context_mod.RequestContext.from_dict(_as_dict(context))
        )
    token = getattr(context, 'auth_token', None)
    if not token:
        raise exception.NotAuthorized(
            _('image-agent calls need the caller\'s token')
        )
    identity = validator.validate(token)
    return context_mod.mark_remote(
        context_mod.RequestContext(
            auth_token=token,
            user_id=identity.user_id,
            user_name=identity.user_name,
            user_domain_id=identity.user_domain_id,
            project_id=identity.project_id,
            project_name=identity.project_name,
            project_domain_id=identity.project_domain_id,
            domain_id=identity.domain_id,
            system_scope=identity.system_scope,
            roles=list(identity.roles),
            is_admin='admin' in identity.roles,
            service_catalog=getattr(context, 'service_catalog', None),
            request_id=getattr(context, 'request_id', None),
            global_request_id=getattr(context, 'global_request_id', None),
            overwrite=False,
        )
    )


def _as_dict(context) -> dict[str, Any]:
    values = context.to_dict()
    values['service_catalog'] = getattr(context, 'service_catalog', None) or []
    return values
