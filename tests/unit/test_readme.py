"""The README documents every setting the services read."""

from pathlib import Path

import pytest

from api_server.settings import Settings as ApiSettings
from api_server.settings import WebhookSettings
from callback_server.settings import Settings as CallbackSettings
from leo_mesh.devstack.envoy import EnvoySettings
from leo_mesh.media.settings import MediaSettings
from mock_ai_server.settings import Settings as MockAiSettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def env_names(settings_class) -> list[str]:
    prefix = settings_class.model_config.get("env_prefix", "")
    return [(prefix + name).upper() for name in settings_class.model_fields]


@pytest.mark.parametrize(
    "settings_class", [ApiSettings, WebhookSettings, CallbackSettings, MockAiSettings, EnvoySettings, MediaSettings]
)
def test_every_setting_is_in_the_readme(settings_class):
    missing = [name for name in env_names(settings_class) if f"`{name}`" not in README]
    assert not missing, f"add to the README's settings table: {missing}"


def test_the_two_commands_are_on_the_first_screen():
    first_screen = "\n".join(README.splitlines()[:25])
    assert "make run" in first_screen and "make test" in first_screen
