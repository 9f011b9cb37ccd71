"""Shared fixtures: real services (tests.services) and the in-process pipeline (tests.pipeline)."""

pytest_plugins = ["tests.services", "tests.pipeline", "tests.mta", "tests.dovecot"]


def pytest_generate_tests(metafunc):  # type: ignore[no-untyped-def]
    """`deployment_settings` (and so `pipeline`) runs each test once per deployment."""
    if "deployment_settings" in metafunc.fixturenames:
        from tests.pipeline import DEPLOYMENTS

        metafunc.parametrize("deployment_settings", DEPLOYMENTS, indirect=True)
