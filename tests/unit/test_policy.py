"""Who may do what over RPC: roles from the validated token, defaults as
strict as Glance's own policy; in-process contexts are not governed."""

import pytest

from image_agent import context as context_mod
from image_agent import exception
from image_agent import policy

RULES = [policy.PRECACHE, policy.CACHE, policy.STATUS, policy.LOCATIONS]


def _ctx(roles, remote=True):
    ctxt = context_mod.RequestContext(roles=roles, auth_token='t')
    return context_mod.mark_remote(ctxt) if remote else ctxt


@pytest.mark.parametrize('rule', RULES)
def test_a_plain_member_may_do_none_of_them(rule):
    assert not policy.allowed(_ctx(['member', 'reader']), rule)
    with pytest.raises(exception.PolicyNotAuthorized, match='member'):
        policy.enforce(_ctx(['member', 'reader']), rule)


@pytest.mark.parametrize('rule', RULES)
def test_admin_may_do_all_of_them(rule):
    assert policy.allowed(_ctx(['admin']), rule)


def test_service_role_defaults():
    service = _ctx(['service'])
    assert policy.allowed(service, policy.LOCATIONS)
    assert policy.allowed(service, policy.STATUS)
    assert not policy.allowed(service, policy.PRECACHE)
    assert not policy.allowed(service, policy.CACHE)


def test_roles_come_from_the_options(config):
    config.config(group='policy', precache_roles=['image-cacher'])
    assert policy.allowed(_ctx(['image-cacher']), policy.PRECACHE)
    assert not policy.allowed(_ctx(['admin']), policy.PRECACHE)


def test_an_empty_role_list_allows_nobody(config):
    config.config(group='policy', cache_roles=[])
    with pytest.raises(exception.PolicyNotAuthorized, match='none'):
        policy.enforce(_ctx(['admin']), policy.CACHE)


@pytest.mark.parametrize('rule', RULES)
def test_in_process_contexts_are_not_governed(rule):
    assert policy.allowed(_ctx(['member'], remote=False), rule)


@pytest.mark.parametrize('url', ['http://x/y', 'https://x/y', 'HTTPS://X/y'])
def test_http_locations_are_glances_to_judge(url):
    policy.check_location_url(_ctx(['member']), url)


@pytest.mark.parametrize(
    'url', ['rbd://a/b/c/d', 'file:///etc/passwd', 'cinder://v', 'x', '']
)
def test_other_locations_need_the_location_roles(url):
    with pytest.raises(exception.PolicyNotAuthorized):
        policy.check_location_url(_ctx(['member']), url)
    policy.check_location_url(_ctx(['service']), url)


@pytest.mark.parametrize('url', ['http://[::1', 'https://[fe80::1/x'])
def test_a_url_that_does_not_parse_is_invalid_input(url):
    with pytest.raises(exception.InvalidInput, match='not a valid URL'):
        policy.check_location_url(_ctx(['member']), url)
