"""Generates gen/ from protos/ and lints the contracts.

  python tools/protos.py gen [OUT]   regenerate gen/ (or OUT) from protos/
  python tools/protos.py lint        buf lint (STANDARD, COMMENTS) on protos/
  python tools/protos.py breaking [REV]
                                     buf breaking on protos/ against git REV (main)

What gen/ holds besides the Python code (docs/clients.md says how to use them):
  include/         the googleapis protos that protos/ imports (and
                   google/rpc/error_details.proto, which error details
                   need), copied from the installed googleapis-common-protos
                   package: with it, `-I protos -I gen/include` compiles
                   with any toolchain (the google/protobuf ones ship with each)
  leo-api.binpb    descriptor set of the public API with its imports and
                   google/rpc/error_details.proto (Envoy's transcoder,
                   grpcurl -protoset, buf curl --schema)
  leo-internal.binpb  the same for the internal services (AI, callback)
  openapi.json     the JSON API's OpenAPI spec (tools/openapi.py)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc
from openapi import build_openapi

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"
# buf reads a descriptor set by its extension: .binpb.
PUBLIC_DESCRIPTOR_NAME = "leo-api.binpb"
INTERNAL_DESCRIPTOR_NAME = "leo-internal.binpb"
OPENAPI_NAME = "openapi.json"
INCLUDE_NAME = "include"
# The packages of the public contract (./contract ships their Python code).
PUBLIC_PACKAGES = ("leo.generation.", "leo.api.")
# Not imported by our protos, but whoever reads an error needs it: Envoy's
# transcoder (or converted errors lose their BadRequest details) and clients
# that decode grpc-status-details-bin.
ERROR_PROTOS = ["google/rpc/error_details.proto", "google/rpc/status.proto"]
# Protos every toolchain ships itself (protoc's include, buf, protobufjs).
WELL_KNOWN_PREFIX = "google/protobuf/"


def googleapis_root() -> Path:
    """The site-packages folder holding google/api/*.proto."""
    import google.api

    return Path(next(iter(google.api.__path__))).parent.parent


def wkt_root() -> Path:
    return Path(str(resources.files("grpc_tools") / "_proto"))


def our_protos(protos: Path = PROTOS) -> list[str]:
    return sorted(str(p.relative_to(protos)) for p in protos.rglob("*.proto"))


def run_protoc(args: list[str], protos: Path = PROTOS) -> None:
    includes = [f"-I{protos}", f"-I{googleapis_root()}", f"-I{wkt_root()}"]
    code = protoc.main(["protoc", *includes, *args])
    if code != 0:
        raise SystemExit(f"protoc failed ({code}): {args}")


def descriptor_set(files: list[str], protos: Path = PROTOS) -> descriptor_pb2.FileDescriptorSet:
    """files and everything they import, dependencies first."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.binpb"
        run_protoc([f"--descriptor_set_out={out}", "--include_imports", *files], protos)
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def public_protos(protos: Path = PROTOS) -> list[str]:
    """Our protos of the public contract's packages."""
    ours = our_protos(protos)
    found = descriptor_set(ours, protos).file
    return sorted(f.name for f in found if f.name in ours and f"{f.package}.".startswith(PUBLIC_PACKAGES))


def googleapis_imports(protos: Path = PROTOS) -> list[str]:
    """The googleapis protos that our protos import (directly or not), and ERROR_PROTOS."""
    ours = set(our_protos(protos))
    found = descriptor_set([*ours, *ERROR_PROTOS], protos).file
    return sorted(f.name for f in found if f.name not in ours and not f.name.startswith(WELL_KNOWN_PREFIX))


def generate(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = our_protos()
    # Typed stubs by mypy-protobuf: messages (*_pb2.pyi) and services (*_pb2_grpc.pyi).
    plugins = [f"--plugin=protoc-gen-{name}={_venv_tool(f'protoc-gen-{name}')}" for name in ("mypy", "mypy_grpc")]
    run_protoc(
        [
            *plugins,
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
            *files,
        ]
    )
    public = public_protos()
    internal = [name for name in files if name not in public]
    for target, inputs in ((PUBLIC_DESCRIPTOR_NAME, [*public, *ERROR_PROTOS]), (INTERNAL_DESCRIPTOR_NAME, internal)):
        run_protoc([f"--descriptor_set_out={out / target}", "--include_imports", *inputs])
    copy_googleapis(out / INCLUDE_NAME)
    write_openapi(public, out / OPENAPI_NAME)


def copy_googleapis(target: Path, protos: Path = PROTOS) -> None:
    """The googleapis protos ours need, as the installed package has them, under target."""
    for name in googleapis_imports(protos):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(googleapis_root() / name, target / name)


def write_openapi(files: list[str], target: Path, protos: Path = PROTOS) -> None:
    """The OpenAPI spec, from a descriptor set with comments (the published ones have none)."""
    with tempfile.TemporaryDirectory() as tmp:
        commented = Path(tmp) / PUBLIC_DESCRIPTOR_NAME
        run_protoc([f"--descriptor_set_out={commented}", "--include_imports", "--include_source_info", *files], protos)
        spec = build_openapi(descriptor_pb2.FileDescriptorSet.FromString(commented.read_bytes()))
    target.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")


def _venv_tool(name: str) -> str:
    """A command installed beside this Python (the project's .venv), else on PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or name


def _buf() -> str:
    return _venv_tool("buf")


def _workspace(root: Path, protos: Path) -> Path:
    """A buf workspace at `root` laid out as the repository (buf.yaml's
    modules): a copy of `protos` and of the googleapis protos it imports."""
    shutil.copytree(protos, root / "protos")
    copy_googleapis(root / GEN.name / INCLUDE_NAME, protos)
    shutil.copy(ROOT / "buf.yaml", root / "buf.yaml")
    return root


def lint(protos: Path = PROTOS) -> int:
    """buf lint (buf.yaml: STANDARD and COMMENTS) of the contracts."""
    with tempfile.TemporaryDirectory() as tmp:
        work = _workspace(Path(tmp), protos)
        return subprocess.run([_buf(), "lint", "protos"], cwd=work).returncode


def breaking(against: str = "main", protos: Path = PROTOS) -> int:
    """buf breaking (FILE rules) of the contracts against their version at
    the git revision `against`."""
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", against, "protos"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        _workspace(old, Path(tmp) / "protos")
        work = _workspace(Path(tmp) / "new", protos)
        return subprocess.run([_buf(), "breaking", "protos", "--against", str(old / "protos")], cwd=work).returncode


def main(argv: list[str]) -> int:
    if argv[:1] == ["gen"]:
        generate(Path(argv[1]) if len(argv) > 1 else GEN)
        return 0
    if argv[:1] == ["lint"]:
        return lint()
    if argv[:1] == ["breaking"]:
        return breaking(*argv[1:2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
