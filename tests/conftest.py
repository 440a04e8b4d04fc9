"""The fixtures shared by the suites that run against the real deployment.

``pytest_plugins`` is honoured only in the top-level conftest, hence here.
The unit tests see these fixtures too, but a fixture is only made for a
test that asks for it, and none of them is autouse but the one that stops
a module's agents (nothing to stop there): no deployment, broker or agent
is started for the unit tests.
"""

pytest_plugins = [
    'tests.functional.deployment_fixture',
    'tests.functional.agent_fixtures',
    'tests.functional.glance_fixtures',
]
