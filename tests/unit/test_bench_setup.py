"""The bench's own setup: Envoy's rate limits raised, load generators found."""

from __future__ import annotations

import pytest
import yaml

from bench.stacks import raise_envoy_rate_limits
from bench.tools import missing_packages
from leo_mesh.devstack import envoy


def _buckets(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from [value] if key == "token_bucket" else _buckets(value)
    elif isinstance(node, list):
        for item in node:
            yield from _buckets(item)


def test_every_token_bucket_of_the_project_config_is_raised():
    rendered = envoy.render()
    assert list(_buckets(yaml.safe_load(rendered))), "the project's Envoy config has a rate limit to raise"
    raised = yaml.safe_load(raise_envoy_rate_limits(rendered, tokens_per_s=5000))
    buckets = list(_buckets(raised))
    assert buckets
    assert all(bucket == {"max_tokens": 5000, "tokens_per_fill": 5000, "fill_interval": "1s"} for bucket in buckets)


def test_the_rest_of_the_config_is_kept():
    rendered = yaml.safe_load(envoy.render(listen_port=1234))
    raised = yaml.safe_load(raise_envoy_rate_limits(envoy.render(listen_port=1234)))
    assert raised["static_resources"]["clusters"] == rendered["static_resources"]["clusters"]
    assert (
        raised["static_resources"]["listeners"][0]["address"] == rendered["static_resources"]["listeners"][0]["address"]
    )


def test_a_config_without_rate_limit_is_refused():
    with pytest.raises(ValueError, match="no token_bucket"):
        raise_envoy_rate_limits("admin: {}\nstatic_resources: {listeners: []}\n")


def test_missing_packages_names_the_debian_package_of_each_missing_command():
    assert missing_packages(lambda command: None) == ["nghttp2-client", "wrk"]
    assert missing_packages(lambda command: f"/usr/bin/{command}") == []
    assert missing_packages(lambda command: None if command == "wrk" else "/usr/bin/h2load") == ["wrk"]
