"""`leo` as people and scripts run it: a subprocess against the real mesh.
A failed generation's exit: tests/integration/test_client_following.py (the flow in
process, its mock AI failing every generation)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from tests.clients import json_client

LEO = str(Path(sys.executable).parent / "leo")
FAST = {"MOCK_AI_MIN_DELAY_S": "0.2", "MOCK_AI_MAX_DELAY_S": "0.5"}
# Anything but a newline that a terminal would interpret (ESC included).
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env={**FAST, "WEBHOOK_ALLOW_PRIVATE_URLS": "true"})


@pytest.fixture(scope="module")
def slow_mesh(make_mesh):
    """Generations stay PENDING for the whole of a test."""
    return make_mesh(env={"MOCK_AI_MIN_DELAY_S": "120", "MOCK_AI_MAX_DELAY_S": "150"})


def cli_env(mesh, key: str | None, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LEO_API_")}
    env.pop("DATABASE_URL", None)
    env.update(LEO_API_TARGET=f"127.0.0.1:{mesh.ports.envoy}", **extra)
    if key:
        env["LEO_API_KEY"] = key
    return env


def leo(mesh, key: str | None, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run `leo` with its output on pipes (not a terminal)."""
    return subprocess.run(
        [LEO, *args],
        env=cli_env(mesh, key, **extra),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def one_line(text: str) -> bool:
    return text.endswith("\n") and text.count("\n") == 1


def status_of(database_url: str, generation_id: str) -> str:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            'SELECT status::text FROM generations WHERE "generationId" = %s', (generation_id,)
        ).fetchone()[0]


def new_key(mesh) -> str:
    """The key of a new owner, who has no generations yet."""
    return mesh.create_api_key(f"cli-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def key(mesh):
    return new_key(mesh)


def test_generate_wait_json_prints_the_complete_generation_as_the_http_api_does(mesh, key):
    run = leo(mesh, key, "generate", "a lighthouse at dusk", "--model", "sd", "--size", "512x768", "--wait", "--json")
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    generation = document["generation"]
    assert generation["status"] == "STATUS_COMPLETE" and generation["model"] == "MODEL_SD"
    assert (generation["width"], generation["height"]) == (512, 768) and generation["images"]
    with json_client(mesh, key) as http:
        # The generation as GetGeneration's answer has it (beside it, that answer has a watch link).
        assert document == {
            "generation": http.get(f"/v1/generations/{generation['generationId']}").json()["generation"]
        }


def test_generate_wait_out_saves_the_images(mesh, key, tmp_path):
    run = leo(mesh, key, "generate", "a lighthouse", "--size", "128x64", "--wait", "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    files = sorted((tmp_path / "out").iterdir())
    generation_id = UUID.search(run.stdout)[0]
    assert [f.name for f in files] == [f"{generation_id}-0.png", f"{generation_id}-1.png"]
    for file in files:
        assert f"saved {file}" in run.stderr
        picture = Image.open(file)
        assert (picture.format, picture.size) == ("PNG", (128, 64))


def test_generate_video_out_saves_the_animation_and_get_out_saves_it_again(mesh, key, tmp_path):
    run = leo(mesh, key, "generate", "a whale", "--kind", "video", "--size", "96x64", "--out", str(tmp_path), "-q")
    assert run.returncode == 0, run.stderr
    generation_id = run.stdout.strip()
    saved = tmp_path / f"{generation_id}-0.webp"
    animation = Image.open(saved)
    assert (animation.format, animation.size, animation.is_animated) == ("WEBP", (96, 64), True)
    assert animation.n_frames == 16  # MOCK_AI_VIDEO_FRAMES' default
    again = leo(mesh, key, "get", generation_id, "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / saved.name).read_bytes() == saved.read_bytes()
    assert "KIND_VIDEO" not in again.stdout and "VIDEO" in again.stdout and "16 frames" in again.stdout


def test_quiet_prints_the_id_for_get_watch_and_list(mesh, key):
    created = leo(mesh, key, "generate", "a red fox in snow", "-q")
    assert created.returncode == 0 and UUID.fullmatch(created.stdout.strip())
    generation_id = created.stdout.strip()
    watched = leo(mesh, key, "watch", generation_id, "--json")
    assert watched.returncode == 0
    states = [json.loads(line)["generation"] for line in watched.stdout.splitlines()]
    assert states[-1]["status"] == "STATUS_COMPLETE" and {s["generationId"] for s in states} == {generation_id}
    got = leo(mesh, key, "get", generation_id, "--json")
    assert json.loads(got.stdout)["generation"] == states[-1]


def test_list_prints_a_table(mesh):
    key = new_key(mesh)
    ids = [leo(mesh, key, "generate", f"listed {i}", "-q").stdout.strip() for i in range(3)]
    table = leo(mesh, key, "list")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "MODEL", "SIZE", "CREATED", "PROMPT"]
    assert [row.split()[0] for row in rows] == ids[::-1]
    assert all("SDXL" in row and "1024x1024" in row and "listed" in row for row in rows)
    assert len(leo(mesh, key, "list", "--limit", "2").stdout.splitlines()) == 3
    listed = json.loads(leo(mesh, key, "list", "--json").stdout)["generations"]
    assert [g["generationId"] for g in listed] == ids[::-1]


@pytest.mark.parametrize(
    "size, names",
    [("big", "--size"), ("1024x", "--size"), ("1000x770", "height"), ("4096x1024", "width")],
)
def test_a_bad_size_exits_2_with_one_line(mesh, key, size, names):
    run = leo(mesh, key, "generate", "a fox", "--size", size)
    assert run.returncode == 2
    assert run.stdout == "" and one_line(run.stderr) and names in run.stderr
    assert leo(mesh, key, "list", "--json").stdout.count("generationId") == 0


def test_a_field_error_names_the_field_and_the_rule(mesh, key):
    run = leo(mesh, key, "generate", "a fox", "--size", "1000x770")
    assert "height: must be a multiple of 8 from 64 to 2048" in run.stderr
    as_json = leo(mesh, key, "generate", "a fox", "--size", "1000x770", "--json")
    status = json.loads(as_json.stdout)
    assert as_json.returncode == 2 and status["code"] == 3
    assert status["details"][0]["fieldViolations"][0]["field"] == "height"


def test_a_wrong_key_exits_3(mesh):
    run = leo(mesh, "leo_not_a_key", "list")
    assert run.returncode == 3 and one_line(run.stderr) and "API key" in run.stderr


def test_no_key_exits_3(mesh):
    run = leo(mesh, None, "list")
    assert run.returncode == 3 and one_line(run.stderr) and "LEO_API_KEY" in run.stderr


def test_not_found_exits_4_and_unreachable_exits_5(mesh, key):
    missing = leo(mesh, key, "get", "00000000-0000-4000-8000-000000000404")
    assert missing.returncode == 4 and one_line(missing.stderr) and "not found" in missing.stderr
    away = leo(mesh, key, "--target", "127.0.0.1:1", "--rpc-timeout", "3", "list")
    assert away.returncode == 5 and one_line(away.stderr) and "LEO_API_TARGET" in away.stderr


def test_output_that_is_not_a_terminal_has_no_control_characters(mesh, key):
    generated = leo(mesh, key, "generate", "a kite over the dunes", "--size", "640x480", "--wait")
    generation_id = UUID.search(generated.stdout)[0]
    runs = [
        generated,
        leo(mesh, key, "list"),
        leo(mesh, key, "get", generation_id),
        leo(mesh, key, "watch", generation_id),
        leo(mesh, key, "cancel", generation_id),  # exits 7: already COMPLETE
    ]
    for run in runs:
        assert not CONTROL.search(run.stdout + run.stderr), (run.args, run.stdout + run.stderr)
    assert generated.returncode == 0
    assert "COMPLETE" in generated.stdout and "640x480" in generated.stdout
    assert f"{generation_id}  PENDING" in generated.stderr  # progress, one line per state
    assert runs[-1].returncode == 7 and one_line(runs[-1].stderr)


def test_cancel_and_give_up_waiting(slow_mesh):
    key = new_key(slow_mesh)
    generation_id = leo(slow_mesh, key, "generate", "never finished", "-q").stdout.strip()
    cancelled = leo(slow_mesh, key, "cancel", generation_id, "--json")
    assert cancelled.returncode == 0
    assert json.loads(cancelled.stdout)["generation"]["status"] == "STATUS_CANCELLED"
    again = leo(slow_mesh, key, "cancel", generation_id)
    assert again.returncode == 7 and "already CANCELLED" in again.stderr
    waited = leo(slow_mesh, key, "generate", "too slow", "--wait", "--timeout", "1", "--json")
    assert waited.returncode == 8
    assert json.loads(waited.stdout)["generation"]["status"] == "STATUS_PENDING"


def test_ctrl_c_with_cancel_on_interrupt_cancels(slow_mesh):
    key = new_key(slow_mesh)
    process = subprocess.Popen(
        [LEO, "generate", "interrupted", "--wait", "--cancel-on-interrupt"],
        env=cli_env(slow_mesh, key),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first_state = process.stderr.readline()  # "ID  PENDING …": it is waiting
    generation_id = UUID.search(first_state)[0]
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 130
    assert f"cancelled {generation_id}" in rest
    assert status_of(slow_mesh.database_url, generation_id) == "CANCELLED"


def read_until(fd: int, pattern: re.Pattern[str], timeout_s: float = 60) -> str:
    """Read a terminal's output until `pattern` shows up in it."""
    seen = ""
    deadline = time.monotonic() + timeout_s
    while not pattern.search(seen):
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern.pattern!r} not shown; the terminal showed {seen!r}")
        if select.select([fd], [], [], 0.5)[0]:
            seen += os.read(fd, 65536).decode(errors="replace")
    return seen


def test_ctrl_c_on_a_terminal_offers_to_cancel(slow_mesh):
    key = new_key(slow_mesh)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [LEO, "generate", "asked about", "--wait"],
        env=cli_env(slow_mesh, key, TERM="xterm-256color", COLUMNS="120"),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    try:
        read_until(controller, re.compile(r"PENDING"))  # the live progress line
        process.send_signal(signal.SIGINT)
        question = read_until(controller, re.compile(r"Cancel generation (\S+)\? \[y/N\]"))
        generation_id = UUID.search(question.split("Cancel generation")[-1])[0]
        os.write(controller, b"y\n")
        read_until(controller, re.compile(f"cancelled {generation_id}"))
        assert process.wait(60) == 130
    finally:
        process.kill()
        os.close(controller)
    assert status_of(slow_mesh.database_url, generation_id) == "CANCELLED"


def test_webhook_secret_and_a_webhook(mesh, key):
    rotated = leo(mesh, key, "webhook-secret", "rotate", "--json")
    assert rotated.returncode == 0 and json.loads(rotated.stdout)["secret"].startswith("whsec_")
    hooked = leo(mesh, key, "generate", "hooked", "--webhook", "http://127.0.0.1:9/hook", "--json")
    assert json.loads(hooked.stdout)["generation"]["webhookUrl"] == "http://127.0.0.1:9/hook"


def test_options_win_over_the_environment(mesh, key):
    run = leo(mesh, "leo_not_a_key", "--target", f"127.0.0.1:{mesh.ports.envoy}", "--api-key", key, "list")
    assert run.returncode == 0
