"""The bench's own setup: Envoy's rate limits raised, load generators found."""

from __future__ import annotations

import yaml

from bench.stacks import UNCAPPED_RATE_LIMITS, UNCAPPED_RPS
from bench.tools import PACKAGES
from devstack.machine import missing_packages
from leo_mesh import envoy_config as envoy


def _buckets(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from [value] if key == "token_bucket" else _buckets(value)
    elif isinstance(node, list):
        for item in node:
            yield from _buckets(item)


def test_the_bench_settings_raise_every_token_bucket_of_the_project_config():
    default = list(_buckets(yaml.safe_load(envoy.render())))
    assert default and all(bucket["max_tokens"] < UNCAPPED_RPS for bucket in default)
    raised = list(_buckets(yaml.safe_load(envoy.render(envoy.EnvoySettings.from_env(UNCAPPED_RATE_LIMITS)))))
    assert len(raised) == len(default)
    assert all(bucket["max_tokens"] == UNCAPPED_RPS == bucket["tokens_per_fill"] for bucket in raised)


def test_missing_packages_names_the_debian_package_of_each_missing_command():
    assert missing_packages(PACKAGES, lambda command: None) == ["nghttp2-client", "wrk"]
    assert missing_packages(PACKAGES, lambda command: f"/usr/bin/{command}") == []
    assert missing_packages(PACKAGES, lambda command: None if command == "wrk" else "/usr/bin/h2load") == ["wrk"]
