"""The README documents every setting the services read."""

import importlib
import pkgutil
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from devstack.mesh import Ports

PACKAGES = ["api_server", "callback_server", "mock_ai_server", "leo_mesh", "leo_client", "devstack"]


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class our packages define (each module imported)."""
    for package in PACKAGES:
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    found, todo = set(), [BaseSettings]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.split(".")[0] in PACKAGES and sub not in found:
                found.add(sub)
                todo.append(sub)
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def env_names(settings_class) -> list[str]:
    prefix = settings_class.model_config.get("env_prefix", "")
    return [(prefix + name).upper() for name in settings_class.model_fields]


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
