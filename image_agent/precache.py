"""Pre-caching images on many hosts: the fan-out on the caller's side.

``ImageAgentAPI.precache`` brings the RPC calls (``ping`` and
``precache_host`` of one host) and the notifier; this module decides the
rest: which hosts run at once, what a host that does not answer or fails
counts as, and the ``image.precache.*`` notifications.
"""

from collections.abc import Callable
from concurrent import futures
import time
from typing import Any


def fan_out(
    ctxt,
    image_ids: list[str],
    hosts: list[str],
    ping: Callable[[str], Any],
    cache: Callable[[str], dict],
    workers: int,
    notifier: Callable[..., None],
    progress: Callable[[str, dict, int, int], None] | None = None,
) -> dict[str, dict[str, dict]]:
    """Cache ``image_ids`` on every host, ``workers`` hosts at once.

    ``ping(host)`` must answer before ``cache(host)`` is asked (its error
    makes every image of the host ``skipped``); ``cache(host)`` returns the
    outcome per image id (its error makes every image ``error``). Returns
    ``{host: {image_id: outcome}}`` in the order of ``hosts``.
    """
    started = time.monotonic()
    results: dict[str, dict[str, dict]] = {}
    notifier(
        ctxt, 'image.precache.start', {'image_ids': image_ids, 'hosts': hosts}
    )
    with futures.ThreadPoolExecutor(
        workers, thread_name_prefix='precache'
    ) as pool:
        running = {
            pool.submit(_one_host, image_ids, host, ping, cache): host
            for host in hosts
        }
        for future in futures.as_completed(running):
            host = running[future]
            results[host] = future.result()
            notifier(
                ctxt,
                'image.precache.progress',
                progress_payload(host, results[host], results, hosts),
            )
            if progress is not None:
                progress(host, results[host], len(results), len(hosts))
    summary = _summary(results)
    notifier(
        ctxt,
        'image.precache.end',
        {
            'image_ids': image_ids,
            'hosts': hosts,
            'summary': summary,
            'duration': round(time.monotonic() - started, 3),
            'results': results,
        },
        error=bool(summary.get('error')),
    )
    return {host: results[host] for host in hosts}


def _one_host(image_ids: list[str], host: str, ping, cache) -> dict[str, dict]:
    """One host's share: ping, then cache every image."""
    try:
        ping(host)
    except Exception as e:
        reason = '%s: %s' % (type(e).__name__, e)
        return _every(
            image_ids,
            'skipped',
            e,
            'the agent did not answer a ping (%s)' % reason,
        )
    try:
        outcomes = cache(host)
    except Exception as e:
        return _every(image_ids, 'error', e, str(e))
    return {image_id: outcomes[image_id] for image_id in image_ids}


def _every(image_ids, status: str, error: Exception, text: str) -> dict:
    return {
        image_id: {
            'image_id': image_id,
            'status': status,
            'error_class': type(error).__name__,
            'error': text,
        }
        for image_id in image_ids
    }


def _summary(results: dict[str, dict[str, dict]]) -> dict[str, int]:
    """How many outcomes had each status."""
    summary: dict[str, int] = {}
    for outcomes in results.values():
        for outcome in outcomes.values():
            status = outcome['status']
            summary[status] = summary.get(status, 0) + 1
    return summary


def progress_payload(
    host: str, outcomes: dict, results: dict, hosts: list[str]
) -> dict:
    """An ``image.precache.progress`` payload.

    ``host``, ``images_cached``, ``images_failed``, ``index`` and ``total``
    as in Nova's ``aggregate.cache_images.progress`` (cached or already
    there counts as cached; an error or a skipped host as failed), plus
    every image's outcome under ``images``.
    """
    cached = [
        i for i, o in outcomes.items() if o['status'] in ('cached', 'existing')
    ]
    return {
        'host': host,
        'images_cached': cached,
        'images_failed': [i for i in outcomes if i not in cached],
        'index': len(results),
        'total': len(hosts),
        'images': outcomes,
    }
