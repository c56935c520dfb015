"""The docs (README.md and docs/**/*.md) name only what the repository has.

(a) What they write in backticks outside code blocks: a path (it has a `/`
or a file extension) exists in the repository; a dotted name of our
packages (`leo_mesh.rules.decide_creates`, `api_server.app:run`) or of a
class of ours (`GenerationStore.create`) resolves; an UPPER_SNAKE name is a
variable some settings class or code reads when it looks like one of ours
(`LEO_…`, `MOCK_AI_…`, …), otherwise a name the code has (an error reason,
an enum value, a constant). Relative links lead to a file that exists.

(b) Each settings table (a table with "variable" and "default" columns)
names only variables the settings classes read, each with its class's
default, and every setting of every class is in some table.

Every failure names the file, the line and what is missing.
"""

from __future__ import annotations

import ast
import enum
import fnmatch
import functools
import importlib
import inspect
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool
from opentelemetry.sdk import environment_variables as otel_variables
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from leo.ai.v1 import ai_pb2
from leo.callback.v1 import callback_pb2
from leo.generation.v1 import generation_pb2
from tests.settings_catalog import env_name, settings_classes

# Imported for their descriptors: proto names are looked up in the default pool.
PROTOS = (ai_pb2, callback_pb2, generation_pb2)

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# Directories of no file of the repository's own, beside those .gitignore lists.
NOT_OURS = {".git", "node_modules", "__pycache__"}
OUR_PACKAGES = {"leo_mesh", "api_server", "callback_server", "mock_ai_server", "devstack", "bench", "tools"}
OUR_PACKAGES |= {"leo_client", "leo_contract", "tests", "leo"}
# Variables with these prefixes are ours: a settings class or our code must read them.
ENV_PREFIXES = (
    "LEO_",
    "MOCK_AI_",
    "MEDIA_",
    "WEBHOOK_",
    "ENVOY_",
    "DISPATCH_",
    "WATCH_",
    "DB_",
    "OTEL_",
    "API_SERVER_",
    "CALLBACK_SERVER_",
    "EMBEDDED_POSTGRES_",
)
EXTENSIONS = (".py", ".md", ".yaml", ".yml", ".json", ".lua", ".toml", ".proto", ".binpb", ".env", ".png")
EXTENSIONS += (".html", ".css", ".js", ".mjs", ".ts", ".ini", ".txt", ".lock", ".sh", ".pyi")

# What the docs may write in backticks that is not in the repository, each
# with why. Compared with the whole backticked text.
# (Paths under a directory .gitignore lists, `.run/` or `.bench/`, are made
# at run time and need no entry.)
ALLOWED = {
    # Files the reader makes or keeps.
    "example.py": "the README's Python examples, saved by the reader",
    "generate.mjs": "docs/clients.md's Node example, saved by the reader",
    "database.env": "the production overlay's database URL, kept out of git",
    "postgres/": "make run's PostgreSQL data, inside the run directory",
    "logs/": "make run's logs, inside the run directory",
    # Another program's names.
    "google/protobuf": "the well-known protos protoc, buf and protobufjs ship",
    "google/protobuf/*": "the same",
    "ours/echo": "the bench's ratio of our figure to the echo's",
    "AWS_*": "boto3's own variables",
    "OTEL_BSP_*": "the OpenTelemetry SDK's batch span processor variables",
    "SETTINGS_INITIAL_WINDOW_SIZE": "an HTTP/2 setting (RFC 9113)",
}


# --- reading the docs ---


@dataclass(frozen=True)
class Span:
    doc: Path
    line: int
    text: str

    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def prose_lines(doc: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line outside fenced code blocks."""
    fence = None
    for number, line in enumerate(doc.read_text().splitlines(), start=1):
        marker = re.match(r"\s*(```+|~~~+)", line)
        if marker:
            if fence is None:
                fence = marker[1][:3]
            elif marker[1].startswith(fence):
                fence = None
            continue
        if fence is None:
            yield number, line


def paragraphs(doc: Path) -> Iterator[list[tuple[int, str]]]:
    """Runs of non-blank prose lines (a code span may go on to the next line)."""
    run: list[tuple[int, str]] = []
    for number, line in prose_lines(doc):
        if line.strip():
            run.append((number, line))
        elif run:
            yield run
            run = []
    if run:
        yield run


CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)


def spans(doc: Path) -> Iterator[Span]:
    for run in paragraphs(doc):
        text = "\n".join(line for _, line in run)
        starts = [0]
        for _, line in run[:-1]:
            starts.append(starts[-1] + len(line) + 1)
        for found in CODE_SPAN.finditer(text):
            offset = found.start()
            index = max(i for i, start in enumerate(starts) if start <= offset)
            yield Span(doc, run[index][0], " ".join(found[2].split()))


def links(doc: Path) -> Iterator[Span]:
    """The targets of relative Markdown links (no scheme, no pure anchor)."""
    for number, line in prose_lines(doc):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
                yield Span(doc, number, target.split("#")[0])


# --- what the repository has ---


@functools.cache
def ignored_directories() -> frozenset[str]:
    """The top-level directories .gitignore lists: made at run time."""
    lines = (ROOT / ".gitignore").read_text().splitlines()
    return frozenset(line.strip("/") for line in lines if re.fullmatch(r"/?\.?[\w.-]+/", line))


@functools.cache
def repo_files() -> frozenset[str]:
    """Every file and directory of the repository, relative to its root."""
    found = set()
    for directory, dirs, files in os.walk(ROOT):
        skipped = NOT_OURS | ignored_directories()
        dirs[:] = [d for d in dirs if d not in skipped and not d.endswith(".egg-info")]
        relative = Path(directory).relative_to(ROOT)
        if str(relative) != ".":
            found.add(str(relative))
        found.update(str(relative / name) for name in files)
    return frozenset(found)


def path_exists(text: str, base: Path) -> bool:
    """A path of the repository: from its root, from the doc's directory, or
    the tail of one (`base/envoy/render.env`, named inside deploy/k8s)."""
    path = text.rstrip("/")
    if path.split("/")[0] in ignored_directories():
        return True
    if "*" in path:
        return any(fnmatch.fnmatch(name, path) or fnmatch.fnmatch(name, f"*/{path}") for name in repo_files())
    local = os.path.normpath(base.relative_to(ROOT) / path)
    return path in repo_files() or local in repo_files() or any(name.endswith(f"/{path}") for name in repo_files())


def python_sources(*, tests: bool) -> Iterator[Path]:
    """Our Python files (gen/'s generated ones left out: proto names are
    looked up in the descriptors, and the protos' words read)."""
    for name in sorted(repo_files()):
        if name.endswith(".py") and not name.startswith("gen/") and (tests or not name.startswith("tests/")):
            yield ROOT / name


@functools.cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


@functools.cache
def code_strings() -> frozenset[str]:
    """Every string constant of the code (not the tests): span attribute
    names, metadata keys, reasons."""
    return frozenset(
        node.value
        for path in python_sources(tests=False)
        for node in ast.walk(parsed(path))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


@functools.cache
def code_words() -> frozenset[str]:
    """Every identifier, attribute and word of a string in the code (not the
    tests), and the words of the configs the code renders or ships."""
    words: set[str] = set()
    for path in python_sources(tests=False):
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Name):
                words.add(node.id)
            elif isinstance(node, ast.Attribute):
                words.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                words.update(re.findall(r"\w+", node.value))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                words.add(node.name)
    for config in ("envoy/envoy.yaml", "envoy/edge.lua", "Makefile", "compose.yaml", "Dockerfile"):
        words.update(re.findall(r"\w+", (ROOT / config).read_text()))
    for source in [*(ROOT / "protos").rglob("*.proto"), *(ROOT / "console").rglob("*.js")]:
        words.update(re.findall(r"\w+", source.read_text()))
    return frozenset(words)


@functools.cache
def reasons() -> frozenset[str]:
    """The ErrorInfo reasons the services and Envoy send."""
    from leo_mesh import status

    found = {reason for _, reason in status.ERROR_TABLE.values()} | {status.INTERNAL[1]}
    found.update(re.findall(r"reason: (\w+)", (ROOT / "envoy" / "envoy.yaml").read_text()))
    return frozenset(found)


def environ_reads(tree: ast.Module) -> Iterator[str]:
    """Variable names a module reads from (or sets in) os.environ directly."""
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def name_of(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and isinstance(constants.get(node.id), str):
            return constants[node.id]
        return None

    def is_environ(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            candidates = [node.slice]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            called = node.func
            if called.attr == "getenv" or (is_environ(called.value) and called.attr in ("get", "pop", "setdefault")):
                candidates = node.args[:1]
            elif is_environ(called.value) and called.attr == "update" and node.args:
                candidates = list(getattr(node.args[0], "keys", []))
            else:
                continue
        elif isinstance(node, ast.Dict) and any(
            key is None and is_environ(value) for key, value in zip(node.keys, node.values, strict=True)
        ):  # {**os.environ, "NAME": …}
            candidates = [key for key in node.keys if key is not None]
        else:
            continue
        yield from (name for name in map(name_of, candidates) if name)


@functools.cache
def known_variables() -> frozenset[str]:
    """Every environment variable a settings class, our code (tests
    included), the Makefile or the OpenTelemetry SDK reads."""
    names = {env_name(cls, field) for cls in settings_classes() for field in cls.model_fields}
    for path in python_sources(tests=True):
        if re.search(r"environ|getenv", path.read_text()):
            names.update(environ_reads(parsed(path)))
    names.update(re.findall(r"^(\w+)\s*[?:]?=", (ROOT / "Makefile").read_text(), re.M))
    names.update(value for name, value in vars(otel_variables).items() if name.startswith("OTEL_"))
    return frozenset(names)


@functools.cache
def our_classes() -> dict[str, list[str]]:
    """Class name → the modules of ours that define a class of that name."""
    found: dict[str, list[str]] = {}
    for path in python_sources(tests=False):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        module = module.removeprefix("sdk.").removeprefix("contract.")
        for node in parsed(path).body:
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(module)
    return found


def resolves(module: str, attributes: list[str]) -> bool:
    try:
        value = importlib.import_module(module)
    except ImportError:
        return False
    for attribute in attributes:
        if not hasattr(value, attribute):
            return False
        value = getattr(value, attribute)
    return True


def instance_attributes(cls: type) -> set[str]:
    """What `self.x = …` sets in the methods of a class of ours or its bases."""
    found: set[str] = set()
    for klass in cls.__mro__:
        source = Path(inspect.getsourcefile(klass) or "") if klass.__module__.split(".")[0] in OUR_PACKAGES else None
        if source is None or not source.is_file():
            continue
        for node in ast.walk(parsed(source)):
            if isinstance(node, ast.ClassDef) and node.name == klass.__name__:
                found.update(
                    target.attr
                    for target in ast.walk(node)
                    if isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                    and isinstance(target.ctx, ast.Store)
                )
    return found


def class_attribute_exists(module: str, attributes: list[str]) -> bool:
    """Class.attribute: on the class, or set on its instances."""
    if resolves(module, attributes):
        return True
    if len(attributes) != 2 or not resolves(module, attributes[:1]):
        return False
    cls = getattr(importlib.import_module(module), attributes[0])
    return isinstance(cls, type) and attributes[1] in instance_attributes(cls)


def python_name_resolves(dotted: str) -> bool:
    """`a.b.c` as a module and attributes (the longest importable module first)."""
    parts = dotted.split(".")
    return any(resolves(".".join(parts[:i]), parts[i:]) for i in range(len(parts), 0, -1))


def proto_name_exists(name: str) -> bool:
    pool = descriptor_pool.Default()
    finders = (pool.FindMessageTypeByName, pool.FindEnumTypeByName, pool.FindServiceByName, pool.FindMethodByName)
    finders += (pool.FindFieldByName, pool.FindExtensionByName, pool.FindFileByName)
    for find in finders:
        try:
            find(name)
        except KeyError:
            continue
        return True
    return False


# --- (a) what a span names ---

GRPC_CODES = {code.name for code in grpc.StatusCode}
# A metric, table or function of ours: leo_generations_created_total.
OUR_SNAKE_NAME = re.compile(r"leo_[a-z0-9_]+")
ENV_LIKE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
DOTTED = re.compile(r"[a-z_][a-z0-9_]*(?:\.[A-Za-z_]\w*)+(?:\(\))?")
MODULE_ATTRIBUTE = re.compile(r"([a-z_][\w.]*):([A-Za-z_][\w.]*)")
CLASS_ATTRIBUTE = re.compile(r"([A-Z]\w*)((?:\.[A-Za-z_]\w*)+)(?:\(\))?")
RPC = re.compile(r"/?([a-z]\w*(?:\.\w+)+)/([A-Z]\w*)")
# Commands, templates, URLs, absolute and home paths, MIME types, npm
# packages, options, bare extensions, character classes, and label keys
# under a domain (prometheus.io/port).
NOT_A_PATH = re.compile(
    r"[\s<>{}$=…|'\"\[\]]|://|^[~/.]*/|^(?:application|text|image|video|audio|multipart|font)/|^[@-]|^\.\w+$"
    r"|^[a-z0-9-]+(?:\.[a-z0-9-]+)+/"
)


def problem(span: Span) -> str | None:
    """Why the span names something the repository does not have, or None."""
    text = span.text.strip("()")
    if span.text in ALLOWED or text in ALLOWED:
        return None
    if ENV_LIKE.fullmatch(text) or (ENV_LIKE.fullmatch(text.replace("*", "X")) and "*" in text):
        return variable_problem(text)
    if found := MODULE_ATTRIBUTE.fullmatch(text):
        if found[1].split(".")[0] in OUR_PACKAGES and not resolves(found[1], found[2].split(".")):
            return "does not resolve (module:attribute)"
        return None
    if found := RPC.fullmatch(text):
        if found[1].split(".")[0] == "leo" and not proto_name_exists(f"{found[1]}.{found[2]}"):
            return "no such RPC"
        return None
    if DOTTED.fullmatch(text) and "/" not in text:
        name = text.removesuffix("()")
        first = name.split(".")[0]
        known = python_name_resolves(name) or proto_name_exists(name) or name in code_strings()
        if first in OUR_PACKAGES and not known:
            return "does not resolve (no such module or attribute)"
        if first in OUR_PACKAGES or not name.endswith(EXTENSIONS):
            return None
    if OUR_SNAKE_NAME.fullmatch(text):
        series = re.sub(r"_(bucket|sum|count)$", "", text)
        if not {text, series} & (code_words() | code_strings() | OUR_PACKAGES):
            return "no such name in the code (a metric, a table, a function)"
        return None
    if found := CLASS_ATTRIBUTE.fullmatch(text):
        modules = our_classes().get(found[1], [])
        attributes = [found[1], *found[2].lstrip(".").split(".")]
        if modules and not any(class_attribute_exists(module, attributes) for module in modules):
            return f"{found[1]} (in {', '.join(modules)}) has no {found[2].lstrip('.')}"
        return None
    looks_like_a_path = "/" in text or text.endswith(EXTENSIONS)
    if looks_like_a_path and not NOT_A_PATH.search(text) and not path_exists(text, span.doc.parent):
        return "no such path in the repository"
    return None


def variable_problem(name: str) -> str | None:
    if "*" in name:
        pattern = name
        if any(fnmatch.fnmatch(known, pattern) for known in known_variables() | code_words()):
            return None
        return "no variable or name of the code matches it"
    if name.startswith(ENV_PREFIXES):
        if name not in known_variables() and name not in reasons():
            return "no settings class defines this variable and no code reads it"
        return None
    if name not in known_variables() and name not in code_words() and name not in GRPC_CODES:
        return "not a variable anything reads, nor a name in the code"
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_what_the_docs_name_in_backticks_exists(doc):
    problems = [f"{span.where()}: `{span.text}`: {why}" for span in spans(doc) if (why := problem(span))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_relative_links_lead_to_files_of_the_repository(doc):
    missing = [
        f"{link.where()}: link to {link.text}: no such file"
        for link in links(doc)
        if not (doc.parent / link.text).exists() or not (doc.parent / link.text).resolve().is_relative_to(ROOT)
    ]
    assert not missing, "\n".join(missing)


# --- (b) the settings tables ---


@dataclass(frozen=True)
class Documented:
    """One variable of a settings table, with the default the table gives it."""

    span: Span
    default: str


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def outside_parentheses(text: str, separator: str) -> list[str]:
    """`text` split at each separator that no parenthesis or backticks enclose."""
    parts, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(text):
        if char == "`":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and text.startswith(separator, index):
            parts.append(text[start:index])
            start = index + len(separator)
    return [*parts, text[start:]]


def settings_tables(doc: Path) -> Iterator[Documented]:
    """The variables of each table whose header has "variable" and "default"."""
    header: list[str] | None = None
    for number, line in prose_lines(doc):
        if not line.startswith("|"):
            header = None
            continue
        row = cells(line)
        if header is None:
            header = [cell.lower() for cell in row]
            continue
        if set(line) <= set("|-: ") or "variable" not in header or "default" not in header:
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", row[header.index("variable")])
        defaults = outside_parentheses(row[header.index("default")], ", ")
        if len(defaults) != len(names):
            defaults = [row[header.index("default")]] * len(names)
        for name, default in zip(names, defaults, strict=True):
            yield Documented(Span(doc, number, name), default.strip())


def documented() -> list[Documented]:
    return [entry for doc in DOCS for entry in settings_tables(doc)]


@functools.cache
def defaults_by_variable() -> dict[str, list[object]]:
    """Each variable the settings classes read → its default in each class that reads it."""
    found: dict[str, list[object]] = {}
    for cls in settings_classes():
        for field, info in cls.model_fields.items():
            found.setdefault(env_name(cls, field), []).append(info.get_default(call_default_factory=True))
    return found


def as_written(value: object) -> str | None:
    """A default as a table writes it; None for "unset"."""
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Path) and value.is_absolute() and value.is_relative_to(ROOT):
        return str(value.relative_to(ROOT))
    return str(value)


def written_default(cell: str) -> str | None:
    """What a table's default cell says: the first backticked value, or
    None when it says the variable is unset."""
    if re.match(r"(unset|none)\b", cell, re.I):
        return None
    found = re.search(r"`([^`]*)`", cell)
    if found:
        return found[1]
    words = {"off": "false", "on": "true"}
    if first := re.match(r"(\w+)\b", cell):
        return words.get(first[1], first[1])
    return cell


# Table rows whose default is not the settings class's default, on purpose.
DEFAULT_ELSEWHERE = {
    # Unset in TracingSettings: each service names itself (leo_mesh.telemetry.tracing).
    "OTEL_SERVICE_NAME",
}


def test_each_documented_variable_is_read_with_the_default_the_table_gives():
    problems = []
    for entry in documented():
        name = entry.span.text
        if name not in defaults_by_variable():
            if not name.startswith("OTEL_") or name not in known_variables():
                problems.append(f"{entry.span.where()}: `{name}`: no settings class reads it")
            continue
        if name in DEFAULT_ELSEWHERE:
            continue
        written = written_default(entry.default)
        actual = [as_written(value) for value in defaults_by_variable()[name]]
        if written not in actual:
            problems.append(
                f"{entry.span.where()}: `{name}`: the table says {entry.default!r}, the settings say "
                + " or ".join("unset" if value is None else repr(value) for value in actual)
            )
    assert not problems, "\n".join(problems)


def test_every_setting_is_in_a_settings_table():
    tabled = {entry.span.text for entry in documented()}
    missing = [
        f"{cls.__module__}.{cls.__qualname__}.{field}: `{env_name(cls, field)}` is in no settings table of the docs"
        for cls in settings_classes()
        for field in cls.model_fields
        if env_name(cls, field) not in tabled
    ]
    assert not missing, "\n".join(missing)


# --- the checks themselves ---


def test_the_checks_catch_what_they_are_for(tmp_path):
    doc = ROOT / "docs" / "example.md"  # where a doc would be; never written
    assert problem(Span(doc, 1, "tests/unit/test_gone.py")) == "no such path in the repository"
    assert problem(Span(doc, 1, "leo_mesh/rules.py")) is None
    assert problem(Span(doc, 1, "base/envoy/render.env")) is None  # the tail of a path
    assert problem(Span(doc, 1, "leo_mesh.rules.no_such_rule")).startswith("does not resolve")
    assert problem(Span(doc, 1, "leo_mesh.rules.decide_creates")) is None
    assert problem(Span(doc, 1, "api_server.app:no_such")).startswith("does not resolve")
    assert problem(Span(doc, 1, "GenerationStore.no_such")).startswith("GenerationStore")
    assert problem(Span(doc, 1, "GenerationStore.create")) is None
    assert problem(Span(doc, 1, "MOCK_AI_NO_SUCH_S")).startswith("no settings class")
    assert problem(Span(doc, 1, "MOCK_AI_MIN_DELAY_S")) is None
    assert problem(Span(doc, 1, "API_KEY_INVALID")) is None  # an error reason
    assert problem(Span(doc, 1, "NO_SUCH_REASON")).startswith("not a variable")
    assert problem(Span(doc, 1, "leo.generation.v1.GenerationService/NoSuchCall")) == "no such RPC"
    assert problem(Span(doc, 1, "application/grpc")) is None and problem(Span(doc, 1, "/v1/generations")) is None
    table = tmp_path / "table.md"
    table.write_text(
        "| variable | default |\n|---|---|\n| `LOG_LEVEL` | `DEBUG` |\n"
        "| `WATCH_RECONNECT_BASE_S`, `WATCH_RECONNECT_CAP_S` | `0.5`, `10` |\n"
    )
    entries = list(settings_tables(table))
    assert [(e.span.text, e.span.line, e.default) for e in entries] == [
        ("LOG_LEVEL", 3, "`DEBUG`"),
        ("WATCH_RECONNECT_BASE_S", 4, "`0.5`"),
        ("WATCH_RECONNECT_CAP_S", 4, "`10`"),
    ]
    assert written_default(entries[0].default) not in [as_written(v) for v in defaults_by_variable()["LOG_LEVEL"]]


def test_settings_classes_are_what_the_tables_are_checked_against():
    assert all(issubclass(cls, BaseSettings) for cls in settings_classes())
    assert {"DATABASE_URL", "MOCK_AI_MIN_DELAY_S", "LEO_API_TARGET", "ENVOY_LISTEN_PORT"} <= set(defaults_by_variable())
