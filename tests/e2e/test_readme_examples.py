"""Every example of the README runs as printed and prints what the README
says, in a terminal that has only what the README's words give a reader:
the system's PATH, and the line `make run` printed, pasted first.

`make run` is the real one (`python -m devstack`, what `make run` runs once
set up), on free ports set through the variables the README documents; the
examples read its address from the pasted line, as they do on a reader's
machine with the default ports."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.make_run import MakeRun

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
FAST = {"MOCK_AI_MIN_DELAY_S": "0.2", "MOCK_AI_MAX_DELAY_S": "0.5"}
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
VIOLATION = "width must be a multiple of 8 from 64 to 2048 (or 0 for the default)"

# The README's runnable blocks, after the first (`make run`, `make test` themselves).
SETUP, *EXAMPLES = [(language, code) for language, code in re.findall(r"```(\w+)\n(.*?)```", README, re.S)]
RUNNABLE = [(language, code) for language, code in EXAMPLES if language in ("sh", "python")]


@dataclass
class Terminal:
    """A shell as a reader's, in which the line `make run` printed was pasted."""

    env: dict[str, str]
    pasted: str
    target: str  # LEO_API_TARGET, which the line sets

    def run(self, script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n{self.pasted}\n{script}"],
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )


def system_path() -> str:
    """This machine's PATH without the project's venv (which `make test` puts first)."""
    venv_bin = str(Path(sys.executable).parent)
    return os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if d and d != venv_bin)


@pytest.fixture(scope="module")
def terminal(make_run, tmp_path_factory) -> Terminal:
    run: MakeRun = make_run(FAST).start().wait_running()
    env = {"PATH": system_path(), "HOME": str(tmp_path_factory.mktemp("home")), "LANG": "C.UTF-8"}
    target = f"127.0.0.1:{run.env['ENVOY_LISTEN_PORT']}"
    return Terminal(env=env, pasted=run.paste_line(), target=target)


def json_documents(text: str) -> list:
    """The JSON documents printed one after another (with or without newlines between)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := _skip_space(text, at)) < len(text):
        document, at = decoder.raw_decode(text, at)
        found.append(document)
    return found


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


# --- what each example prints ---------------------------------------------


def json_api(out: str, cwd: Path, terminal: Terminal) -> None:
    created = json.loads((cwd / "created.json").read_text())["generation"]
    assert (created["status"], created["prompt"]) == ("STATUS_PENDING", "a lighthouse at dusk, oil painting")
    assert out.startswith((cwd / "created.json").read_text())
    events = [json.loads(event)["generation"] for event in re.findall(r"^data: (.*)$", out, re.M)]
    assert {event["generationId"] for event in events} == {created["generationId"]}
    assert [event["status"] for event in events[:-1]] == ["STATUS_PENDING"] * (len(events) - 1)
    assert events[-1]["status"] == "STATUS_COMPLETE" and events[-1]["progress"] == 100
    shown = [event["progress"] for event in events if "progress" in event]
    assert shown == sorted(shown) and shown[-1] == 100  # progress, once shown, only grows

    done = json.loads((cwd / "done.json").read_text())["generation"]
    assert (done["status"], done["progress"]) == ("STATUS_COMPLETE", 100)
    asset = done["assets"][0]
    assert re.fullmatch(
        rf"http://{terminal.target}/v1/generations/{created['generationId']}/assets/0\?expires=\d+&signature=\S+",
        asset["url"],
    )
    assert (asset["contentType"], asset["width"], asset["height"]) == ("image/png", 1024, 768)
    png = (cwd / "lighthouse.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) == int(asset["byteSize"])


def grpcurl(out: str, cwd: Path, terminal: Terminal) -> None:
    listed, described = out.split("\n", 3)[:3], out.split("\n", 3)[3]
    assert listed == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "leo.generation.v1.GenerationService",
    ]
    assert described.startswith("leo.generation.v1.GenerationService is a service:\nservice GenerationService {")
    assert "rpc CreateGeneration ( .leo.generation.v1.CreateGenerationRequest )" in described
    created, page = json_documents(described[described.index("\n}\n") + 3 :])
    assert (created["generation"]["status"], created["generation"]["prompt"]) == ("STATUS_PENDING", "a red fox in snow")
    assert 1 <= len(page["generations"]) <= 5
    assert created["generation"]["generation_id"] in {g["generation_id"] for g in page["generations"]}


def keys(out: str, cwd: Path, terminal: Terminal) -> None:
    header, row, rest = out.split("\n", 2)
    assert header.split() == ["PREFIX", "OWNER", "CREATED", "WEIGHT", "MAX_PRIORITY", "STATE"]
    prefix, owner, *_, weight, max_priority, state = row.split()
    assert (owner, weight, max_priority, state) == ("alice", "1", "normal", "live")
    assert re.fullmatch(r"leo_\S{8}", prefix)
    listed, refused = json_documents(rest)
    assert listed == {"generations": [], "nextPageToken": ""}
    assert refused["code"] == 16
    assert [d["reason"] for d in refused["details"]] == ["API_KEY_INVALID"]


def blocking_python(out: str, cwd: Path, terminal: Terminal) -> None:
    lines = out.splitlines()
    image = rf"http://{terminal.target}/v1/generations/({UUID})/assets/(\d)\?expires=\d+&signature=\S+ 1024 768"
    images = [re.fullmatch(image, line) for line in lines[:2]]
    assert all(images), lines[:2]
    generation_id = images[0][1]
    assert [m[2] for m in images if m] == ["0", "1"]
    assert lines[2:4] == [f"saved lighthouse/{generation_id}-0.png", f"saved lighthouse/{generation_id}-1.png"]
    assert sorted(p.name for p in (cwd / "lighthouse").iterdir()) == [
        f"{generation_id}-0.png",
        f"{generation_id}-1.png",
    ]
    states = [
        line for line in lines[4:] if re.fullmatch(r"(PENDING|COMPLETE|FAILED|CANCELLED) (None|\d+) (None|\d+)", line)
    ]
    assert states[-1] == "COMPLETE None 100" and all(s.startswith("PENDING ") for s in states[:-1])
    assert f"{generation_id} a lighthouse at dusk" in lines
    # The error example shows its error, and the README's comment says it.
    assert lines[-1] == VIOLATION and f"# {VIOLATION}" in README


def async_python(out: str, cwd: Path, terminal: Terminal) -> None:
    assert out == "['COMPLETE', 'COMPLETE', 'COMPLETE']\n"
    assert f"# {out.strip()}" in README


def command_line(out: str, cwd: Path, terminal: Terminal) -> None:
    [video] = (cwd / "videos").iterdir()
    assert video.suffix == ".webp"
    images = sorted(p.name for p in (cwd / "images").iterdir())
    generation_id = images[0].removesuffix("-0.png")
    assert images == [f"{generation_id}-0.png", f"{generation_id}-1.png"]
    [document] = [d for d in _json_lines(out) if "generation" in d]
    assert (document["generation"]["generationId"], document["generation"]["status"]) == (
        generation_id,
        "STATUS_COMPLETE",
    )
    assert re.search(rf"^{generation_id} .*a red fox in snow$", out, re.M)  # in `leo list`
    assert re.search(r"^whsec_\S+$", out, re.M)  # the new webhook secret


def _json_lines(out: str) -> list[dict]:
    """The documents of `--json` (from a line "{" to the line "}")."""
    return [json.loads(m) for m in re.findall(r"^\{\n.*?^\}$", out, re.M | re.S)]


CHECKS: dict[str, Callable[[str, Path, Terminal], None]] = {
    "curl -s -X POST": json_api,
    "grpcurl -plaintext": grpcurl,
    "KEY=$(python -m api_server.keys create": keys,
    "from leo_client import Client, InvalidArgument": blocking_python,
    "import asyncio": async_python,
    "leo generate": command_line,
}


def check_of(code: str) -> str:
    [name] = [name for name in CHECKS if code.startswith(name)]
    return name


def test_the_first_block_is_the_two_commands_and_every_other_example_is_checked():
    assert SETUP[1].startswith("make run ") and "make test " in SETUP[1]
    assert sorted(check_of(code) for _, code in RUNNABLE) == sorted(CHECKS)


def test_without_the_pasted_line_the_examples_cannot_run(terminal, tmp_path):
    bare = subprocess.run(
        ["bash", "-c", "command -v leo grpcurl; python3 -c 'import leo_client'"],
        env=terminal.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bare.stdout == ""
    assert "ModuleNotFoundError: No module named 'leo_client'" in bare.stderr


@pytest.mark.parametrize(("language", "code"), RUNNABLE, ids=[CHECKS[check_of(code)].__name__ for _, code in RUNNABLE])
def test_the_example_runs_as_printed_and_prints_what_the_readme_says(terminal, language, code, tmp_path):
    if language == "python":
        (tmp_path / "example.py").write_text(code)
        run = terminal.run("python example.py", tmp_path)
    else:
        run = terminal.run(code, tmp_path)
    assert run.returncode == 0, run.stderr
    CHECKS[check_of(code)](run.stdout, tmp_path, terminal)
