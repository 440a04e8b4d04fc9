"""resume: which server each attempt asks, and when a download stops.

The same rules over real HTTP are specified in ``test_fetch``
(``TestResume``).
"""

import pytest

from image_agent import exception
from image_agent.image import resume

IMAGE_ID = '5b1c6e3a-0d4f-4d8e-9a51-7a3c2b1d0e9f'


@pytest.fixture
def attempts(config):
    config.config(group='glance', retry_backoff_base=0, num_retries=2)
    servers = ['http://a', 'http://b']

    def next_server(avoid=()):
        return next(s for s in servers if s not in avoid)

    return resume.Attempts(next_server)


@pytest.mark.parametrize(
    'total, progress',
    [(None, resume.MIN_PROGRESS), (10**9, resume.MIN_PROGRESS), (160, 10)],
)
def test_min_progress_is_a_sixteenth_of_a_small_image(total, progress):
    assert resume.min_progress(total) == progress


def test_each_attempt_avoids_the_server_that_just_failed(attempts):
    assert [attempts.next(0), attempts.next(0), attempts.next(5)] == [
        'http://a',
        'http://b',
        'http://a',
    ]
    assert attempts.resumes == 1


def test_failures_without_progress_are_bounded(attempts):
    error = OSError('reset')
    attempts.next(0)
    attempts.fail(error, 0, IMAGE_ID)
    attempts.fail(error, 0, IMAGE_ID)
    with pytest.raises(exception.GlanceConnectionFailed):
        attempts.fail(error, 0, IMAGE_ID)


def test_progress_starts_a_new_count(attempts):
    error = OSError('reset')
    attempts.fail(error, 0, IMAGE_ID)
    attempts.fail(error, 0, IMAGE_ID)
    attempts.progressed(resume.MIN_PROGRESS, None)
    attempts.fail(error, resume.MIN_PROGRESS, IMAGE_ID)
    attempts.fail(error, resume.MIN_PROGRESS, IMAGE_ID)
    with pytest.raises(exception.ImageDownloadFailed) as info:
        attempts.fail(error, resume.MIN_PROGRESS, IMAGE_ID)
    assert 'broke off at byte %d' % resume.MIN_PROGRESS in str(info.value)


def test_resumes_are_bounded_however_far_each_got(attempts, config):
    config.config(group='glance', download_max_resumes=1)
    attempts.next(0)
    attempts.next(10)
    with pytest.raises(exception.ImageDownloadFailed) as info:
        attempts.fail(OSError('reset'), 10, IMAGE_ID)
    assert 'resumed 1 times already' in str(info.value)
