"""Who may do what: every authorization rule of the agent, in one place.

A call over RPC first needs a token Keystone accepts (``identity``); its
context then carries the user, project and roles Keystone gave, not those
the request claimed. What Glance decides (showing, downloading, changing an
image) Glance decides, with the caller's own token. This module decides
what only the agent can: the calls that act on many hosts or on the cache,
what ``ping`` reveals, and when the agent's ``[glance]`` service
credentials may act for a caller. The roles are ``[policy]`` options.

* ``PRECACHE`` (``precache_roles``): ``precache``.
* ``CACHE`` (``cache_roles``): ``list_cache``, ``evict``.
* ``STATUS`` (``status_roles``): the running transfers in ``ping``'s answer.
* ``LOCATIONS`` (``location_roles``): ``get_location`` through the location
  API with the service credentials; ``add_location`` of a URL that is not
  http(s) (with the caller's own token).

In-process use of the library (a context made by the caller's own
keystonemiddleware) is not governed here: the calling service applied its
own policy, and the library behaves as Cinder's does.
"""

import urllib.parse

from image_agent import conf
from image_agent import context as context_mod
from image_agent import exception
from image_agent.i18n import _

CONF = conf.CONF

PRECACHE = 'precache'
CACHE = 'cache'
STATUS = 'status'
LOCATIONS = 'locations'

# Rule -> (option of [policy], what it allows, for messages).
_RULES = {
    PRECACHE: ('precache_roles', _('Pre-caching images')),
    CACHE: ('cache_roles', _('Listing or evicting the image cache')),
    STATUS: ('status_roles', _('Seeing the running transfers')),
    LOCATIONS: (
        'location_roles',
        _(
            'Reading locations with the service credentials or adding a '
            'location that is not http(s)'
        ),
    ),
}

# Location URLs any caller may add, with its own token (Glance checks them).
_PLAIN_SCHEMES = ('http', 'https')


def _needed(rule: str) -> list[str]:
    option, _ = _RULES[rule]
    return list(getattr(CONF.policy, option))


def allowed(context, rule: str) -> bool:
    """Whether ``context`` may do what ``rule`` guards."""
    if not context_mod.is_remote(context):
        return True
    held = set(getattr(context, 'roles', None) or ())
    return bool(held.intersection(_needed(rule)))


def enforce(context, rule: str) -> None:
    """Raise ``PolicyNotAuthorized`` unless ``context`` may do ``rule``."""
    if not allowed(context, rule):
        raise exception.PolicyNotAuthorized(
            action=_RULES[rule][1],
            roles=', '.join(_needed(rule)) or _('(none)'),
            held=', '.join(sorted(getattr(context, 'roles', None) or ()))
            or _('no role'),
        )


def may_use_service_credentials(context) -> bool:
    """Whether the location API may be called for ``context`` with the
    agent's service credentials (in-process: as the library always did)."""
    return allowed(context, LOCATIONS)


def check_location_url(context, url: str) -> None:
    """Refuse a location a caller over RPC may not add.

    http(s) locations are Glance's to judge with the caller's own token;
    any other scheme (``rbd://``, ``file://``, ``cinder://``...) points at
    storage the deployment owns, so it needs the location roles.
    """
    try:
        scheme = urllib.parse.urlsplit(url.strip()).scheme.lower()
    except ValueError as e:  # e.g. an unclosed IPv6 bracket: 'http://[::1'
        raise exception.InvalidInput(
            reason=_('url is not a valid URL: %s') % e
        ) from e
    if scheme not in _PLAIN_SCHEMES:
        enforce(context, LOCATIONS)


def acts_with_own_token_only(context) -> bool:
    """Whether every Glance call for ``context`` must carry the caller's
    own token (calls over RPC), never the agent's credentials."""
    return context_mod.is_remote(context)
