"""The daemon under test is started by the Rust integration test
(tests/python_package.rs: ``warden serve --demo`` with a TCP token) and named here by
environment variables. Run by hand: start such a daemon and set them yourself."""

import os

import pytest


def _need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests through `cargo test --test integration python_package::`")
    return value


@pytest.fixture
def unix_target() -> str:
    return _need("WARDEN_CONNECT")


@pytest.fixture
def tcp_target() -> str:
    return _need("WARDEN_TEST_TCP")


@pytest.fixture
def tcp_token() -> str:
    return _need("WARDEN_TEST_TOKEN")
