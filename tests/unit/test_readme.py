"""The README documents every setting the services read."""

from pathlib import Path

import pytest

from devstack.mesh import Ports
from tests.settings_catalog import env_names, settings_classes

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_settings_classes_are_found():
    names = {cls.__qualname__ for cls in settings_classes()}
    assert {
        "Settings",
        "WebhookSettings",
        "EnvoySettings",
        "DevStackSettings",
        "DatabaseSettings",
        "TracingSettings",
    } <= names


@pytest.mark.parametrize("settings_class", settings_classes(), ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_every_setting_is_in_the_readme(settings_class):
    missing = [name for name in env_names(settings_class) if f"`{name}`" not in README]
    assert not missing, f"add to the README's settings table: {missing}"


def test_the_two_commands_are_on_the_first_screen():
    first_screen = "\n".join(README.splitlines()[:25])
    assert "make run" in first_screen and "make test" in first_screen


def test_every_port_of_make_run_is_documented_as_read_by_it():
    rows = [line for line in README.splitlines() if line.startswith("| `")]
    for name in [*(name for name, _ in Ports().by_variable()), "EMBEDDED_POSTGRES_PORT"]:
        named = [row for row in rows if f"`{name}`" in row.split(" | ")[0]]
        assert named and all("`make run`" in row.split(" | ")[2] for row in named), name
