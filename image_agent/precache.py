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

from image_agent.peers import placement

# Seconds between looks at hosts that may start serving while they
# download (a ping each).
WATCH_INTERVAL = 0.1


def fan_out(
    ctxt,
    image_ids: list[str],
    hosts: list[str],
    ping: Callable[[str], Any],
    cache: Callable[[str, list[str]], dict],
    workers: int,
    notifier: Callable[..., None],
    progress: Callable[[str, dict, int, int], None] | None = None,
    fanout: int = 0,
) -> dict[str, dict[str, dict]]:
    """Cache ``image_ids`` on every host, ``workers`` hosts at once.

    Every host is pinged first (``ping(host)`` returns its status; its
    error makes every image of the host ``skipped``); then
    ``cache(host, peers)`` returns the outcome per image id (its error
    makes every image ``error``). With ``fanout``, the hosts whose status
    shows a ``peer_url`` spread the images among themselves
    (``peers.placement``); ``peers`` names the hosts to fetch from. Returns
    ``{host: {image_id: outcome}}`` in the order of ``hosts``.
    """
    started = time.monotonic()
    results: dict[str, dict[str, dict]] = {}
    notifier(
        ctxt, 'image.precache.start', {'image_ids': image_ids, 'hosts': hosts}
    )

    def done(host: str, outcomes: dict[str, dict]) -> None:
        results[host] = outcomes
        notifier(
            ctxt,
            'image.precache.progress',
            progress_payload(host, outcomes, results, hosts),
        )
        if progress is not None:
            progress(host, outcomes, len(results), len(hosts))

    with futures.ThreadPoolExecutor(
        workers, thread_name_prefix='precache'
    ) as pool:
        serving = set()
        answered = []
        for host, status in zip(
            hosts,
            pool.map(lambda h: _ping(image_ids, h, ping), hosts),
            strict=True,
        ):
            if 'skipped' in status:
                done(host, status['skipped'])
                continue
            answered.append(host)
            if status.get('peer_url'):
                serving.add(host)
        # One image: a host serves it while it still downloads it.
        plan = placement.Spread(
            answered, serving, fanout, streaming=len(image_ids) == 1
        )
        running: dict[futures.Future, str] = {}
        while True:
            for host, peers in plan.ready(workers - len(running)):
                future = pool.submit(_cache, image_ids, host, peers, cache)
                running[future] = host
            if not running:
                break
            watched = plan.waiting()
            finished, _ = futures.wait(
                running,
                timeout=WATCH_INTERVAL if watched else None,
                return_when=futures.FIRST_COMPLETED,
            )
            for host in watched:
                if _downloading(ping, host, image_ids[0]):
                    plan.downloading(host)
            for future in finished:
                host = running.pop(future)
                outcomes = future.result()
                plan.finished(host, _all_cached(outcomes))
                plan.distrust(_rejected(outcomes))
                done(host, outcomes)
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


def _ping(image_ids: list[str], host: str, ping) -> dict:
    """The host's status, or ``{'skipped': outcomes}`` when it is silent."""
    try:
        status = ping(host)
    except Exception as e:
        reason = '%s: %s' % (type(e).__name__, e)
        return {
            'skipped': _every(
                image_ids,
                'skipped',
                e,
                'the agent did not answer a ping (%s)' % reason,
            )
        }
    return status if isinstance(status, dict) else {}


def _cache(
    image_ids: list[str], host: str, peers: list[str], cache
) -> dict[str, dict]:
    """One host's share, from ``peers`` when there are any."""
    try:
        outcomes = cache(host, peers)
    except Exception as e:
        return _every(image_ids, 'error', e, str(e))
    return {image_id: outcomes[image_id] for image_id in image_ids}


def _downloading(ping, host: str, image_id: str) -> bool:
    """Whether ``host``'s agent is writing ``image_id`` now (its ping)."""
    try:
        status = ping(host)
    except Exception:  # noqa: BLE001 - asked again at the next look
        return False
    return any(
        t.get('kind') == 'download'
        and t.get('image_id') == image_id
        and (t.get('bytes') or 0) > 0
        for t in status.get('transfers') or ()
    )


def _rejected(outcomes: dict[str, dict]) -> list[str]:
    """Peers whose bytes a host threw away (their hash did not match)."""
    return [
        peer
        for outcome in outcomes.values()
        for peer in outcome.get('rejected_peers') or ()
    ]


def _all_cached(outcomes: dict[str, dict]) -> bool:
    return all(
        o['status'] in ('cached', 'existing') for o in outcomes.values()
    )


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
