"""The goals a benchmark run is read by, and which figures it can judge."""

from __future__ import annotations

import dataclasses
from typing import Any

from tools.bench import stats


@dataclasses.dataclass
class Target:
    """One goal: the top-level figure ``key`` compared with ``limit``."""

    key: str
    label: str
    limit: float
    higher_is_better: bool
    unit: str = ''

    def met(self, value: float) -> bool:
        if self.higher_is_better:
            return value >= self.limit
        return value <= self.limit

    def describe(self) -> str:
        sign = '>=' if self.higher_is_better else '<='
        return '%s %g%s' % (sign, self.limit, self.unit)


TARGETS = [
    Target(
        'inspection_ratio', 'format inspection: with / without', 0.97, True
    ),
    Target(
        'inspection_cpu_share',
        'inspection CPU / download time',
        0.03,
        False,
    ),
    Target(
        'conversion_ratio',
        'qcow2 download as raw / qemu-img alone',
        0.9,
        True,
    ),
    Target(
        'conversion_vs_parts',
        'download as raw / (download + qemu-img)',
        0.9,
        True,
    ),
    Target('tmpfs_vs_limit', 'tmpfs: agent / min(sha512, curl)', 0.95, True),
    Target(
        'disk_vs_limit', 'disk: agent / min(sha512, curl+sync)', 0.95, True
    ),
    Target(
        'tmpfs_vs_reference', 'tmpfs: agent / glanceclient+checksum', 1.3, True
    ),
    Target(
        'upload_vs_curl', 'upload: agent / curl -T (worse source)', 0.95, True
    ),
    Target('rss_growth_mib', 'agent RSS growth (largest)', 16, False, ' MiB'),
    Target(
        'show_overhead_ms',
        'show p50: agent - (raw RPC + direct show)',
        0.3,
        False,
        ' ms',
    ),
    Target('ping_ratio', 'ping p50: agent / raw no-op RPC', 1.3, False),
    Target(
        'concurrent_ratio', '4 downloads: aggregate / one download', 0.9, True
    ),
    Target(
        'ping_p99_vs_control',
        'ping p99 in 4 downloads: agent / raw',
        1.5,
        False,
    ),
    Target(
        'resume_refetch_mib',
        'Glance killed half way: fetched again',
        8,
        False,
        ' MiB',
    ),
    Target(
        'dedupe_extra_kib_per_joiner',
        '2 identical downloads: extra per joiner',
        4,
        False,
        ' KiB',
    ),
    # The p2p section (by hand): 20 hosts, 256 MiB, Glance at 100 MB/s.
    Target(
        'p2p_glance_copies_p2p', 'p2p: bytes from Glance, images', 2, False
    ),
    Target('p2p_wall_ratio', 'p2p: wall time / Glance alone', 0.33, False),
]


def noise(baselines: dict[str, list[float]]) -> dict[str, float]:
    """Each baseline's spread relative to its median."""
    return {k: stats.relative_spread(v) for k, v in baselines.items()}


def noisy(
    judged_by: dict[str, list[str]],
    noise_of: dict[str, float],
    threshold: float = stats.NOISE_THRESHOLD,
) -> list[str]:
    """The figures divided by a baseline noisier than ``threshold``."""
    return sorted(
        key
        for key, baselines in judged_by.items()
        if any(noise_of.get(b, 0.0) > threshold for b in baselines)
    )


def evaluate(results: dict[str, Any]) -> dict[str, dict]:
    """Each target whose figure was measured, with its value and whether
    it is met (and whether the run was too noisy to judge it)."""
    verdicts = {}
    unjudged = set(results.get('noisy', ()))
    for target in TARGETS:
        value = results.get(target.key)
        if value is None:
            continue
        verdicts[target.key] = {
            'label': target.label,
            'target': target.describe(),
            'value': value,
            'met': target.met(value),
            'noisy': target.key in unjudged,
        }
    return verdicts
