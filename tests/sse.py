"""Server-sent events as the watch route writes them through Envoy."""

from __future__ import annotations

import json


def sse_events(lines) -> list[dict]:
    """The JSON of each event's data. Every event is a `retry:`, an `id:` (the
    data's eventId) and a `data:` line, then a blank line (tests/e2e/test_event_stream.py)."""
    events, fields = [], {}
    for line in lines:
        if line == "":
            assert list(fields) == ["retry", "id", "data"], fields
            data = json.loads(fields["data"])
            assert data["eventId"] == fields["id"]
            events.append(data)
            fields = {}
            continue
        name, _, value = line.partition(": ")
        assert name in ("retry", "id", "data") and name not in fields, line
        fields[name] = value
    assert not fields, f"event not followed by a blank line: {fields}"
    return events
