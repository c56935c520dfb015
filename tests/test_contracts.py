"""The contracts: buf lint is clean and gen/ is what `make gen` makes."""

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tree(path: Path) -> dict[str, Path]:
    return {str(p.relative_to(path)): p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_buf_lint_standard_is_clean():
    result = subprocess.run([sys.executable, ROOT / "tools/protos.py", "lint"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_catches_a_violation(tmp_path, monkeypatch):
    """The lint run really lints: a badly named enum value fails it."""
    sys.path.insert(0, str(ROOT / "tools"))
    import protos

    bad = tmp_path / "protos"
    subprocess.run(["cp", "-r", ROOT / "protos", bad], check=True)
    proto = bad / "leo/ai/v1/ai.proto"
    proto.write_text(proto.read_text().replace("MODEL_SD = 1;", "SD = 1;"))
    monkeypatch.setattr(protos, "PROTOS", bad)
    assert protos.lint() != 0


def test_gen_matches_protos(tmp_path):
    fresh = tmp_path / "gen"
    subprocess.run([sys.executable, ROOT / "tools/protos.py", "gen", fresh], check=True)
    committed, made = _tree(ROOT / "gen"), _tree(fresh)
    assert sorted(committed) == sorted(made), "gen/ has other files than `make gen` makes; run make gen"
    stale = [name for name in made if not filecmp.cmp(made[name], committed[name], shallow=False)]
    assert not stale, f"gen/ is stale, run `make gen`: {stale}"


def test_descriptor_set_has_what_envoy_needs():
    from google.protobuf import descriptor_pb2

    files = descriptor_pb2.FileDescriptorSet.FromString((ROOT / "gen/descriptor.pb").read_bytes())
    names = {f.name for f in files.file}
    assert {"leo/generation/v1/generation.proto", "google/rpc/error_details.proto", "google/api/http.proto"} <= names
