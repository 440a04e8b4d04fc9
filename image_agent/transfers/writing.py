"""One download written to one local file: tracked, notified, all or
nothing. The bytes come from ``data.sources``; ``data.writer`` publishes
them only once they are complete and verified."""

import errno
import os
from typing import Any

from oslo_log import log as logging

from image_agent import exception
from image_agent import paths
from image_agent import space
from image_agent.data import pipeline
from image_agent.data import sources
from image_agent.data import writer
from image_agent.formats import convert
from image_agent.transfers import flights

LOG = logging.getLogger(__name__)

# A disk (or quota) that fills up while a download is written.
_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


class ImageWriter:
    """Writes images to files under the download roots."""

    def __init__(
        self,
        shared: flights.Shared,
        roots: paths.PathPolicy,
        mode: int,
        group: int | None,
        direct_io: bool = False,
    ) -> None:
        self._shared = shared
        self._roots = roots
        self._mode = mode
        self._group = group
        self._direct_io = direct_io

    def write(
        self,
        request: sources.Request,
        destination: paths.Destination,
        overwrite: bool,
        mode: int | None = None,
        reservation: space.Reservation | None = None,
        convert_to: str | None = None,
    ) -> dict[str, Any]:
        """Write the image of ``request`` to ``destination``; return
        ``size``, ``source`` (``cache``, ``file`` or ``glance``),
        ``fetched``, ``disk_format_detected`` and ``virtual_size`` (None
        without inspection) and ``converted_from``. ``mode`` (the cache's
        own) replaces the configured mode and group. With ``convert_to``
        (``raw``), the verified, inspected image is converted beside the
        destination, and the conversion is what is published."""
        board = self._shared.board
        context, image_id = request.context, request.image['id']
        progress = board.new(
            context,
            'download',
            image_id,
            destination.path,
            request.image.get('size'),
        )
        payload = {'image_id': image_id, 'path': destination.path}

        def translate(error: BaseException) -> BaseException:
            return _translate(error, image_id, destination)

        converted = None
        with board.running(context, progress, payload, translate):
            dir_fd = self._roots.open_directory(destination)
            try:
                with writer.AtomicFile(
                    destination,
                    dir_fd,
                    self._mode if mode is None else mode,
                    overwrite,
                    group=self._group if mode is None else None,
                    cancel=self._shared.cancel,
                    expected_size=request.image.get('size'),
                    reservation=reservation,
                    # Converted at once: qemu-img reads it from memory.
                    writeback=convert_to is None,
                    direct=self._direct_io,
                ) as out:
                    outcome = sources.fill(
                        request, out, board.reporter(context, progress)
                    )
                    if convert_to is not None:
                        converted = self._convert(
                            request, outcome, out, dir_fd, overwrite
                        )
            finally:
                os.close(dir_fd)
        progress.fetched, progress.resumes = outcome.fetched, outcome.resumes
        end = board.payload(payload, progress)
        end['source'] = outcome.source
        board.notify(context, 'image.download.end', end)
        LOG.info(
            'Downloaded image %(id)s to %(path)s from %(source)s: %(bytes)d '
            'bytes in %(duration).2f s (%(rate).0f MB/s), %(fetched)d bytes '
            'received from Glance, %(resumes)d resumes',
            {
                'id': image_id,
                'path': destination.path,
                'source': outcome.source,
                'bytes': out.written,
                'duration': end['duration'],
                'rate': end['rate'] / 1e6,
                'fetched': outcome.fetched,
                'resumes': outcome.resumes,
            },
        )
        found = outcome.inspection.as_dict() if outcome.inspection else {}
        return {
            'size': out.written if converted is None else converted[1],
            'source': outcome.source,
            'fetched': outcome.fetched,
            'disk_format_detected': found.get('disk_format_detected'),
            'virtual_size': found.get('virtual_size'),
            'converted_from': None if converted is None else converted[0],
        }

    def _convert(
        self,
        request: sources.Request,
        outcome: sources.Outcome,
        out: writer.AtomicFile,
        dir_fd: int,
        overwrite: bool,
    ) -> tuple[str, int] | None:
        """Convert the downloaded ``out`` to raw into the destination:
        ``(source format, size)``, or None when it is raw already (``out``
        is then published as it is)."""
        image = request.image
        image_id = image['id']
        source_format = (
            outcome.inspection.detected
            if outcome.inspection is not None
            else image.get('disk_format')
        )
        if convert.qemu_format(source_format or 'raw') == 'raw':
            return None
        limits = self._shared.conversion.limits
        size = convert.source_size(
            image_id, out.fileno(), source_format, limits
        )
        destination = out.destination
        with (
            self._shared.space.reserve(
                destination.directory, image_id, size
            ) as reservation,
            writer.AtomicFile(
                destination,
                dir_fd,
                self._mode,
                overwrite,
                group=self._group,
                cancel=self._shared.cancel,
                reservation=reservation,
            ) as target,
        ):
            convert.convert_fd(
                image_id, out.fileno(), source_format, target.fileno(), size,
                limits,
            )  # fmt: skip
            target.copied(size)
        out.scratch()
        LOG.info(
            'Converted image %(id)s from %(format)s to raw at %(path)s',
            {'id': image_id, 'format': source_format, 'path': destination},
        )
        return source_format, size


def _translate(
    error: BaseException, image_id: str, destination: paths.Destination
) -> BaseException:
    """The caller's error for a failure of the copy."""
    if isinstance(error, pipeline.Cancelled):
        return exception.ImageDownloadFailed(
            image_id=image_id, reason=flights.SHUTTING_DOWN
        )
    if isinstance(error, OSError) and error.errno in _OUT_OF_SPACE:
        return exception.OutOfSpace(
            path=destination.directory,
            image_id=image_id,
            reason=error.strerror,
        )
    if isinstance(error, (OSError, writer.SizeMismatch)):
        return exception.ImageDownloadFailed(
            image_id=image_id, reason=str(error)
        )
    return error
