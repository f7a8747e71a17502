"""The public surface is exactly what wampweb.__all__ says, and nothing private leaks."""

from __future__ import annotations

import wampweb
import wampweb.testing

PUBLIC = {
    "DEFAULT_LISTEN",
    "BadRequestError",
    "BridgeKind",
    "BridgeMode",
    "BridgeResource",
    "BridgeSettings",
    "ComponentConfig",
    "ComponentFailedError",
    "ConfigError",
    "DeadlineError",
    "EmbeddedRouter",
    "ErrorAnswer",
    "ManagedComponent",
    "NoSessionError",
    "Operations",
    "RouterStartError",
    "ServerConfig",
    "Session",
    "SessionLostError",
    "SessionState",
    "SessionTracker",
    "WampWeb",
    "WampWebConfig",
    "WampWebError",
    "answer_for",
    "app_from_config",
    "config_from_flags",
    "load_config",
    "mount_bridge",
    "parse_config",
    "without_retry_chatter",
}


def test_all_lists_the_public_names() -> None:
    assert set(wampweb.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(wampweb, name) is not None


def test_every_error_is_a_wampweb_error() -> None:
    errors = [getattr(wampweb, name) for name in PUBLIC if name.endswith("Error")]
    for error in errors:
        assert issubclass(error, wampweb.WampWebError), error
    assert issubclass(wampweb.ConfigError, ValueError)


def test_testing_exports_its_fakes() -> None:
    assert set(wampweb.testing.__all__) == {
        "FakeComponent",
        "FakeSession",
        "Recorded",
        "stub_client",
    }
