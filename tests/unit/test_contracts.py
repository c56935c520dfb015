"""The contracts: buf lint is clean, nothing breaks what main published, and
gen/ is what `make gen` makes."""

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import protos  # noqa: E402  (tools/protos.py, not a package)


def _tree(path: Path) -> dict[str, Path]:
    return {str(p.relative_to(path)): p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_buf_lint_is_clean():
    result = subprocess.run([sys.executable, ROOT / "tools/protos.py", "lint"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def edited_protos(tmp_path: Path, old: str, new: str, file: str = "leo/generation/v1/generation.proto") -> Path:
    """A copy of protos/ with one edit in one file (the public API's by default)."""
    copy = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", copy)
    proto = copy / file
    assert old in proto.read_text()
    proto.write_text(proto.read_text().replace(old, new))
    return copy


def test_buf_lint_catches_a_violation(tmp_path):
    """The lint run really lints: a badly named enum value fails it."""
    assert protos.lint(edited_protos(tmp_path, "MODEL_SD = 1;", "SD = 1;")) != 0


def test_buf_lint_wants_a_comment_on_every_field_and_enum_value(tmp_path):
    """The COMMENTS rules: the comments are the spec's descriptions."""
    assert protos.lint(edited_protos(tmp_path, "  // How many frames the animation has; 0 for an image.\n", "")) != 0
    assert protos.lint(edited_protos(tmp_path / "2", "  // Stable Diffusion 1.5.\n", "")) != 0


def main_ref() -> str:
    """main as this clone knows it (a CI checkout may only have origin/main)."""
    for ref in ("main", "origin/main"):
        found = subprocess.run(["git", "-C", ROOT, "rev-parse", "--verify", "--quiet", ref], capture_output=True)
        if found.returncode == 0:
            return ref
    return "HEAD"


def test_no_breaking_change_against_main():
    result = subprocess.run(
        [sys.executable, ROOT / "tools/protos.py", "breaking", main_ref()], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_catches_a_removed_field(tmp_path):
    removed = edited_protos(tmp_path, "  int32 attempts = 8 [(google.api.field_behavior) = OUTPUT_ONLY];\n", "")
    assert protos.breaking("HEAD", removed) != 0


def test_the_internal_contracts_change_freely(tmp_path):
    """They ship with the services that speak them, in one image (buf.yaml)."""
    removed = edited_protos(tmp_path, "  string traceparent = 8;\n", "", file="leo/ai/v1/ai.proto")
    assert protos.breaking("HEAD", removed) == 0


def test_gen_matches_protos(tmp_path):
    fresh = tmp_path / "gen"
    subprocess.run([sys.executable, ROOT / "tools/protos.py", "gen", fresh], check=True)
    committed, made = _tree(ROOT / "gen"), _tree(fresh)
    assert sorted(committed) == sorted(made), "gen/ has other files than `make gen` makes; run make gen"
    stale = [name for name in made if not filecmp.cmp(made[name], committed[name], shallow=False)]
    assert not stale, f"gen/ is stale, run `make gen`: {stale}"


def test_descriptor_set_has_what_envoy_needs():
    from google.protobuf import descriptor_pb2

    files = descriptor_pb2.FileDescriptorSet.FromString((ROOT / "gen/leo-api.binpb").read_bytes())
    names = {f.name for f in files.file}
    assert {"leo/generation/v1/generation.proto", "google/rpc/error_details.proto", "google/api/http.proto"} <= names
