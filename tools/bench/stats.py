"""Statistics of a benchmark run: medians, percentiles, spreads, noise."""

from __future__ import annotations

import statistics

MB = 1e6
# A baseline whose own spread over the rounds is wider than this (as a
# fraction of its median) makes the ratios divided by it too noisy to
# judge: curl into tmpfs measured 383-892 MB/s between the rounds of one
# run with another process busy, and the ratios then ranged 0.54-0.83.
NOISE_THRESHOLD = 0.15
# From this many values on, the spread is p10-p90 (one outlier does not
# make a run noisy); below it, min-max.
PERCENTILE_SPREAD_FROM = 10


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], p: float) -> float:
    """The ``p`` percentile (0-100), nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))
    return ordered[rank]


def percentiles(result: dict[str, list[float]]) -> dict:
    """p50, p99 and count of each named series."""
    return {
        name: {
            'p50': percentile(values, 50),
            'p99': percentile(values, 99),
            'n': len(values),
        }
        for name, values in result.items()
    }


def spread(values: list[float]) -> dict[str, float]:
    """Median, min, max, p10, p90 and count; ``low``/``high`` are the
    bounds the noise is judged by (p10-p90 from 10 values on, else
    min-max)."""
    wide = len(values) >= PERCENTILE_SPREAD_FROM
    return {
        'median': median(values),
        'min': min(values),
        'max': max(values),
        'p10': percentile(values, 10),
        'p90': percentile(values, 90),
        'low': percentile(values, 10) if wide else min(values),
        'high': percentile(values, 90) if wide else max(values),
        'n': len(values),
    }


def relative_spread(values: list[float]) -> float:
    """(high - low) / median: 0.15 is a baseline 15% apart from itself."""
    s = spread(values)
    if not s['median']:
        return 0.0
    return (s['high'] - s['low']) / abs(s['median'])


def rates_mb_s(size: int, seconds: list[float]) -> list[float]:
    return [size / MB / s for s in seconds]


def paired_ratios(top: list[float], bottom: list[float]) -> list[float]:
    """Ratio of each round's pair (measured close in time)."""
    return [a / b for a, b in zip(top, bottom, strict=True)]


def paired(func, *series: list[float]) -> list[float]:
    """``func`` of each round's values of every series."""
    return [func(*values) for values in zip(*series, strict=True)]
