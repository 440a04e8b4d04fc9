"""The benchmark's figures: limits, spreads, noise and targets."""

import threading

import pytest

from tools.bench import concurrent
from tools.bench import downloads
from tools.bench import harness
from tools.bench import latency
from tools.bench import measure
from tools.bench import report
from tools.bench import stats
from tools.bench import suite
from tools.bench import targets


def test_spread_is_min_max_below_ten_values_then_p10_p90():
    few = stats.spread([1.0, 2.0, 10.0])
    assert (few['low'], few['high']) == (1.0, 10.0)
    many = stats.spread([1.0] + [5.0] * 18 + [100.0])
    assert (many['low'], many['high']) == (5.0, 5.0)


def test_relative_spread_is_the_width_over_the_median():
    assert stats.relative_spread([90.0, 100.0, 110.0]) == pytest.approx(0.2)


def _rates(**overrides):
    rates = {
        'tmpfs_agent': [900.0, 950.0],
        'tmpfs_glanceclient': [500.0, 500.0],
        'tmpfs_curl': [2000.0, 2000.0],
        'sha512': [1000.0, 1000.0],
        'disk_agent': [600.0, 700.0],
        'disk_glanceclient': [400.0, 400.0],
        'disk_curl': [700.0, 700.0],
    }
    rates.update(overrides)
    return rates


def test_the_download_limit_is_the_slower_of_sha512_and_curl_each_round():
    fig = downloads.figures(_rates(sha512=[1000.0, 600.0]))
    # Round 1: min(1000, 2000); round 2: min(600, 2000).
    assert fig.series['tmpfs_vs_limit'] == [0.9, 950 / 600]
    # Disk: min(1000, 700), then min(600, 700).
    assert fig.series['disk_vs_limit'] == [600 / 700, 700 / 600]
    assert 'min(sha512' in fig.notes['disk_vs_limit']


def test_both_jobs_at_once_is_a_limit_printed_beside_the_target():
    fig = downloads.figures(
        _rates(tmpfs_both=[800.0, 1000.0], disk_both=[500.0, 500.0])
    )
    assert fig.series['tmpfs_vs_both'] == [900 / 800, 950 / 1000]
    assert fig.series['disk_vs_both'] == [600 / 500, 700 / 500]
    assert fig.judged_by['tmpfs_vs_both'] == ['tmpfs_both']
    assert 'both at once 900 MB/s' in fig.notes['tmpfs_vs_limit']
    # Runs without them (older results) have neither figure nor note.
    assert 'tmpfs_vs_both' not in downloads.figures(_rates()).series


def test_show_overhead_is_agent_minus_rpc_and_direct_show_per_block():
    blocks = {
        'show_agent': [5.0, 6.0],
        'show_direct': [3.0, 3.5],
        'ping_agent': [1.1, 1.2],
        'ping_raw': [1.0, 1.0],
    }
    result = {k: v * 25 for k, v in blocks.items()}
    fig = latency.latency_figures(result, blocks)
    assert fig.series['show_overhead_ms'] == pytest.approx([1.0, 1.5])


def test_a_raw_servers_show_is_the_limit_of_the_show_overhead():
    blocks = {
        'show_agent': [5.0, 6.0],
        'show_direct': [3.0, 3.5],
        'show_raw': [4.5, 5.0],
        'ping_agent': [1.1, 1.2],
        'ping_raw': [1.0, 1.0],
    }
    result = {k: v * 25 for k, v in blocks.items()}
    fig = latency.latency_figures(result, blocks)
    # The raw server's show over raw RPC + direct show, then the agent's
    # show over the raw server's, block by block.
    assert fig.series['show_raw_server_over_floor_ms'] == pytest.approx(
        [0.5, 0.5]
    )
    assert fig.series['show_over_raw_server_ms'] == pytest.approx([0.5, 1.0])
    assert fig.judged_by['show_over_raw_server_ms'] == ['show_raw_p50']
    assert 'the limit' in fig.notes['show_overhead_ms']


def test_ping_p99_is_judged_against_the_control_of_the_same_round():
    pings = [[1.0] * 98 + [30.0] * 2, [1.0] * 98 + [10.0] * 2]
    controls = [[1.0] * 98 + [20.0] * 2, [1.0] * 98 + [10.0] * 2]
    fig = concurrent.concurrent_figures(
        [600, 600], [550, 660], pings, controls
    )
    assert fig.series['ping_p99_vs_control'] == [1.5, 1.0]
    assert fig.series['concurrent_ratio'] == [550 / 600, 1.1]
    assert 'concurrent_vs_limit' not in fig.series


def test_four_downloads_are_judged_against_the_machine_doing_the_same():
    pings = [[1.0] * 100, [1.0] * 100]
    # The machine's curl and sha512: 400 MB/s alone, 320 and 300 for four
    # at once; the agent 0.75 of its single download both times.
    fig = concurrent.concurrent_figures(
        [600, 500],
        [450, 375],
        pings,
        pings,
        limits=([400, 400], [320, 300]),
    )
    assert fig.series['concurrent_limit_ratio'] == [0.8, 0.75]
    assert fig.series['concurrent_vs_limit'] == pytest.approx([0.9375, 1.0])
    assert fig.judged_by['concurrent_vs_limit'] == [
        'single_download_mb_s',
        'machine_single_mb_s',
        'machine_aggregate_mb_s',
    ]
    assert '0.78 (the limit)' in fig.notes['concurrent_ratio']


def test_the_agents_ping_tail_is_judged_against_a_server_moving_bytes_too():
    quiet = [[1.0] * 100, [1.0] * 100]
    pings = [[1.0] * 98 + [30.0] * 2, [1.0] * 98 + [12.0] * 2]
    loaded = [[2.0] * 98 + [20.0] * 2, [2.0] * 98 + [12.0] * 2]
    fig = concurrent.concurrent_figures(
        [600, 600], [500, 500], pings, quiet, loaded_controls=loaded
    )
    assert fig.series['ping_p99_vs_loaded_control'] == [1.5, 1.0]
    # Over every call of every round: the 4 slowest of 200 are 12 and 20.
    assert fig.values['ping_p99_ms_loaded_control'] == 12.0
    assert fig.judged_by['ping_p99_vs_loaded_control'] == [
        'loaded_control_p99_ms'
    ]
    assert '12.0 ms (the limit)' in fig.notes['ping_p99_vs_control']


def test_hash_input_has_the_size_asked_in_real_bytes():
    data = measure.hash_input(16 * 1024 * 1024 * 2 + 5)
    assert len(data) == 16 * 1024 * 1024 * 2 + 5
    assert data[:64] == data[16 * 1024 * 1024 : 16 * 1024 * 1024 + 64]
    assert bytes(data[:64]) != bytes(64)


def test_at_once_runs_every_job_together():
    barrier = threading.Barrier(3, timeout=10)
    seconds = concurrent.at_once([barrier.wait] * 3)
    assert seconds < 10  # a job run alone would wait for the others


def _summary(curl_tmpfs):
    fig = downloads.figures(_rates(tmpfs_curl=curl_tmpfs))
    return suite.summarize({'throughput': fig}, stats.NOISE_THRESHOLD)


def test_a_quiet_run_judges_every_target():
    results = _summary([2000.0, 2100.0])
    assert results['noisy'] == []
    assert results['targets']['tmpfs_vs_limit']['noisy'] is False
    assert 'within 15%' in report.table(results)


def test_a_noisy_baseline_makes_the_figures_it_divides_unjudgeable():
    # curl into tmpfs 383-892 MB/s between rounds (seen with another
    # process busy).
    results = _summary([383.0, 892.0])
    assert results['noisy'] == ['tmpfs_vs_limit']
    assert results['noise']['tmpfs_curl'] == pytest.approx(509 / 637.5)
    assert results['targets']['tmpfs_vs_limit']['noisy'] is True
    assert results['targets']['disk_vs_limit']['noisy'] is False
    text = report.table(results)
    assert 'TOO NOISY TO JUDGE tmpfs_vs_limit' in text
    assert 'tmpfs_curl' in text and '80%' in text


def test_the_table_prints_each_figure_with_its_spread_and_limit():
    text = report.table(_summary([2000.0, 2000.0]))
    line = next(x for x in text.splitlines() if 'min(sha512, curl)' in x)
    assert '[0.90-0.95]' in line
    assert 'limit 1000 MB/s' in line


def test_the_dedupe_target_allows_the_joiners_one_byte_check():
    fig = harness.Figures(values={'dedupe_extra_kib_per_joiner': 1 / 1024})
    results = suite.summarize({'dedupe': fig}, 0.15)
    assert results['targets']['dedupe_extra_kib_per_joiner']['met'] is True


def test_targets_of_sections_not_run_are_left_out():
    results = _summary([2000.0, 2000.0])
    assert 'upload_vs_curl' not in results['targets']
    assert set(targets.evaluate({'upload_vs_curl': 0.5})) == {'upload_vs_curl'}


def test_only_runs_the_sections_named():
    args = suite.parse(['out', '--only', 'latency, upload'])
    assert args.only == ['latency', 'upload']
    with pytest.raises(SystemExit):
        suite.parse(['out', '--only', 'nothing'])
