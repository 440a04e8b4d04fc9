"""Exceptions carry a message formatted from their keyword arguments."""

import pytest

from image_agent import exception


def test_message_is_msg_fmt_formatted_with_the_kwargs():
    error = exception.ImageNotFound(image_id='abc')
    assert str(error) == 'Image abc could not be found.'
    assert error.msg == 'Image abc could not be found.'
    assert error.kwargs == {'image_id': 'abc', 'code': 404}


def test_an_explicit_message_wins_over_msg_fmt():
    error = exception.NotFound('the stores API is off', reason='x')
    assert str(error) == 'the stores API is off'
    assert error.args == ('the stores API is off',)


def test_wrong_kwargs_keep_the_template_instead_of_crashing():
    error = exception.ImageNotFound(wrong='abc')
    assert str(error) == 'Image %(image_id)s could not be found.'


def test_kwargs_of_the_wrong_type_keep_the_template():
    error = exception.GlanceConnectionFailed(
        attempts='four', servers='s', reason='r'
    )
    assert str(error) == exception.GlanceConnectionFailed.msg_fmt


def test_base_class_has_a_generic_message():
    assert str(exception.ImageAgentException()) == (
        'An unknown exception occurred.'
    )


def test_code_defaults_to_the_class_code_and_can_be_given():
    assert exception.Invalid(reason='x').kwargs['code'] == 400
    assert exception.Invalid(reason='x', code=422).kwargs['code'] == 422


@pytest.mark.parametrize(
    ('cls', 'kwargs', 'message'),
    [
        (
            exception.ImageFormatMismatch,
            {'image_id': 'i', 'detected': 'qcow2', 'disk_format': 'raw'},
            'Image i is unacceptable: its content is qcow2 but its '
            'disk_format says raw.',
        ),
        (
            exception.ConversionLimitExceeded,
            {
                'image_id': 'i',
                'source_format': 'qcow2',
                'target_format': 'raw',
                'command': 'convert',
                'limit': 'CPU time',
            },
            'Could not convert image i from qcow2 to raw: qemu-img convert '
            'went past its CPU time limit ([agent] qemu_img_*).',
        ),
        (
            exception.ImageNotAuthorized,
            {'image_id': 'i'},
            'Not authorized for image i.',
        ),
        (
            exception.InvalidImageRef,
            {'image_href': 'ftp://x', 'reason': 'bad scheme'},
            'Invalid image href ftp://x: bad scheme',
        ),
        (
            exception.InvalidInput,
            {'reason': 'filters must be a dict'},
            'Invalid input received: filters must be a dict',
        ),
        (
            exception.InvalidConfigurationValue,
            {'option': '[glance] api_servers', 'value': 'x', 'reason': 'r'},
            'Value "x" is not valid for configuration option '
            '"[glance] api_servers": r',
        ),
        (
            exception.ImageConflict,
            {'image_id': 'i', 'reason': 'protected'},
            'Image i is in a state that does not allow this request: '
            'protected',
        ),
        (
            exception.ImageLimitExceeded,
            {'reason': 'quota'},
            'Image quota or size limit exceeded: quota',
        ),
        (
            exception.GlanceConnectionFailed,
            {'attempts': 4, 'servers': 'http://a, http://b', 'reason': 'r'},
            'Connection to Glance failed after 4 attempt(s) on '
            'http://a, http://b: r',
        ),
        (
            exception.GlanceServersNotFound,
            {'reason': 'none configured'},
            'No Glance API server is configured or can be found: '
            'none configured',
        ),
        (
            exception.ImageDownloadFailed,
            {'image_id': 'i', 'reason': 'image contains no data'},
            'Failed to download image i: image contains no data',
        ),
        (
            exception.ImageChecksumMismatch,
            {
                'image_id': 'i',
                'algorithm': 'md5',
                'actual': 'a',
                'expected': 'e',
            },
            'Image i failed verification: its md5 is a but Glance recorded e.',
        ),
        (
            exception.ImageUnacceptable,
            {'image_id': 'i', 'reason': 'too big'},
            'Image i is unacceptable: too big',
        ),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else '',
)
def test_every_message_names_what_went_wrong(cls, kwargs, message):
    assert str(cls(**kwargs)) == message


@pytest.mark.parametrize(
    ('cls', 'parent'),
    [
        (exception.ImageNotAuthorized, exception.NotAuthorized),
        (exception.ImageNotFound, exception.NotFound),
        (exception.InvalidImageRef, exception.Invalid),
        (exception.InvalidInput, exception.Invalid),
        (exception.InvalidConfigurationValue, exception.Invalid),
        (exception.ImageConflict, exception.Conflict),
        (exception.ImageChecksumMismatch, exception.ImageDownloadFailed),
    ],
)
def test_specific_errors_can_be_caught_as_their_general_kind(cls, parent):
    assert issubclass(cls, parent)
    assert issubclass(cls, exception.ImageAgentException)


def test_an_exception_can_be_rebuilt_from_its_message_and_kwargs():
    # oslo.messaging rebuilds a remote exception as cls(*args, **kwargs).
    original = exception.ImageNotFound(image_id='abc')
    rebuilt = exception.ImageNotFound(*original.args, **original.kwargs)
    assert str(rebuilt) == str(original)
    assert rebuilt.kwargs == original.kwargs
