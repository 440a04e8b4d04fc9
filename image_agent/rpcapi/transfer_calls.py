"""The calls that move an image's bytes: download, create and update.

A transfer gets the long ``[image_agent] transfer_timeout`` with
heartbeats (see ``calls.AgentCalls._prepare``); the arguments of later
RPC versions (``idempotency_key`` 1.2, ``convert_to``/``convert_from``
1.4) are sent only to agents that understand them, and refused here
otherwise (RPCVersionCapped).
"""

from typing import Any

from image_agent import idempotency
from image_agent.rpcapi import calls


class TransferCalls(calls.AgentCalls):
    """Downloads to and uploads from a path on the agent's host."""

    def download(
        self,
        ctxt,
        image_id: str,
        path: str,
        host: str | None = None,
        overwrite: bool = False,
        convert_to: str | None = None,
    ) -> dict:
        """Download an image to ``path`` on the agent's host.

        Returns ``path`` (resolved), ``size``, ``os_hash_algo``,
        ``os_hash_value`` and ``reused``; from agents of 1.4 on also
        ``disk_format_detected`` and ``virtual_size`` (what the agent's
        inspection found the bytes to be) and ``converted_from``. With
        ``convert_to='raw'`` (1.4) the file is the image converted to raw
        by the agent (``virtual_size`` bytes, sparse).
        """
        version = "1.0"
        kwargs: dict[str, Any] = {
            "image_id": image_id,
            "path": path,
            "overwrite": overwrite,
        }
        if convert_to is not None:
            self._require("1.4", "download with convert_to", ctxt, host)
            version = "1.4"
            kwargs["convert_to"] = convert_to
        return self._call_with(
            self._prepare(host, version=version, transfer=True),
            ctxt,
            "download",
            **kwargs,
        )

    def create(
        self,
        ctxt,
        image_meta: dict,
        path: str | None = None,
        host: str | None = None,
        idempotency_key: str | None = None,
        convert_from: str | None = None,
    ) -> dict:
        """Create an image, uploading the file at ``path`` if given.

        With an ``idempotency_key`` (RPC 1.2), the key is recorded on the
        image (property ``image_agent_idempotency_key``) and a create with
        a key the caller's project already used returns that image instead
        of making another: after a timeout, repeat the call with the same
        key, or look the image up with ``find_created``.

        With ``convert_from`` (RPC 1.4), the file at ``path`` is in that
        format (``raw``, ``qcow2``...) and is uploaded converted to the
        ``disk_format`` of ``image_meta`` (Cinder's upload of a raw volume
        as qcow2); the agent inspects it first.
        """
        version = "1.0"
        kwargs: dict[str, Any] = {"image_meta": image_meta, "path": path}
        if idempotency_key is not None:
            self._require("1.2", "create with an idempotency key", ctxt, host)
            version = "1.2"
            kwargs["idempotency_key"] = idempotency_key
        if convert_from is not None:
            self._require("1.4", "create with convert_from", ctxt, host)
            version = "1.4"
            kwargs["convert_from"] = convert_from
        prepared = self._prepare(
            host, version=version, transfer=path is not None
        )
        if idempotency_key is not None:
            prepared.hint = (
                " The image may have been created: look it up by its "
                "idempotency key %s, or create again with the same key."
                % idempotency_key
            )
        return self._call_with(prepared, ctxt, "create", **kwargs)

    def find_created(
        self, ctxt, idempotency_key: str, host: str | None = None
    ) -> dict | None:
        """The image a create with ``idempotency_key`` made, or None."""
        images = self.detail(
            ctxt, host=host, filters=idempotency.filters(ctxt, idempotency_key)
        )
        return images[0] if images else None

    def update(
        self,
        ctxt,
        image_id: str,
        image_meta: dict,
        path: str | None = None,
        purge_props: bool = True,
        store_id: str | None = None,
        base_image_ref: str | None = None,
        host: str | None = None,
        convert_from: str | None = None,
    ) -> dict:
        """Update an image's metadata, uploading ``path`` first if given.

        With ``convert_from`` (RPC 1.4), as ``create``: the file is
        uploaded converted to the ``disk_format`` of ``image_meta``, else
        to the image's own.
        """
        version = "1.0"
        kwargs: dict[str, Any] = {
            "image_id": image_id,
            "image_meta": image_meta,
            "path": path,
            "purge_props": purge_props,
            "store_id": store_id,
            "base_image_ref": base_image_ref,
        }
        if convert_from is not None:
            self._require("1.4", "update with convert_from", ctxt, host)
            version = "1.4"
            kwargs["convert_from"] = convert_from
        return self._call_with(
            self._prepare(host, version=version, transfer=path is not None),
            ctxt,
            "update",
            **kwargs,
        )
