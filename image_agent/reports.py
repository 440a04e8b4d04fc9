"""Guru Meditation Reports of the agent (oslo.reports).

On SIGUSR2, or when ``[oslo_reports] file_event_handler`` is modified, the
agent writes a report to its standard error (or to a file in
``[oslo_reports] log_dir``): its threads with their stacks, its
configuration (secrets masked), and, from :func:`sections`, the transfers
in flight, the transfer slots and the image cache.
"""

import signal
from typing import Any

from oslo_config import cfg
from oslo_reports import guru_meditation_report as gmr
from oslo_reports import opts as gmr_opts
from oslo_reports.models import with_default_views as views

from image_agent import version

SERVICE_NAME = 'image-agent'
_TITLES = ('Transfers in flight', 'Transfer slots', 'Image cache')


def register_opts(conf: cfg.ConfigOpts) -> None:
    """The ``[oslo_reports]`` options, so that config files may set them."""
    gmr_opts.set_defaults(conf)


def _model(data: Any) -> views.ModelWithDefaultViews:
    return views.ModelWithDefaultViews(data)


def sections(transfers) -> list[tuple[str, Any]]:
    """The agent's own sections: ``(title, generator)`` pairs."""

    def in_flight():
        return _model({'transfers': transfers.status()})

    def slots():
        return _model(transfers.slots())

    def cache():
        if transfers.cache is None:
            return _model({'cache': 'none ([agent] cache_dir unset)'})
        status = transfers.cache.status()
        entries = status.pop('entries')
        status['images'] = len(entries)
        status['in_use'] = [e['image_id'] for e in entries if e.get('in_use')]
        return _model(status)

    return list(zip(_TITLES, (in_flight, slots, cache), strict=True))


def setup_signal(conf: cfg.ConfigOpts) -> None:
    """Report on SIGUSR2; called in the main thread before the fork.

    Python only installs signal handlers from the main thread, which the
    service's ``start()`` does not run in; the worker inherits the handler
    and reports with the sections :func:`setup` registered there. SIGUSR2
    to the master writes the master's report (threads, configuration).
    """
    gmr.TextGuruMeditation.setup_autorun(
        version.info(),
        service_name=SERVICE_NAME,
        signum=signal.SIGUSR2,
        conf=conf,
    )


class _Watcher:
    """Whether this process already watches the trigger file."""

    started = False


def setup(conf: cfg.ConfigOpts, transfers) -> None:
    """Show ``transfers`` in the reports of this (worker) process.

    Sections registered by an earlier start of the service are replaced,
    so that a report never shows transfers of a stopped service. With
    ``[oslo_reports] file_event_handler`` set, a thread watches the file
    (once per process).
    """
    report = gmr.TextGuruMeditation
    kept = [
        (title, generator)
        for title, generator in getattr(report, 'persistent_sections', [])
        if title not in _TITLES
    ]
    report.persistent_sections = kept + sections(transfers)
    if conf.oslo_reports.file_event_handler and not _Watcher.started:
        _Watcher.started = True
        report.setup_autorun(
            version.info(),
            service_name=SERVICE_NAME,
            conf=conf,
            setup_signal=False,
        )
