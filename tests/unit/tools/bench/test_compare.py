"""A before/after table of two benchmark runs, of any format so far."""

from tools.bench import compare

# The shape of a run made before spreads, limits and noise existed.
OLD = {
    'rounds': 2,
    'tmpfs_vs_reference': 1.01,
    'show_ratio': 1.78,
    'raw': {
        'throughput_mb_s_per_round': {
            'tmpfs_agent': [480.0, 500.0],
            'tmpfs_curl': [1570.0, 1856.0],
            'sha512': [600.0, 650.0],
            'disk_agent': [450.0, 500.0],
            'disk_curl': [700.0, 800.0],
        },
        'throughput': {
            'tmpfs_agent': {'median': 490.0, 'min': 480.0, 'max': 500.0}
        },
        'latency_ms': {
            'show_agent': {'p50': 9.96, 'p99': 19.0},
            'ping_raw': {'p50': 1.93, 'p99': 8.0},
            'show_direct': {'p50': 5.61, 'p99': 12.0},
        },
        'dedupe': {'fetched_mib': 512.0, 'size_mib': 512.0},
    },
}
NEW = {
    'rounds': 3,
    'tmpfs_vs_limit': 0.97,
    'upload_vs_curl': 0.96,
    'spreads': {'tmpfs_vs_limit': {'low': 0.95, 'high': 0.99}},
    'noisy': [],
}


def test_an_old_run_gets_todays_figures_from_its_raw_ones():
    run = dict(OLD)
    derived = compare.derive(run)
    assert 'tmpfs_vs_limit' in derived
    assert run['tmpfs_vs_limit'] == (480 / 600 + 500 / 650) / 2
    assert round(run['show_overhead_ms'], 2) == 2.42
    assert run['dedupe_extra_kib_per_joiner'] == 0
    # curl into tmpfs 1570-1856: 17% apart.
    assert run['noisy'] == ['tmpfs_vs_limit']


def test_figures_one_run_lacks_are_shown_as_a_dash():
    old = dict(OLD)
    old['derived'] = compare.derive(old)
    text = compare.table(old, dict(NEW))
    upload = next(x for x in text.splitlines() if x.startswith('upload_vs'))
    assert upload.split()[1] == '-'
    assert '0.96' in upload
    show = next(x for x in text.splitlines() if x.startswith('show_ratio'))
    assert show.split()[2] == '-'
    assert 'B too noisy to judge: nothing' in text
    assert 'A is of an older format' in text


def test_the_change_and_both_verdicts_are_printed():
    text = compare.table(dict(OLD, tmpfs_vs_limit=0.8), dict(NEW))
    line = next(x for x in text.splitlines() if x.startswith('tmpfs_vs_l'))
    assert 'x1.21' in line
    assert 'NO/yes' in line
