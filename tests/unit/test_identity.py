"""Who calls: Keystone's answer about a token, kept briefly, never trusted
from the request."""

import datetime

from oslo_utils import timeutils
import pytest

from image_agent import context as context_mod
from image_agent import exception
from image_agent import identity
from tests.unit import conftest

TOKEN_BODY = {
    'expires_at': '2099-01-01T00:00:00.000000Z',
    'user': {'id': 'u1', 'name': 'alice', 'domain': {'id': 'default'}},
    'project': {'id': 'p1', 'name': 'demo', 'domain': {'id': 'default'}},
    'roles': [{'name': 'member'}, {'name': 'reader'}, {'id': 'x'}],
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_identity_from_a_keystone_token_body():
    ident = identity.Identity.from_token(TOKEN_BODY)
    assert ident.user_id == 'u1'
    assert ident.project_id == 'p1'
    assert ident.roles == ('member', 'reader')
    assert ident.expires_at.year == 2099


def test_answers_are_kept_for_the_cache_time(keystone, config):
    config.config(group='policy', token_cache_time=60)
    clock = Clock()
    validator = keystone.validator(clock=clock)
    for _ in range(3):
        validator.validate(conftest.USER_TOKEN)
    assert keystone.asked == 1
    clock.now += 61
    validator.validate(conftest.USER_TOKEN)
    assert keystone.asked == 2


def test_unknown_tokens_are_remembered_too(keystone):
    validator = keystone.validator()
    for _ in range(3):
        with pytest.raises(exception.NotAuthorized):
            validator.validate('anything')
    assert keystone.asked == 1


def test_an_answer_never_outlives_its_token(keystone, config):
    config.config(group='policy', token_cache_time=3600)
    clock = Clock()
    soon = timeutils.utcnow(with_timezone=True) + datetime.timedelta(
        seconds=10
    )
    keystone.identities['short'] = identity.Identity(
        **dict(vars(keystone.identities[conftest.USER_TOKEN]), expires_at=soon)
    )
    validator = keystone.validator(clock=clock)
    validator.validate('short')
    clock.now += 11
    validator.validate('short')
    assert keystone.asked == 2


def test_zero_cache_time_asks_every_time(keystone, config):
    config.config(group='policy', token_cache_time=0)
    validator = keystone.validator()
    validator.validate(conftest.USER_TOKEN)
    validator.validate(conftest.USER_TOKEN)
    assert keystone.asked == 2


def test_the_cache_is_bounded_and_keyed_by_a_hash(keystone):
    validator = keystone.validator(max_entries=3)
    for n in range(10):
        with pytest.raises(exception.NotAuthorized):
            validator.validate('token-%d' % n)
    validator.validate(conftest.USER_TOKEN)
    assert len(validator._answers) == 3
    assert all(
        conftest.USER_TOKEN not in key and len(key) == 64
        for key in validator._answers
    )


def test_keystones_answer_replaces_the_requests_claims(keystone, ctx):
    values = dict(
        ctx.to_dict(),
        project_id='someone-else',
        user_id='root',
        roles=['admin'],
        is_admin=True,
    )
    claimed = context_mod.RequestContext.from_dict(values)
    got = identity.authenticate(claimed, keystone.validator())
    assert got.project_id == conftest.PROJECT_ID
    assert got.user_id == conftest.USER_ID
    assert got.roles == ['member', 'reader']
    assert got.is_admin is False
    assert got.auth_token == conftest.USER_TOKEN
    assert got.global_request_id == ctx.global_request_id
    assert context_mod.is_remote(got)


def test_no_token_is_refused_without_asking(keystone, anon_ctx):
    with pytest.raises(exception.NotAuthorized, match='token'):
        identity.authenticate(anon_ctx, keystone.validator())
    assert keystone.asked == 0


def test_noauth_takes_the_claims_and_marks_the_context(
    keystone, anon_ctx, config
):
    config.config(auth_strategy='noauth')
    got = identity.authenticate(anon_ctx, keystone.validator())
    assert got.roles == anon_ctx.roles
    assert context_mod.is_remote(got)
    assert keystone.asked == 0
