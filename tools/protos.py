"""Generates gen/ from protos/ and lints the contracts.

  python tools/protos.py gen [OUT]   regenerate gen/ (or OUT) from protos/
  python tools/protos.py lint        buf lint (STANDARD, COMMENTS) on protos/
  python tools/protos.py breaking [REV]
                                     buf breaking on protos/ against git REV (main)

The googleapis protos come from the installed googleapis-common-protos
package; nothing is fetched and nothing of theirs is copied into git.
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
DESCRIPTOR_NAME = "descriptor.pb"
OPENAPI_NAME = "openapi.json"
# google/rpc/error_details.proto is not imported by our protos but must be in
# Envoy's descriptor set, or converted errors lose their BadRequest details.
EXTRA_DESCRIPTOR_INPUTS = ["google/rpc/error_details.proto", "google/rpc/status.proto"]
# What buf needs of googleapis to resolve our imports.
GOOGLEAPIS_FOR_BUF = [
    "google/api/annotations.proto",
    "google/api/http.proto",
    "google/api/field_behavior.proto",
    "google/api/httpbody.proto",
    "google/rpc/status.proto",
]


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
    run_protoc(
        [
            f"--descriptor_set_out={out / DESCRIPTOR_NAME}",
            "--include_imports",
            *files,
            *EXTRA_DESCRIPTOR_INPUTS,
        ]
    )
    write_openapi(files, out / OPENAPI_NAME)


def write_openapi(files: list[str], target: Path, protos: Path = PROTOS) -> None:
    """The OpenAPI spec, from a descriptor set with comments (descriptor.pb has none)."""
    with tempfile.TemporaryDirectory() as tmp:
        commented = Path(tmp) / DESCRIPTOR_NAME
        run_protoc([f"--descriptor_set_out={commented}", "--include_imports", "--include_source_info", *files], protos)
        spec = build_openapi(descriptor_pb2.FileDescriptorSet.FromString(commented.read_bytes()))
    target.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")


def _venv_tool(name: str) -> str:
    """A command installed beside this Python (the project's .venv), else on PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or name


def _buf() -> str:
    return _venv_tool("buf")


def _workspace(root: Path, protos: Path) -> Path:
    """A buf workspace at `root`: a copy of `protos` and the googleapis
    protos it imports, laid beside it."""
    shutil.copytree(protos, root / "protos")
    for name in GOOGLEAPIS_FOR_BUF:
        target = root / "deps" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(googleapis_root() / name, target)
    (root / "buf.yaml").write_text(_workspace_config())
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


def _workspace_config() -> str:
    """The repository's buf.yaml plus a module for the googleapis copies."""
    config = (ROOT / "buf.yaml").read_text()
    return config.replace("  - path: protos\n", "  - path: protos\n  - path: deps\n", 1)


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
