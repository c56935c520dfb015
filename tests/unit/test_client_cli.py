"""The parts of `leo` that need no server: arguments, help, completion, exit codes, one-line errors,
what a wait shows."""

from __future__ import annotations

import io
import uuid

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from rich.console import Console

from leo.generation.v1 import generation_pb2
from leo_client import ConnectionLost, Generation, GenerationFailed, WaitTimeout
from leo_client.cli import cli, main
from leo_client.cli.exits import CliFailure, ExitCode, exit_code, one_line
from leo_client.cli.output import Output
from leo_client.cli.progress import ProgressDisplay, changes
from leo_client.errors import ConfigurationError, MissingApiKey, from_status
from leo_client.following import Reconnected, Reconnecting


@pytest.fixture(autouse=True)
def no_client_settings(monkeypatch):
    for name in ("TARGET", "KEY", "TLS", "CA_FILE", "TIMEOUT_S"):
        monkeypatch.delenv(f"LEO_API_{name}", raising=False)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("size", ["big", "1024", "1024x", "0x768", "1024x-8", "12.5x8"])
def test_a_malformed_size_is_a_one_line_usage_error(capsys, size):
    code, out, err = run(capsys, "generate", "a fox", "--size", size)
    assert code == ExitCode.USAGE == 2
    assert out == ""
    assert err.count("\n") == 1 and "--size" in err and "WIDTHxHEIGHT" in err


def test_an_unknown_model_is_a_usage_error(capsys):
    code, _, err = run(capsys, "generate", "a fox", "--model", "dalle")
    assert code == 2 and err.count("\n") == 1 and "--model" in err


def test_a_missing_argument_says_where_help_is(capsys):
    code, _, err = run(capsys, "get")
    assert code == 2 and err.count("\n") == 1 and "leo get --help" in err


def test_no_api_key_exits_3_before_any_call(capsys):
    code, _, err = run(capsys, "list")
    assert code == ExitCode.AUTH == 3
    assert err.count("\n") == 1 and "LEO_API_KEY" in err


def command_paths(group=cli, prefix=("leo",)):
    for name, command in group.commands.items():
        path = (*prefix, name)
        if hasattr(command, "commands"):
            yield from command_paths(command, path)
        else:
            yield path


@pytest.mark.parametrize("path", list(command_paths()), ids=" ".join)
def test_every_command_has_help_with_an_example(capsys, path):
    code, out, _ = run(capsys, *path[1:], "--help")
    assert code == 0
    assert "Example" in out and " ".join(path) in out


@pytest.mark.parametrize("path", [p for p in command_paths() if p[1] != "completion"], ids=" ".join)
def test_every_api_command_takes_json(capsys, path):
    _, out, _ = run(capsys, *path[1:], "--help")
    assert "--json" in out


def test_top_level_help_lists_commands_and_exit_codes(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("generate", "get", "list", "watch", "cancel", "webhook-secret", "completion"):
        assert command in out
    listed = {line.split()[0] for line in out.split("Exit codes:")[1].splitlines() if line.strip()}
    assert listed == {str(code.value) for code in ExitCode}


@pytest.mark.parametrize("shell, marker", [("bash", "complete "), ("zsh", "compdef"), ("fish", "complete ")])
def test_completion_scripts_come_from_click(capsys, shell, marker):
    code, out, _ = run(capsys, "completion", shell)
    assert code == 0 and "_LEO_COMPLETE" in out and marker in out


def generation(status: int, **fields) -> Generation:
    return Generation.from_proto(generation_pb2.Generation(generation_id="g-1", status=status, **fields))


@pytest.mark.parametrize(
    "error, code",
    [
        (GenerationFailed(generation(generation_pb2.STATUS_FAILED, failure_reason="x")), ExitCode.GENERATION_FAILED),
        (WaitTimeout(generation(generation_pb2.STATUS_PENDING), 5), ExitCode.TIMEOUT),
        (MissingApiKey("no key"), ExitCode.AUTH),
        (ConfigurationError("bad"), ExitCode.USAGE),
        (from_status(grpc.StatusCode.INVALID_ARGUMENT, "bad"), ExitCode.USAGE),
        (from_status(grpc.StatusCode.UNAUTHENTICATED, "who"), ExitCode.AUTH),
        (from_status(grpc.StatusCode.PERMISSION_DENIED, "no"), ExitCode.AUTH),
        (from_status(grpc.StatusCode.NOT_FOUND, "gone"), ExitCode.NOT_FOUND),
        (from_status(grpc.StatusCode.UNAVAILABLE, "down"), ExitCode.UNAVAILABLE),
        (from_status(grpc.StatusCode.DEADLINE_EXCEEDED, "slow"), ExitCode.UNAVAILABLE),
        (from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy"), ExitCode.RATE_LIMITED),
        (from_status(grpc.StatusCode.FAILED_PRECONDITION, "done"), ExitCode.CONFLICT),
        (from_status(grpc.StatusCode.ALREADY_EXISTS, "used"), ExitCode.CONFLICT),
        (from_status(grpc.StatusCode.INTERNAL, "oops"), ExitCode.ERROR),
        (CliFailure("db down", ExitCode.UNAVAILABLE), ExitCode.UNAVAILABLE),
    ],
)
def test_exit_codes(error, code):
    assert exit_code(error) is code


def test_field_errors_are_one_line_naming_each_field_and_rule():
    violations = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="width", description="must be a multiple of 8"),
            error_details_pb2.BadRequest.FieldViolation(field="prompt", description="is required\nand not blank"),
        ]
    )
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="invalid request")
    status.details.add().Pack(violations)
    line = one_line(from_status(grpc.StatusCode.INVALID_ARGUMENT, "invalid request", status))
    assert line == "invalid request: width: must be a multiple of 8; prompt: is required and not blank"


def test_rate_limits_say_when_to_retry():
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromSeconds(3)
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="too many pending")
    status.details.add().Pack(retry)
    assert one_line(from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many pending", status)) == (
        "too many pending (retry after 3 s)"
    )


# --- what a wait shows ---


def pending(**fields) -> Generation:
    return generation(generation_pb2.STATUS_PENDING, **fields)


QUEUED, STARTING, RUNNING = generation_pb2.PHASE_QUEUED, generation_pb2.PHASE_STARTING, generation_pb2.PHASE_RUNNING


@pytest.mark.parametrize(
    "before, after, said",
    [
        (pending(attempts=1, progress=30, phase=RUNNING), pending(attempts=1, progress=40, phase=RUNNING), []),
        (pending(phase=QUEUED, queue_position=3), pending(attempts=1, phase=STARTING), []),  # the first dispatch
        (pending(attempts=1, phase=STARTING), pending(attempts=1, progress=10, phase=RUNNING), []),
        (
            pending(attempts=1, progress=30, phase=RUNNING),
            pending(attempts=2, phase=STARTING),
            ["re-dispatched", "progress reset (was 30%)"],
        ),
        (
            pending(attempts=1, progress=30, phase=RUNNING),
            pending(attempts=1, phase=QUEUED, queue_position=4),
            ["progress reset (was 30%)", "queued again"],
        ),
        (pending(attempts=1, progress=30), generation(generation_pb2.STATUS_COMPLETE, attempts=2, progress=100), []),
    ],
)
def test_a_state_says_what_happened_that_its_fields_alone_do_not(before, after, said):
    assert changes(before, after) == said


def test_connection_events_are_plain_lines_that_say_why_and_which_try(capsys):
    out = Output()
    with ProgressDisplay(out, live=False, lines=out.line, notes=out.note) as display:
        display.update(pending(attempts=1, progress=30, phase=RUNNING))
        refused = from_status(grpc.StatusCode.UNAVAILABLE, "failed to connect;\n Connection refused")
        display.connection(Reconnecting(error=refused, attempt=3, delay_s=1.2, gives_up_in_s=51.6))
        display.connection(Reconnected(attempts=3, outage_s=8.4))
        display.update(pending(attempts=1, phase=QUEUED, queue_position=1))
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith("g-1  PENDING  attempt 1  running  30%  ")
    assert captured.out.splitlines()[1].startswith(
        "g-1  PENDING  attempt 1  queued, place 1  progress reset (was 30%), queued again  "
    )
    reconnecting, reconnected = captured.err.splitlines()
    assert reconnecting.startswith(
        "g-1  reconnecting, try 3 (API unavailable: failed to connect; Connection refused);"
        " next in 1.2 s, giving up in 52 s  "
    )
    assert reconnected.startswith("g-1  reconnected after 8.4 s (3 tries)  ")


def test_the_live_note_says_the_reconnect_with_what_the_state_after_it_showed():
    out = Output()
    out.err = Console(file=io.StringIO(), force_terminal=True, width=100)
    refused = from_status(
        grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; last error: Connection refused"
    )
    with ProgressDisplay(out, live=True) as display:
        display.update(pending(attempts=1, progress=30, phase=RUNNING))
        display.connection(Reconnecting(error=refused, attempt=2, delay_s=0.5, gives_up_in_s=58))
        assert display.note == "reconnecting, try 2 (API unavailable: Connection refused)"
        display.connection(Reconnected(attempts=2, outage_s=3.2))
        display.update(pending(attempts=1, phase=QUEUED, queue_position=1))
        assert display.note == "reconnected after 3.2 s (2 tries); progress reset (was 30%), queued again"
        display.update(pending(attempts=1, progress=10, phase=RUNNING))
        assert display.note.startswith("reconnected after 3.2 s")  # nothing new to say
        display.update(pending(attempts=3, phase=STARTING))
        assert display.note == "re-dispatched, progress reset (was 10%)"


def test_a_stopped_display_shows_nothing_more(capsys):
    """Ctrl-C stops it before asking whether to cancel: what the wait still
    reports must not be written over the question."""
    out = Output()
    with ProgressDisplay(out, live=False, lines=out.note, notes=out.note) as display:
        display.update(pending(attempts=1, progress=30))
        display.stop()
        display.update(pending(attempts=1, progress=60))
        display.connection(Reconnected(attempts=1, outage_s=1))
        display.update(generation(generation_pb2.STATUS_COMPLETE, attempts=1, progress=100))
    (line,) = capsys.readouterr().err.splitlines()
    assert "30%" in line


def test_watch_with_the_api_down_exits_5_without_reconnecting(capsys, monkeypatch):
    """As every other command does: the channel's own retries, then exit 5
    (not a wait that spins until --timeout, exit 8)."""
    monkeypatch.setenv("LEO_API_KEY", "leo_key")
    code, out, err = run(capsys, "--target", "127.0.0.1:1", "watch", str(uuid.uuid4()), "--timeout", "60")
    assert code == ExitCode.UNAVAILABLE == 5
    assert out == "" and err.count("\n") == 1
    assert "the API cannot be reached" in err and "Connection refused" in err and "reconnecting" not in err


def test_a_lost_connection_exits_5_and_says_how_to_follow_the_generation_again():
    refused = from_status(grpc.StatusCode.UNAVAILABLE, "Connection refused")
    lost = ConnectionLost(pending(attempts=1), refused, attempts=7, lost_for_s=61.2)
    assert exit_code(lost) is ExitCode.UNAVAILABLE
    assert one_line(lost) == (
        "lost the connection while following generation g-1: no answer for 61 s (7 tries);"
        " last error: UNAVAILABLE: Connection refused (the generation goes on; follow it with: leo watch g-1)"
    )
