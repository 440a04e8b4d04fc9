"""GlanceImageService with ``auth_strategy = noauth`` against a real Glance.

The deployment's ``glance-noauth`` server trusts the identity headers the
client sends instead of a token (see tools/testenv/glance.py); the agent
then applies the token-less visibility rule itself
(``metadata.is_image_available``). Projects are made up: Glance has never
heard of them, and every test uses fresh ones, so listings filtered by
owner are exact.
"""

import contextlib
import datetime
import hashlib
import io
import os
import uuid

import pytest

from image_agent import context as ia_context
from image_agent import exception
from image_agent.image import glance
from tools.testenv.glance import NOAUTH_IMAGE_SIZE_CAP
from tools.testenv.util import http

DATA = os.urandom(1024 * 1024 + 7)
MEMBER_ROLES = ['member', 'reader']
ADMIN_ROLES = ['admin', 'member', 'reader']
# Glance's body as Glance sends it: the flags are the string "true", and
# absent when false.
STORES = {
    'stores': [
        {
            'id': 'fast',
            'description': 'Fast file store (default)',
            'default': 'true',
        },
        {'id': 'cheap', 'description': 'Cheap file store'},
        {
            'id': 'web',
            'description': 'Read-only HTTP store (locations on the test '
            'file server)',
            'read-only': 'true',
        },
    ]
}


def _context(project_id, roles=None, is_admin=False):
    return ia_context.RequestContext(
        user_id='user-' + project_id[:8],
        project_id=project_id,
        roles=list(MEMBER_ROLES if roles is None else roles),
        is_admin=is_admin,
        overwrite=False,
    )


def _not_found(image_id):
    return 'Image %s could not be found.' % image_id


@pytest.fixture
def noauth_config(config, deployment):
    """The agent talks to the trusting Glance only, without tokens."""
    config.config(auth_strategy='noauth')
    config.config(group='glance', api_servers=[deployment.noauth_glance_url])
    return config


@pytest.fixture
def service(noauth_config):
    return glance.GlanceImageService()


@pytest.fixture
def project_a():
    return _context(uuid.uuid4().hex)


@pytest.fixture
def project_b():
    return _context(uuid.uuid4().hex)


@pytest.fixture
def admin():
    return _context(uuid.uuid4().hex, roles=ADMIN_ROLES, is_admin=True)


@pytest.fixture
def make_image(service, admin):
    """Create images for a test; the admin deletes what is left."""
    created = []

    def make(context, data=None, **meta):
        meta.setdefault('name', 'noauth-' + uuid.uuid4().hex[:8])
        meta.setdefault('disk_format', 'raw')
        meta.setdefault('container_format', 'bare')
        stream = None if data is None else io.BytesIO(data)
        image = service.create(context, meta, data=stream)
        created.append(image['id'])
        return image

    yield make
    for image_id in created:
        with contextlib.suppress(exception.ImageNotFound):
            service.delete(admin, image_id)


class Members:
    """Image members over plain HTTP (the image service only lists them)."""

    def __init__(self, url):
        self.url = url

    @staticmethod
    def headers(context):
        return {
            'X-Identity-Status': 'Confirmed',
            'X-User-Id': context.user_id,
            'X-Project-Id': context.project_id,
            'X-Roles': ','.join(context.roles),
        }

    def add(self, owner, image_id, member):
        resp = http(
            'POST',
            '%s/v2/images/%s/members' % (self.url, image_id),
            headers=self.headers(owner),
            body={'member': member.project_id},
        )
        assert resp.status == 200, resp.body
        return resp.json()

    def set_status(self, member, image_id, status):
        resp = http(
            'PUT',
            '%s/v2/images/%s/members/%s'
            % (self.url, image_id, member.project_id),
            headers=self.headers(member),
            body={'status': status},
        )
        assert resp.status == 200, resp.body
        assert resp.json()['status'] == status

    def raw_show(self, context, image_id):
        """What Glance itself answers ``context`` for the image."""
        return http(
            'GET',
            '%s/v2/images/%s' % (self.url, image_id),
            headers=self.headers(context),
        ).status


@pytest.fixture
def members(deployment):
    return Members(deployment.noauth_glance_url)


def _ids(images):
    return [image['id'] for image in images]


# -- the whole life of an image -----------------------------------------------


def test_create_with_data_show_detail_download_and_delete(
    service, project_a, make_image
):
    created = make_image(
        project_a,
        data=DATA,
        name='noauth-life',
        visibility='private',
        properties={'purpose': 'noauth-test', 'drop_me': 'yes'},
    )
    image_id = created['id']
    assert created['status'] == 'active'
    assert created['name'] == 'noauth-life'
    assert created['owner'] == project_a.project_id
    assert created['visibility'] == 'private'
    assert created['size'] == len(DATA)
    assert created['virtual_size'] == len(DATA)
    assert created['os_hash_algo'] == 'sha512'
    assert created['os_hash_value'] == hashlib.sha512(DATA).hexdigest()
    assert created['checksum'] == hashlib.md5(DATA).hexdigest()  # noqa: S324
    assert created['stores'] == 'fast'
    assert created['properties'] == {
        'purpose': 'noauth-test',
        'drop_me': 'yes',
    }
    assert isinstance(created['created_at'], datetime.datetime)

    assert service.show(project_a, image_id) == created
    mine = {'owner': project_a.project_id}
    assert service.detail(project_a, filters=mine) == [created]

    sink = io.BytesIO()
    assert service.download(project_a, image_id, data=sink) is None
    assert sink.getvalue() == DATA
    assert b''.join(service.download(project_a, image_id)) == DATA

    # No service credentials are used without Keystone: the location comes
    # from the image body.
    direct_url, locations = service.get_location(project_a, image_id)
    assert direct_url == created['direct_url']
    assert direct_url.startswith('file://')
    assert locations == created['locations']

    assert service.delete(project_a, image_id) is True
    with pytest.raises(exception.ImageNotFound) as info:
        service.show(project_a, image_id)
    assert str(info.value) == _not_found(image_id)
    assert service.detail(project_a, filters=mine) == []
    with pytest.raises(exception.ImageNotFound) as info:
        service.delete(project_a, image_id)
    assert str(info.value) == _not_found(image_id)


def test_update_with_purge_props_keeps_only_the_named_properties(
    service, project_a, make_image
):
    made = make_image(
        project_a,
        properties={'purpose': 'old', 'drop_me': 'yes', 'also_drop': '1'},
    )
    updated = service.update(
        project_a,
        made['id'],
        {'name': 'renamed', 'properties': {'purpose': 'new', 'added': 'x'}},
        purge_props=True,
    )
    assert updated['name'] == 'renamed'
    assert updated['properties'] == {'purpose': 'new', 'added': 'x'}
    assert service.show(project_a, made['id']) == updated

    kept = service.update(
        project_a,
        made['id'],
        {'properties': {'another': 'y'}},
        purge_props=False,
    )
    assert kept['properties'] == {
        'purpose': 'new',
        'added': 'x',
        'another': 'y',
    }


def test_update_uploads_data_into_the_named_store(
    service, project_a, make_image
):
    made = make_image(project_a)
    assert made['status'] == 'queued'
    updated = service.update(
        project_a,
        made['id'],
        {},
        data=io.BytesIO(DATA),
        purge_props=False,
        store_id='cheap',
    )
    assert updated['status'] == 'active'
    assert updated['stores'] == 'cheap'
    assert updated['os_hash_value'] == hashlib.sha512(DATA).hexdigest()
    assert b''.join(service.download(project_a, made['id'])) == DATA


def test_get_stores(service, project_a):
    assert service.get_stores(project_a) == STORES


def test_list_members(service, project_a, project_b, make_image, members):
    made = make_image(project_a)
    assert service.list_members(project_a, made['id']) == []
    members.add(project_a, made['id'], project_b)
    listed = service.list_members(project_a, made['id'])
    assert [(m['image_id'], m['member_id'], m['status']) for m in listed] == [
        (made['id'], project_b.project_id, 'pending')
    ]
    assert set(listed[0]) == {
        'image_id',
        'member_id',
        'status',
        'created_at',
        'updated_at',
        'schema',
    }


def test_the_identity_headers_make_the_owner(service, make_image):
    user = _context(uuid.uuid4().hex)
    made = make_image(user)
    assert made['owner'] == user.project_id


def test_a_context_without_roles_may_not_list(service):
    nobody = ia_context.RequestContext(overwrite=False)
    with pytest.raises(exception.NotAuthorized) as info:
        service.detail(nobody)
    assert type(info.value) is exception.NotAuthorized
    assert str(info.value) == (
        '403 Forbidden: You are not authorized to complete get_images action.'
    )


# -- visibility between projects ----------------------------------------------


def test_private_image_of_a_is_not_found_for_b(
    service, project_a, project_b, make_image, members
):
    made = make_image(project_a, data=DATA, visibility='private')
    image_id = made['id']
    assert members.raw_show(project_b, image_id) == 404
    for call in (
        lambda: service.show(project_b, image_id),
        lambda: service.download(project_b, image_id),
        lambda: service.get_location(project_b, image_id),
        lambda: service.update(project_b, image_id, {'name': 'x'}),
        lambda: service.delete(project_b, image_id),
        lambda: service.list_members(project_b, image_id),
    ):
        with pytest.raises(exception.ImageNotFound) as info:
            call()
        assert str(info.value) == _not_found(image_id)
    assert image_id not in _ids(service.detail(project_b))
    assert (
        service.detail(project_b, filters={'owner': project_a.project_id})
        == []
    )
    # Untouched.
    assert service.show(project_a, image_id) == made


def test_shared_image_is_hidden_from_b_until_b_accepts(
    service, project_a, project_b, make_image, members
):
    made = make_image(project_a, data=DATA)
    image_id = made['id']
    assert made['visibility'] == 'shared'
    members.add(project_a, image_id, project_b)

    # Glance itself shows a pending share to the member; the agent's
    # member lookup hides it until it is accepted.
    assert members.raw_show(project_b, image_id) == 200
    for call in (
        lambda: service.show(project_b, image_id),
        lambda: service.download(project_b, image_id),
    ):
        with pytest.raises(exception.ImageNotFound) as info:
            call()
        assert str(info.value) == _not_found(image_id)
    everything = {'owner': project_a.project_id, 'member_status': 'all'}
    assert service.detail(project_b, filters=everything) == []
    # Only the image is hidden: B's own pending membership is listed (it is
    # what B accepts), and changes are Glance's to refuse.
    assert [
        (m['member_id'], m['status'])
        for m in service.list_members(project_b, image_id)
    ] == [(project_b.project_id, 'pending')]
    with pytest.raises(exception.ImageNotAuthorized) as info:
        service.delete(project_b, image_id)
    assert str(info.value) == 'Not authorized for image %s.' % image_id
    # The owner sees it whatever the member status.
    assert service.show(project_a, image_id) == made

    members.set_status(project_b, image_id, 'accepted')
    shown = service.show(project_b, image_id)
    assert shown == made
    assert service.detail(project_b, filters=everything) == [made]
    assert _ids(service.detail(project_b)).count(image_id) == 1
    assert b''.join(service.download(project_b, image_id)) == DATA
    # Seeing is not owning: Glance refuses a member's changes.
    with pytest.raises(exception.ImageNotAuthorized) as info:
        service.update(project_b, image_id, {'name': 'mine'})
    assert str(info.value) == 'Not authorized for image %s.' % image_id
    with pytest.raises(exception.ImageNotAuthorized):
        service.delete(project_b, image_id)

    members.set_status(project_b, image_id, 'rejected')
    with pytest.raises(exception.ImageNotFound) as info:
        service.show(project_b, image_id)
    assert str(info.value) == _not_found(image_id)
    assert service.detail(project_b, filters=everything) == []


def test_shared_image_is_not_found_for_a_project_that_is_no_member(
    service, project_a, project_b, make_image, members
):
    made = make_image(project_a)
    members.add(project_a, made['id'], project_b)
    members.set_status(project_b, made['id'], 'accepted')
    outsider = _context(uuid.uuid4().hex)
    with pytest.raises(exception.ImageNotFound) as info:
        service.show(outsider, made['id'])
    assert str(info.value) == _not_found(made['id'])


def test_community_image_is_visible_to_every_project(
    service, project_a, project_b, make_image
):
    made = make_image(project_a, visibility='community')
    assert service.show(project_b, made['id']) == made
    listed = service.detail(
        project_b,
        filters={'owner': project_a.project_id, 'visibility': 'community'},
    )
    assert listed == [made]


# -- admin --------------------------------------------------------------------


def test_admin_sees_and_changes_every_projects_images(
    service, project_a, project_b, admin, make_image, members
):
    private_a = make_image(project_a, data=DATA, visibility='private')
    private_b = make_image(project_b, visibility='private')
    pending = make_image(project_a)
    members.add(project_a, pending['id'], project_b)

    for made in (private_a, private_b, pending):
        assert service.show(admin, made['id']) == made
    listed = service.detail(
        admin, filters={'owner': project_a.project_id, 'sort_key': 'name'}
    )
    assert _ids(listed) == _ids(
        sorted([private_a, pending], key=lambda i: i['name'], reverse=True)
    )
    assert b''.join(service.download(admin, private_a['id'])) == DATA
    assert service.list_members(admin, pending['id'])[0]['member_id'] == (
        project_b.project_id
    )
    updated = service.update(
        admin,
        private_b['id'],
        {'properties': {'checked_by': 'admin'}},
        purge_props=True,
    )
    assert updated['properties'] == {'checked_by': 'admin'}
    assert updated['owner'] == project_b.project_id
    assert service.delete(admin, private_b['id']) is True
    with pytest.raises(exception.ImageNotFound):
        service.show(project_b, private_b['id'])


def test_public_image_of_the_admin_is_visible_to_every_project(
    service, admin, project_b, make_image
):
    made = make_image(admin, visibility='public')
    assert made['owner'] == admin.project_id
    assert service.show(project_b, made['id']) == made
    assert made['id'] in _ids(service.detail(project_b))
    # Publishing is the admin's privilege (Glance's default policy).
    with pytest.raises(exception.NotAuthorized) as info:
        make_image(project_b, visibility='public')
    assert type(info.value) is exception.NotAuthorized
    assert str(info.value) == (
        '403 Forbidden: You are not authorized to complete publicize_image '
        'action.'
    )


def test_admin_role_without_the_is_admin_flag_sees_other_projects_images(
    service, project_a, make_image, members
):
    made = make_image(project_a, visibility='private')
    admin_by_role = _context(uuid.uuid4().hex, roles=ADMIN_ROLES)
    assert admin_by_role.is_admin is False
    assert members.raw_show(admin_by_role, made['id']) == 200
    assert service.show(admin_by_role, made['id']) == made


# -- limits -------------------------------------------------------------------


def test_an_image_over_glances_size_cap_is_refused_and_not_kept(
    service, project_a
):
    """Glance answers 413; the new, empty image is not left behind."""
    name = 'too-big-' + uuid.uuid4().hex[:8]
    with pytest.raises(exception.ImageLimitExceeded) as info:
        service.create(
            project_a,
            {'name': name, 'disk_format': 'raw', 'container_format': 'bare'},
            data=io.BytesIO(b'\0' * (NOAUTH_IMAGE_SIZE_CAP + 1)),
        )
    assert 'limit exceeded' in str(info.value)
    assert service.detail(project_a, filters={'name': name}) == []
