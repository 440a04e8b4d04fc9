"""Uploads from local paths: the file is opened here, Glance consumes it."""

from collections.abc import Callable
import json
import os
from typing import Any

from image_agent import exception
from image_agent import paths
from image_agent.transfers import flights
from image_agent.transfers import progress as progress_mod


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
    ) -> dict:
        """Upload the file at ``path`` with ``send(data)``; see
        ``Transfers.upload``."""
        source = self.roots.open_source(path)
        with source:
            size = os.fstat(source.fileno()).st_size
            real = paths.fd_path(source.fileno()) or path

            def run() -> dict:
                return self._upload(
                    context, source, real, size, send, image_id
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
            )
            return self._shared.flights.run(key, run)

    def _upload(self, context, source, path, size, send, image_id) -> dict:
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
            with shared.board.running(context, progress, payload, translate):
                image = send(
                    progress_mod.CancellableReader(
                        source, progress, shared.cancel
                    )
                )
        payload['image_id'] = image.get('id', image_id)
        shared.board.notify(
            context,
            'image.upload.end',
            shared.board.payload(payload, progress),
        )
        return image
