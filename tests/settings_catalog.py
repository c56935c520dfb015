"""Every settings class our packages define, and the variables each reads."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path

from pydantic_settings import BaseSettings

PACKAGES = ["api_server", "callback_server", "mock_ai_server", "leo_mesh", "leo_client", "devstack"]


# A module that defines a settings class: one whose base's name ends in
# "Settings" (BaseSettings, or a settings class of ours).
DEFINES_SETTINGS = re.compile(r"^class \w+\([\w.]*Settings\b", re.M)


@functools.cache
def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class our packages define (the modules that define one imported)."""
    for package in PACKAGES:
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            spec = importlib.util.find_spec(module.name)
            source = Path(spec.origin) if spec and spec.origin else None
            if source and source.suffix == ".py" and DEFINES_SETTINGS.search(source.read_text()):
                importlib.import_module(module.name)
    found, todo = set(), [BaseSettings]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.split(".")[0] in PACKAGES and sub not in found:
                found.add(sub)
                todo.append(sub)
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def env_name(settings_class: type[BaseSettings], field: str) -> str:
    """The environment variable a field of the class is read from."""
    return (settings_class.model_config.get("env_prefix", "") + field).upper()


def env_names(settings_class: type[BaseSettings]) -> list[str]:
    return [env_name(settings_class, field) for field in settings_class.model_fields]
