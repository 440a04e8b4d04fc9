"""When a broken download is resumed, on which server, and when it stops.

The policy of ``fetch.HttpSource``: failures without progress in between
are bounded by ``[glance] num_retries``. A stream that moved forward by at
least ``MIN_PROGRESS`` bytes (a sixteenth of a smaller image) before it
broke starts a new count, so a long download survives one failure per
server restart, while a dead deployment fails in a few attempts and a
server that trickles a few bytes and breaks off fails as fast. However
much each attempt moves, a download resumes at most ``[glance]
download_max_resumes`` times. Each attempt asks another server than the
one that just failed, after a backoff when a server is asked again.
"""

from collections.abc import Callable

from image_agent import conf
from image_agent import exception
from image_agent.i18n import _
from image_agent.image import retry

CONF = conf.CONF

# New bytes an attempt must bring for its failure to start a new count of
# num_retries (for a small image, a sixteenth of it): less is no progress,
# as from a server that trickles a few bytes and breaks off.
MIN_PROGRESS = 1024 * 1024


def min_progress(total: int | None) -> int:
    """The progress that starts a new count of failures."""
    if total:
        return max(1, min(MIN_PROGRESS, total // 16))
    return MIN_PROGRESS


class Attempts:
    """The attempts of one download: servers asked, failures counted.

    ``next_server(avoid)`` gives the server of each attempt (the rotation
    of ``GlanceClientWrapper``); ``resumes`` counts the attempts made to
    continue after a failure.
    """

    def __init__(self, next_server: Callable[..., str], start: int = 0):
        self.tried: list[str] = []
        self.resumes = 0
        self._next_server = next_server
        self._failures = 0
        # The offset at the last failure.
        self._failed_at = start
        self._backoff = retry.Backoff(
            CONF.glance.retry_backoff_base, CONF.glance.retry_backoff_max
        )

    def next(self, offset: int) -> str:
        """The server of the next attempt at ``offset``, once its backoff
        has passed."""
        # Not the server that just failed, while there are others.
        server = self._next_server(self.tried[-1:])
        if self.tried:
            self._backoff.wait(self.tried.count(server))
        self.tried.append(server)
        if offset:
            self.resumes += 1
        return server

    def progressed(self, offset: int, total: int | None) -> None:
        """Bytes up to ``offset`` arrived: enough of them reset the count."""
        if offset - self._failed_at >= min_progress(total):
            self._failures = 0

    def fail(self, error: BaseException, offset: int, image_id: str) -> None:
        """Count a failure at ``offset``; raise once the retries are used
        up (GlanceConnectionFailed before any byte, else
        ImageDownloadFailed)."""
        self._failures += 1
        self._failed_at = offset
        resumes_left = self.resumes < CONF.glance.download_max_resumes
        if self._failures <= CONF.glance.num_retries and resumes_left:
            return
        servers = ', '.join(dict.fromkeys(self.tried))
        reason = str(error)
        if not resumes_left:
            reason = _('%(error)s; resumed %(resumes)d times already') % {
                'error': reason,
                'resumes': self.resumes,
            }
        if offset == 0:
            raise exception.GlanceConnectionFailed(
                attempts=len(self.tried), servers=servers, reason=reason
            ) from error
        raise exception.ImageDownloadFailed(
            image_id=image_id,
            reason=_(
                'the transfer broke off at byte %(offset)d and could not '
                'be resumed (servers tried: %(servers)s): %(error)s'
            )
            % {'offset': offset, 'servers': servers, 'error': reason},
        ) from error
