"""When a failed request is tried again, and how long it waits first."""

from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ks_exc
import pytest
import requests
import urllib3

from image_agent.image import retry
from tests.unit.conftest import connect_timeout
from tests.unit.conftest import connection_refused
from tests.unit.conftest import connection_reset
from tests.unit.conftest import read_timeout
from tests.unit.conftest import remote_disconnected

NEVER_SENT = {
    'refused': connection_refused,
    'connect-timeout': connect_timeout,
}
MAYBE_SENT = {
    'read-timeout': read_timeout,
    'reset': connection_reset,
    'remote-disconnected': remote_disconnected,
    'bare-communication-error': lambda: glance_exc.CommunicationError('x'),
}


# -- request_never_sent -------------------------------------------------------


@pytest.mark.parametrize('make', NEVER_SENT.values(), ids=NEVER_SENT.keys())
def test_request_never_sent_when_the_connection_was_not_made(make):
    assert retry.request_never_sent(make()) is True


@pytest.mark.parametrize('make', MAYBE_SENT.values(), ids=MAYBE_SENT.keys())
def test_request_may_have_been_sent_after_a_connection_existed(make):
    assert retry.request_never_sent(make()) is False


def test_request_never_sent_follows_explicit_causes():
    error = glance_exc.CommunicationError('x')
    error.__cause__ = ConnectionRefusedError()
    assert retry.request_never_sent(error) is True


def test_request_never_sent_survives_a_cyclic_chain():
    first = glance_exc.CommunicationError('a')
    second = glance_exc.CommunicationError('b')
    first.__context__ = second
    second.__context__ = first
    assert retry.request_never_sent(first) is False


# -- is_retriable -------------------------------------------------------------


@pytest.mark.parametrize('idempotent', [True, False])
def test_503_is_retriable_whatever_the_request(idempotent):
    error = glance_exc.HTTPServiceUnavailable('busy')
    assert retry.is_retriable(error, idempotent) is True


@pytest.mark.parametrize(
    'make',
    {**NEVER_SENT, **MAYBE_SENT}.values(),
    ids=[*NEVER_SENT, *MAYBE_SENT],
)
def test_connection_errors_are_retriable_for_idempotent_requests(make):
    assert retry.is_retriable(make(), idempotent=True) is True


@pytest.mark.parametrize('make', NEVER_SENT.values(), ids=NEVER_SENT.keys())
def test_unsent_requests_are_retriable_even_when_not_idempotent(make):
    assert retry.is_retriable(make(), idempotent=False) is True


@pytest.mark.parametrize('make', MAYBE_SENT.values(), ids=MAYBE_SENT.keys())
def test_maybe_sent_requests_are_not_retried_when_not_idempotent(make):
    assert retry.is_retriable(make(), idempotent=False) is False


@pytest.mark.parametrize(
    'error',
    [
        glance_exc.HTTPBadRequest('bad'),
        glance_exc.HTTPUnauthorized('who'),
        glance_exc.HTTPForbidden('no'),
        glance_exc.HTTPNotFound('gone'),
        glance_exc.HTTPConflict('busy'),
        glance_exc.HTTPOverLimit('quota'),
        glance_exc.HTTPInternalServerError('oops'),
        ValueError('not a connection problem'),
    ],
    ids=lambda e: type(e).__name__,
)
def test_other_errors_are_not_retriable(error):
    assert retry.is_retriable(error, idempotent=True) is False


@pytest.mark.parametrize(
    ('controller', 'method'),
    [
        ('images', 'create'),
        ('images', 'upload'),
        ('images', 'add_location'),
        ('images', 'add_image_location'),
        ('images', 'image_import'),
        ('images', 'stage'),
        ('image_members', 'create'),
    ],
)
def test_requests_that_create_something_are_not_idempotent(controller, method):
    assert (controller, method) in retry.NON_IDEMPOTENT


@pytest.mark.parametrize(
    ('controller', 'method'),
    [
        ('images', 'get'),
        ('images', 'list'),
        ('images', 'update'),
        ('images', 'delete'),
        ('images', 'data'),
        ('image_members', 'list'),
    ],
)
def test_reads_updates_and_deletes_are_idempotent(controller, method):
    assert (controller, method) not in retry.NON_IDEMPOTENT


# -- Backoff ------------------------------------------------------------------


def _top_of_range(low, high):
    return high


@pytest.mark.parametrize(
    ('round_', 'ceiling'),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 10.0), (20, 10.0)],
)
def test_backoff_ceiling_doubles_per_round_up_to_the_maximum(round_, ceiling):
    backoff = retry.Backoff(0.5, 10.0, rand=_top_of_range)
    assert backoff.delay(round_) == ceiling


def test_backoff_jitter_is_drawn_from_zero_to_the_ceiling():
    ranges = []

    def rand(low, high):
        ranges.append((low, high))
        return low

    backoff = retry.Backoff(0.25, 1.0, rand=rand)
    assert [backoff.delay(n) for n in (1, 2, 3, 4)] == [0, 0, 0, 0]
    assert ranges == [(0, 0.25), (0, 0.5), (0, 1.0), (0, 1.0)]


@pytest.mark.parametrize('round_', [1, 2, 3, 7])
def test_backoff_real_jitter_stays_within_bounds(round_):
    backoff = retry.Backoff(0.5, 3.0)
    ceiling = min(3.0, 0.5 * 2 ** (round_ - 1))
    delays = [backoff.delay(round_) for _ in range(200)]
    assert all(0 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1


def test_backoff_round_zero_waits_nothing():
    calls = []
    backoff = retry.Backoff(
        0.5, 10.0, sleep=calls.append, rand=lambda *a: calls.append(a) or 1
    )
    assert backoff.wait(0) == 0.0
    assert calls == []


def test_backoff_with_zero_base_never_sleeps():
    slept = []
    backoff = retry.Backoff(0, 10.0, sleep=slept.append, rand=_top_of_range)
    assert [backoff.wait(n) for n in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert slept == []


def test_backoff_wait_sleeps_the_drawn_delay():
    slept = []
    backoff = retry.Backoff(0.5, 10.0, sleep=slept.append, rand=_top_of_range)
    assert backoff.wait(3) == 2.0
    assert slept == [2.0]


@pytest.mark.parametrize(
    'error',
    [
        requests.exceptions.ChunkedEncodingError('body cut'),
        ks_exc.UnknownConnectionError('Unexpected exception', None),
        urllib3.exceptions.ProtocolError('Connection broken'),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_answer_cut_mid_body_is_retried_only_when_idempotent(error):
    assert retry.is_retriable(error, idempotent=True)
    assert not retry.is_retriable(error, idempotent=False)
