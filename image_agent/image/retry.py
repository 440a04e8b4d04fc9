"""When a failed Glance request is tried again, and after how long.

A request that is not idempotent (it creates something) is retried only when
it surely never reached a server: the connection was refused or could not be
made, or the server answered 503. After a read timeout or a dropped response
the server may have acted, and a retry could make a second image.
"""

from collections.abc import Callable
import random
import time

from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ks_exc
import requests
import urllib3

# (controller, method) pairs whose repetition could create a duplicate.
NON_IDEMPOTENT = frozenset(
    {
        ('images', 'create'),
        ('images', 'upload'),
        ('images', 'stage'),
        ('images', 'image_import'),
        ('images', 'add_location'),
        ('images', 'add_image_location'),
        ('image_members', 'create'),
    }
)

CONNECTION_ERRORS = (
    glance_exc.InvalidEndpoint,
    glance_exc.CommunicationError,
    # What python-glanceclient does not wrap: an answer that breaks off in
    # its body reaches the wrapper as keystoneauth's or requests' own error.
    ks_exc.ConnectionError,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
)
# Failures that say nothing about the request itself: worth another try
# when repeating the request is safe.
TRANSIENT_ERRORS = (glance_exc.HTTPServiceUnavailable, *CONNECTION_ERRORS)

# Failures that happen before a single byte of the request left this host.
_NOT_SENT = (
    ConnectionRefusedError,
    requests.exceptions.ConnectTimeout,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ConnectTimeoutError,
)


def _causes(error: BaseException):
    """The error, what it wraps, and what those were raised from."""
    seen = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend([current.__cause__, current.__context__])
        pending.append(getattr(current, 'reason', None))
        pending.extend(a for a in current.args if isinstance(a, BaseException))


def request_never_sent(error: BaseException) -> bool:
    """True when the request surely did not reach a server."""
    return any(isinstance(cause, _NOT_SENT) for cause in _causes(error))


def is_retriable(error: BaseException, idempotent: bool) -> bool:
    if isinstance(error, glance_exc.HTTPServiceUnavailable):
        return True
    if isinstance(error, CONNECTION_ERRORS):
        return idempotent or request_never_sent(error)
    return False


class Backoff:
    """Exponential back-off with full jitter.

    ``delay(round_)`` is drawn from [0, min(max, base * 2**(round_ - 1))];
    round 0 (a server not yet tried in this call) waits nothing.
    """

    def __init__(
        self,
        base: float,
        maximum: float,
        sleep: Callable[[float], None] | None = None,
        rand: Callable[[float, float], float] | None = None,
    ) -> None:
        self.base = base
        self.maximum = maximum
        # Looked up at call time, so that tests can patch the modules.
        self._sleep = sleep or (lambda seconds: time.sleep(seconds))
        self._rand = rand or (lambda low, high: random.uniform(low, high))

    def delay(self, round_: int) -> float:
        if round_ <= 0 or self.base <= 0:
            return 0.0
        ceiling = min(self.maximum, self.base * 2 ** (round_ - 1))
        return self._rand(0, ceiling)

    def wait(self, round_: int) -> float:
        seconds = self.delay(round_)
        if seconds > 0:
            self._sleep(seconds)
        return seconds
