"""What each subcommand of ``image-agent-client`` calls: one call of
``ImageAgentAPI`` with the arguments it takes, transfers shown with a
progress line."""

import argparse
import os
import sys
from typing import Any

from image_agent import exception
from image_agent import rpcapi
from image_agent.cmd import output


def run_command(api: rpcapi.ImageAgentAPI, ctxt, args) -> Any:
    """Call the operation ``args.command`` names; return its result."""
    host = args.host
    command = args.command
    if command == 'ping':
        return api.ping(ctxt, host=host)
    if command == 'show':
        return api.show(ctxt, args.image_id, host=host)
    if command == 'delete':
        api.delete(ctxt, args.image_id, host=host)
        return {'id': args.image_id, 'deleted': True}
    if command == 'get-location':
        direct_url, locations = api.get_location(ctxt, args.image_id, host)
        return {'direct_url': direct_url, 'locations': locations}
    if command == 'list-members':
        return api.list_members(ctxt, args.image_id, host=host)
    if command == 'get-stores':
        return api.get_stores(ctxt, host=host)
    if command == 'detail':
        params = {
            'filters': dict(args.filter) or None,
            'limit': args.limit,
            'page_size': args.page_size,
            'marker': args.marker,
            'sort_key': args.sort_key,
            'sort_dir': args.sort_dir,
        }
        params = {k: v for k, v in params.items() if v is not None}
        return api.detail(ctxt, host=host, **params)
    if command == 'download':
        return _download(api, ctxt, args)
    if command == 'create':
        return _upload(
            api,
            ctxt,
            args,
            'upload',
            lambda: api.create(
                ctxt,
                _image_meta(args),
                path=args.file,
                host=host,
                idempotency_key=args.idempotency_key,
                convert_from=args.convert_from,
            ),
        )
    if command == 'find-created':
        image = api.find_created(ctxt, args.idempotency_key, host=host)
        if image is None:
            raise exception.NotFound(
                'No image of your project was created with idempotency '
                'key %s.' % args.idempotency_key
            )
        return image
    if command == 'update':
        return _upload(
            api,
            ctxt,
            args,
            'upload',
            lambda: api.update(
                ctxt,
                args.image_id,
                _image_meta(args),
                path=args.file,
                purge_props=args.purge_props,
                store_id=args.store,
                base_image_ref=args.base_image_ref,
                host=host,
                convert_from=args.convert_from,
            ),
        )
    if command == 'precache':
        hosts = list(args.hosts or [])
        if host and host not in hosts:
            hosts.append(host)
        if not hosts:
            raise exception.InvalidInput(
                reason='precache needs --host: the hosts whose agents '
                'cache the images'
            )
        board = output.PrecacheBoard(hosts)
        return api.precache(
            ctxt,
            args.image_ids,
            hosts,
            max_workers=args.parallel,
            ping_timeout=args.ping_timeout,
            progress=board.update,
        )
    if command in ('cache-list', 'cache-evict'):
        host = args.sub_host or host
        if not host:
            raise exception.InvalidInput(
                reason='%s needs --host: every agent has its own cache'
                % command
            )
        if command == 'cache-list':
            return api.list_cache(ctxt, host)
        return api.evict(ctxt, args.image_id, host)
    if command == 'add-location':
        return api.add_location(
            ctxt, args.image_id, args.url, args.metadata, host=host
        )
    raise AssertionError('unknown command %s' % command)


def _image_meta(args: argparse.Namespace) -> dict:
    meta = dict(args.meta)
    for key in ('name', 'disk_format', 'container_format', 'visibility'):
        value = getattr(args, key)
        if value is not None:
            meta[key] = value
    if args.property:
        properties = dict(meta.get('properties') or {})
        properties.update(dict(args.property))
        meta['properties'] = properties
    return meta


def _transfer_poller(api, ctxt, args, kind: str, image_id, path: str):
    """What the agent of ``--host`` says of this transfer, for the bar."""

    def poll():
        status = api.ping(ctxt, host=args.host)
        candidates = [
            t
            for t in status.get('transfers', [])
            if t['kind'] == kind
            and (image_id is None or t['image_id'] == image_id)
        ]
        # Ours is the one writing (or reading) our path; a download that
        # fills the image cache first writes the cache's entry instead.
        named = [
            t
            for t in candidates
            if os.path.basename(t['path']) == os.path.basename(path)
        ]
        for transfer in named or candidates[:1]:
            return (transfer['bytes'], transfer['size'], transfer.get('rate'))
        return None

    return poll if args.host else None


def _with_progress(label: str, args, call, poll=None):
    """Run a transfer call with a progress line; print its summary."""
    progress = output.Progress(
        label, poll=poll, enabled=False if args.no_progress else None
    )
    result = progress.run(call)
    print(
        progress.summary(result.get('size'), result.get('reused')),
        file=sys.stderr,
    )
    return result


def _download(api, ctxt, args) -> dict:
    return _with_progress(
        'download %s' % args.image_id,
        args,
        lambda: api.download(
            ctxt,
            args.image_id,
            args.path,
            host=args.host,
            overwrite=args.overwrite,
            convert_to=args.convert_to,
        ),
        _transfer_poller(
            api, ctxt, args, 'download', args.image_id, args.path
        ),
    )


def _upload(api, ctxt, args, label: str, call) -> dict:
    """A create or update; with --file, an upload shown as it goes."""
    if not args.file:
        return call()
    image_id = getattr(args, 'image_id', None)
    return _with_progress(
        '%s %s' % (label, os.path.basename(args.file)),
        args,
        call,
        _transfer_poller(api, ctxt, args, 'upload', image_id, args.file),
    )
