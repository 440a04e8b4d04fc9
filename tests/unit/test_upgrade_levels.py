"""[upgrade_levels] image_agent: a version, a release, or auto."""

import pytest

from image_agent import exception
from image_agent import upgrade_levels

ALIASES = {'2026.2': '1.1', 'hibiscus': '1.1'}


class TestResolve:
    @pytest.mark.parametrize('level', [None, '', '  '])
    def test_unset_is_no_cap(self, level):
        assert upgrade_levels.resolve(level, ALIASES) is None

    @pytest.mark.parametrize('level', ['1.0', '1.1', '2.12'])
    def test_a_version_is_itself(self, level):
        assert upgrade_levels.resolve(level, ALIASES) == level

    @pytest.mark.parametrize('level', ['2026.2', 'hibiscus', 'Hibiscus'])
    def test_a_release_is_its_version(self, level):
        assert upgrade_levels.resolve(level, ALIASES) == '1.1'

    @pytest.mark.parametrize('level', ['auto', 'AUTO', ' auto '])
    def test_auto(self, level):
        assert upgrade_levels.resolve(level, ALIASES) == upgrade_levels.AUTO

    @pytest.mark.parametrize('level', ['latest', '1', '1.x', 'zebra'])
    def test_anything_else_is_a_configuration_error(self, level):
        with pytest.raises(exception.InvalidConfigurationValue) as info:
            upgrade_levels.resolve(level, ALIASES)
        assert '[upgrade_levels] image_agent' in str(info.value)
        assert 'hibiscus' in str(info.value)


class TestAutoCap:
    @pytest.fixture
    def agents(self):
        """Versions the fake agents report, and the pings they answered."""
        return {'versions': {None: '1.1', 'old': '1.0', 'new': '1.1'}}

    @pytest.fixture
    def cap(self, agents):
        pings = agents['pings'] = []

        def probe(ctxt, host):
            pings.append((ctxt, host))
            return agents['versions'][host]

        return upgrade_levels.AutoCap(probe)

    def test_each_agent_is_asked_once(self, cap, agents):
        assert cap.cap('ctx', 'old') == '1.0'
        assert cap.cap('ctx', 'old') == '1.0'
        assert cap.cap('ctx', 'new') == '1.1'
        assert agents['pings'] == [('ctx', 'old'), ('ctx', 'new')]

    def test_any_agent_is_capped_at_the_lowest_version_seen(self, cap):
        assert cap.known() is None
        cap.cap('ctx', 'old')
        assert cap.known() is None  # the topic was not asked yet
        assert cap.cap('ctx') == '1.0'
        assert cap.known('new') is None

    def test_a_failed_ping_is_not_remembered(self, cap, agents):
        agents['versions'] = {}
        with pytest.raises(KeyError):
            cap.cap('ctx', 'gone')
        agents['versions'] = {'gone': '1.1'}
        assert cap.cap('ctx', 'gone') == '1.1'

    def test_a_version_reported_elsewhere_is_remembered(self, cap, agents):
        cap.remember('old', '1.0')
        assert cap.cap('ctx', 'old') == '1.0'
        assert agents['pings'] == []

    def test_reset_asks_again(self, cap, agents):
        cap.cap('ctx', 'old')
        cap.reset()
        agents['versions']['old'] = '1.1'
        assert cap.cap('ctx', 'old') == '1.1'

    def test_versions_compare_as_numbers(self):
        assert upgrade_levels.lowest(['1.10', '1.9', '2.0']) == '1.9'
