"""Uploads from local paths: the file is opened here, Glance consumes it."""

from collections.abc import Callable
import contextlib
import json
import os
from typing import Any

from image_agent import exception
from image_agent import paths
from image_agent.formats import convert
from image_agent.formats import inspect
from image_agent.transfers import flights
from image_agent.transfers import progress as progress_mod

# The size of the pieces an upload is sent in (each one chunk of the
# chunked request body): what Glance's stores read at a time (64 KiB,
# glance_store's write chunk). A larger chunk is buffered by the server and
# cut up again: the test deployment's Glance (gunicorn) took 1 MiB chunks,
# glanceclient's own size, at about half the rate of curl's 64 KiB ones.
PIECE = 64 * 1024


class Uploads:
    """Every upload of one agent from its upload roots."""

    def __init__(self, shared: flights.Shared, roots: paths.PathPolicy):
        self._shared = shared
        self.roots = roots

    def upload(
        self,
        context,
        path: str,
        send: Callable[[Any], dict],
        image_id: str | None = None,
        request: dict | None = None,
        conversion: tuple[str, str] | None = None,
    ) -> dict:
        """Upload the file at ``path`` with ``send(data)``; see
        ``Transfers.upload``."""
        source = self.roots.open_source(path)
        with source:
            # Read ahead of the pieces (a file on disk is read once, in
            # order): twice the kernel's default window.
            with contextlib.suppress(OSError, AttributeError):
                os.posix_fadvise(
                    source.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL
                )
            size = os.fstat(source.fileno()).st_size
            real = paths.fd_path(source.fileno()) or path

            def run() -> dict:
                return self._upload(
                    context, source, real, size, send, image_id, conversion
                )

            if image_id is None:
                return run()
            # Shared by the same caller only: Glance checks every token.
            key = (
                'upload',
                flights.caller_key(context),
                image_id,
                real,
                json.dumps(request or {}, sort_keys=True, default=str),
                conversion,
            )
            return self._shared.flights.run(key, run)

    def _upload(
        self, context, source, path, size, send, image_id, conversion
    ) -> dict:
        shared = self._shared

        def shutting_down() -> Exception:
            return exception.ImageUploadFailed(
                path=path, reason=flights.SHUTTING_DOWN
            )

        def translate(error: BaseException) -> BaseException:
            return shutting_down() if shared.cancel.is_set() else error

        with shared.slots.held('uploads', shutting_down):
            progress = shared.board.new(
                context, 'upload', image_id, path, size
            )
            payload = {'image_id': image_id, 'path': path}
            with (
                shared.board.running(context, progress, payload, translate),
                self._converted(image_id or path, source, conversion) as data,
            ):
                progress.size = os.fstat(data.fileno()).st_size
                image = send(
                    progress_mod.CancellableReader(
                        data, progress, shared.cancel, PIECE
                    )
                )
        payload['image_id'] = image.get('id', image_id)
        shared.board.notify(
            context,
            'image.upload.end',
            shared.board.payload(payload, progress),
        )
        return image

    def _converted(self, name: str, source, conversion):
        """``source`` itself, or (with ``conversion``) a converted copy.

        The file must be what its ``conversion`` source format says, and
        safe (``formats.inspect``, with every format allowed: the caller
        names the format, not an image): qemu-img would follow what an
        unsafe header names, and send the agent's host files to Glance.
        """
        if conversion is None:
            return contextlib.nullcontext(source)
        source_format, target_format = conversion
        found = inspect.inspect_file(
            name, source.fileno(), source_format, convert.SOURCE_FORMATS
        )
        return convert.converted_copy(
            name,
            source.fileno(),
            found.detected,
            target_format,
            self._shared.conversion.limits,
            self._shared.conversion.directory,
        )
