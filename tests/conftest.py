"""The fixtures shared by the suites: the real deployment's, and the disk
image factory (``disk_images``) of the unit, functional and fault suites.

``pytest_plugins`` is honoured only in the top-level conftest, hence here.
The unit tests see the deployment's fixtures too, but a fixture is only
made for a test that asks for it, and none of them is autouse but the one
that stops a module's agents (nothing to stop there): no deployment,
broker or agent is started for the unit tests.
"""

pytest_plugins = [
    'tests.disk_images',
    'tests.functional.deployment_fixture',
    'tests.functional.agent_fixtures',
    'tests.functional.glance_fixtures',
]
