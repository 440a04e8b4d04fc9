"""Glance client errors become image-agent exceptions, chained."""

from glanceclient import exc as glance_exc
import pytest

from image_agent import exception
from image_agent.image import errors

IMAGE_ID = '5b1c6e3a-0d4f-4d8e-9a51-7a3c2b1d0e9f'


def _raise_translated(error, image_id=None):
    with pytest.raises(exception.ImageAgentException) as excinfo:
        errors.reraise_translated(error, image_id)
    assert excinfo.value.__cause__ is error
    return excinfo.value


# -- calls on one image -------------------------------------------------------


@pytest.mark.parametrize(
    'error',
    [glance_exc.HTTPUnauthorized('no token'), glance_exc.HTTPForbidden('no')],
    ids=['401', '403'],
)
def test_image_call_401_403_is_image_not_authorized(error):
    translated = _raise_translated(error, IMAGE_ID)
    assert type(translated) is exception.ImageNotAuthorized
    assert str(translated) == f'Not authorized for image {IMAGE_ID}.'
    assert translated.code == 403


def test_image_call_404_is_image_not_found():
    translated = _raise_translated(glance_exc.HTTPNotFound('x'), IMAGE_ID)
    assert type(translated) is exception.ImageNotFound
    assert str(translated) == f'Image {IMAGE_ID} could not be found.'
    assert translated.code == 404


def test_image_call_400_is_invalid_with_glances_message():
    error = glance_exc.HTTPBadRequest('Invalid disk format "qcow3"')
    translated = _raise_translated(error, IMAGE_ID)
    assert type(translated) is exception.Invalid
    assert str(translated) == (
        'Unacceptable parameters: Invalid disk format "qcow3"'
    )
    assert translated.code == 400


def test_image_call_409_is_image_conflict():
    error = glance_exc.HTTPConflict('Image status transition from active')
    translated = _raise_translated(error, IMAGE_ID)
    assert type(translated) is exception.ImageConflict
    assert str(translated) == (
        f'Image {IMAGE_ID} is in a state that does not allow this request: '
        'Image status transition from active'
    )
    assert translated.code == 409


def test_image_call_413_is_image_limit_exceeded():
    error = glance_exc.HTTPOverLimit('quota of 1 GB')
    translated = _raise_translated(error, IMAGE_ID)
    assert type(translated) is exception.ImageLimitExceeded
    assert 'quota of 1 GB' in str(translated)


# -- calls on no one image ----------------------------------------------------


@pytest.mark.parametrize(
    'error',
    [glance_exc.HTTPUnauthorized('no token'), glance_exc.HTTPForbidden('no')],
    ids=['401', '403'],
)
def test_plain_call_401_403_is_not_authorized(error):
    translated = _raise_translated(error)
    assert type(translated) is exception.NotAuthorized
    assert str(translated) == error.details


def test_plain_call_404_is_not_found():
    translated = _raise_translated(glance_exc.HTTPNotFound('no stores API'))
    assert type(translated) is exception.NotFound
    assert str(translated) == 'no stores API'


def test_plain_call_400_is_invalid_with_glances_message():
    error = glance_exc.HTTPBadRequest('Invalid sort key: color')
    translated = _raise_translated(error)
    assert type(translated) is exception.Invalid
    assert (
        str(translated) == 'Unacceptable parameters: Invalid sort key: color'
    )


def test_plain_call_409_is_conflict():
    translated = _raise_translated(glance_exc.HTTPConflict('busy'))
    assert type(translated) is exception.Conflict
    assert str(translated) == 'Conflict: busy'


def test_an_error_without_details_names_its_class():
    translated = _raise_translated(glance_exc.HTTPBadRequest())
    assert str(translated) == 'Unacceptable parameters: HTTPBadRequest'


# -- everything else ----------------------------------------------------------


@pytest.mark.parametrize('image_id', [None, IMAGE_ID])
@pytest.mark.parametrize(
    'error',
    [
        glance_exc.CommunicationError('down'),
        ValueError('bug'),
    ],
    ids=lambda e: type(e).__name__,
)
def test_other_errors_are_reraised_unchanged(error, image_id):
    with pytest.raises(type(error)) as excinfo:
        errors.reraise_translated(error, image_id)
    assert excinfo.value is error


def test_translate_image_exception_returns_unknown_errors_as_they_are():
    error = RuntimeError('x')
    assert errors.translate_image_exception(IMAGE_ID, error) is error
    assert errors.translate_plain_exception(error) is error


def test_the_original_traceback_is_kept():
    def failing_call():
        raise glance_exc.HTTPNotFound('gone')

    try:
        failing_call()
    except glance_exc.HTTPNotFound as e:
        with pytest.raises(exception.ImageNotFound) as excinfo:
            errors.reraise_translated(e, IMAGE_ID)
    cause = excinfo.value.__cause__
    assert cause.__traceback__ is not None
    frames = []
    tb = cause.__traceback__
    while tb:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert 'failing_call' in frames


@pytest.mark.parametrize('image_id', [None, IMAGE_ID])
@pytest.mark.parametrize(
    ('error', 'expected'),
    [
        (glance_exc.HTTPInternalServerError('oops'), exception.GlanceError),
        (glance_exc.HTTPBadGateway('proxy'), exception.GlanceError),
        (glance_exc.HTTPException('odd'), exception.GlanceError),
        (glance_exc.HTTPMethodNotAllowed('no'), exception.Invalid),
    ],
    ids=lambda e: getattr(e, '__name__', type(e).__name__),
)
def test_other_http_answers_are_typed(error, expected, image_id):
    with pytest.raises(expected) as info:
        errors.reraise_translated(error, image_id)
    assert info.value.__cause__ is error
    assert type(info.value) is expected
