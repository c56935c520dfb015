"""Reading h2load's and wrk's output, and the commands the bench gives them."""

from __future__ import annotations

import pytest

from bench.calls import fixed_rate_split
from bench.loadgen import (
    H2load,
    LoadGeneratorError,
    LoadResult,
    Wrk,
    grpc_frame,
    parse_h2load,
    parse_h2load_log,
    parse_wrk_report,
)
from leo.generation.v1 import generation_pb2

# What h2load 1.52 prints for a timed run (trimmed progress lines).
H2LOAD_OUTPUT = """\
starting benchmark...
Application protocol: h2c
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 4.00s, 4119.33 req/s, 683.19KB/s
requests: 12358 total, 12358 started, 12358 done, 12300 succeeded, 58 failed, 0 errored, 0 timeout
status codes: 12300 2xx, 0 3xx, 0 4xx, 58 5xx
traffic: 2.00MB (2098767) total, 46.55KB (47667) headers (space savings 96.20%), 1.65MB (1726360) data
                     min         max         mean         sd        +/- sd
time for request:      314us     51.27ms     31.08ms      6.61ms    77.10%
"""


def test_h2load_summary_counts():
    counts = parse_h2load(H2LOAD_OUTPUT)
    assert counts["total"] == 12358
    assert counts["succeeded"] == 12300
    assert counts["failed"] == 58
    assert counts["s2xx"] == 12300
    assert counts["s5xx"] == 58


def test_h2load_without_summary_is_an_error():
    with pytest.raises(LoadGeneratorError, match="no summary"):
        parse_h2load("connect to 127.0.0.1:1 failed\nNo protocol negotiated\n")


def test_h2load_log_latencies_of_2xx_only():
    log = "1795989428314580\t200\t30229\n1795989428314825\t503\t1500\n1795989428315084\t-1\t0\n\n"
    latencies, others = parse_h2load_log(log)
    assert latencies == [30.229]
    assert others == 2


def test_wrk_report_line_is_found_among_wrk_output():
    output = (
        "Running 2s test @ http://127.0.0.1:8080/v1/generations\n"
        "  1 threads and 32 connections\n"
        "Requests/sec:   1060.00\n"
        'BENCH_JSON {"requests":2120,"duration_us":2000123,"errors":{"connect":0,"read":0,"write":0,'
        '"status":3,"timeout":0},"latency_us":{"p50":25300,"p99":101000,"mean":26000.5,"max":150000}}\n'
    )
    report = parse_wrk_report(output)
    assert report["requests"] == 2120
    assert report["errors"]["status"] == 3
    assert report["latency_us"]["p99"] == 101000


def test_wrk_without_report_is_an_error():
    with pytest.raises(LoadGeneratorError, match="no report"):
        parse_wrk_report("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_grpc_frame_is_flag_length_and_message():
    message = generation_pb2.CreateGenerationRequest(prompt="a red fox")
    frame = grpc_frame(message)
    assert frame[0] == 0
    length = int.from_bytes(frame[1:5], "big")
    assert length == len(frame) - 5
    assert generation_pb2.CreateGenerationRequest.FromString(frame[5:]) == message


def test_h2load_timed_command_has_durations_in_milliseconds():
    load = H2load(url="http://127.0.0.1:1/x", clients=16, streams=8, duration_s=2.5, warmup_s=0.5)
    command = load.command(body_path="/tmp/body", log_path="/tmp/log")
    assert command[command.index("-D") + 1] == "2500ms"
    assert command[command.index("--warm-up-time") + 1] == "500ms"
    assert command[command.index("-d") + 1] == "/tmp/body"
    assert command[-1] == "http://127.0.0.1:1/x"
    assert "-n" not in command


def test_h2load_fixed_rate_http1_command():
    load = H2load(url="http://h/", clients=4, requests=100, rps=7, http1=True, headers={"te": "trailers"})
    command = load.command(body_path=None, log_path="/tmp/log")
    assert command[command.index("-n") + 1] == "100"
    assert command[command.index("--rps") + 1] == "7"
    assert "--h1" in command
    assert command[command.index("-H") + 1] == "te: trailers"
    assert "-D" not in command and "-d" not in command


def test_h2load_needs_a_duration_or_a_count():
    with pytest.raises(ValueError, match="duration or a request count"):
        H2load(url="http://h/", clients=1).command(body_path=None, log_path="/tmp/log")


def test_wrk_command_uses_the_report_script():
    command = Wrk(url="http://h/v1/generations", connections=32, duration_s=4, headers={"a": "b"}).command()
    assert command[command.index("-c") + 1] == "32"
    assert command[command.index("-d") + 1] == "4s"
    assert command[command.index("-s") + 1].endswith("wrk_report.lua")
    assert command[-1] == "http://h/v1/generations"


def test_load_result_rate_and_latency():
    result = LoadResult(
        tool="h2load", succeeded=50, failed=0, duration_s=2.0, latencies_ms=[float(i) for i in range(101)]
    )
    assert result.rate == 25.0
    assert result.latency() == (50.0, 99.0)
    assert LoadResult(tool="wrk", succeeded=1, failed=0, duration_s=1, p50_ms=3.0, p99_ms=9.0).latency() == (3.0, 9.0)


@pytest.mark.parametrize(
    ("rate", "max_clients", "expected"),
    [
        (28.5, 16, (14, 2)),
        (5, 16, (5, 1)),
        (1296, 16, (16, 81)),
        (0.4, 16, (1, 1)),
        (512, 64, (64, 8)),
        (557, 64, (63, 9)),
    ],
)
def test_fixed_rate_is_split_into_whole_rates_per_client(rate, max_clients, expected):
    assert fixed_rate_split(rate, max_clients) == expected


def test_h2load_gives_up_after_its_own_time_and_a_minute_or_at_ten_requests_a_second():
    assert H2load(url="http://h/", clients=1, duration_s=4, warmup_s=1).time_limit_s() == 65
    assert H2load(url="http://h/", clients=1, requests=10_000).time_limit_s() == 1060
