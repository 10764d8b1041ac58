"""Shared pytest settings."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long run (e.g. training to the accuracy bar); skip with -m 'not slow'")
