"""The contracts load in the mainstream toolchains from the repository alone:
protos/ plus the include set gen/include (the googleapis protos they import;
each toolchain ships google/protobuf itself), and the published descriptor
sets hold what they say (docs/clients.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from tests.nodejs import node_json

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import protos  # noqa: E402  (tools/protos.py, not a package)

PUBLIC_SET = ROOT / "gen" / protos.PUBLIC_DESCRIPTOR_NAME
INTERNAL_SET = ROOT / "gen" / protos.INTERNAL_DESCRIPTOR_NAME
INCLUDE = ROOT / "gen" / protos.INCLUDE_NAME


def _services(path: Path) -> set[str]:
    files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file
    return {f"{file.package}.{service.name}" for file in files for service in file.service}


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_protoc_compiles_the_protos_with_the_include_set_alone(tmp_path):
    """Copies of protos/ and gen/include, and protoc's own google/protobuf:
    nothing from an installed googleapis package. The result is the
    published descriptor set, byte for byte."""
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copytree(INCLUDE, tmp_path / "include")
    out = tmp_path / "api.binpb"
    inputs = [*protos.public_protos(), *protos.ERROR_PROTOS]
    well_known = resources.files("grpc_tools") / "_proto"  # protoc's own google/protobuf
    includes = [f"-I{tmp_path / 'protos'}", f"-I{tmp_path / 'include'}", f"-I{well_known}"]
    assert protoc.main(["protoc", *includes, f"--descriptor_set_out={out}", "--include_imports", *inputs]) == 0
    assert out.read_bytes() == PUBLIC_SET.read_bytes()
    internal = [name for name in protos.our_protos() if name not in protos.public_protos()]
    assert protoc.main(["protoc", *includes, f"--descriptor_set_out={out}", *internal]) == 0


def test_buf_builds_the_repository_as_it_is(tmp_path):
    """buf.yaml's modules (protos/, gen/include) resolve every import."""
    out = tmp_path / "image.binpb"
    subprocess.run([_bin("buf"), "build", "-o", str(out)], cwd=ROOT, check=True)
    names = {file.name for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file}
    assert set(protos.our_protos()) <= names


def test_protobufjs_loads_every_proto_as_a_node_service_does():
    """@grpc/proto-loader (protobufjs 7, as npm installs it) with protos/ and
    gen/include only; it failed on a list-valued option (`patterns: [{...}]`)."""
    files = [*protos.our_protos(), *protos.ERROR_PROTOS]
    request = {"includeDirs": [str(ROOT / "protos"), str(INCLUDE)], "files": files}
    found = set(node_json("load_protos.mjs", json.dumps(request)))
    assert {
        "leo.generation.v1.GenerationService",
        "leo.generation.v1.CreateGenerationRequest",
        "leo.api.v1.FieldRules",
        "leo.ai.v1.AIService",
        "leo.callback.v1.CallbackService",
        "google.rpc.BadRequest",
        "google.rpc.ErrorInfo",
    } <= found


def test_the_include_set_is_the_googleapis_files_the_protos_import():
    shipped = sorted(str(path.relative_to(INCLUDE)) for path in INCLUDE.rglob("*.proto"))
    assert shipped == protos.googleapis_imports()
    assert {"google/api/annotations.proto", "google/api/httpbody.proto", "google/rpc/error_details.proto"} <= set(
        shipped
    )
    assert not any(name.startswith("google/protobuf/") for name in shipped)  # every toolchain has those


def test_the_public_descriptor_set_holds_the_public_api_and_no_internal_service():
    assert _services(PUBLIC_SET) == {"leo.generation.v1.GenerationService"}
    assert _services(INTERNAL_SET) == {"leo.ai.v1.AIService", "leo.callback.v1.CallbackService"}
    listed = subprocess.run(
        [_bin("grpcurl"), "-protoset", str(PUBLIC_SET), "list"], capture_output=True, text=True, check=True
    )
    assert listed.stdout.split() == ["leo.generation.v1.GenerationService"]


def test_buf_reads_the_public_descriptor_set_by_its_extension(tmp_path):
    out = tmp_path / "image.json"
    subprocess.run([_bin("buf"), "build", str(PUBLIC_SET), "-o", str(out)], check=True)
    names = {file["name"] for file in json.loads(out.read_text())["file"]}
    assert {"leo/generation/v1/generation.proto", "google/rpc/error_details.proto"} <= names
