#!/usr/bin/env python3
"""Checks Corral's deployment manifests without a cluster or a container engine.

Every YAML document under deploy/kubernetes/ is checked against the official Kubernetes Python
client's models (kubernetes on PyPI, version pinned in requirements.txt beside this file):

  - apiVersion and kind must name a resource the client has an API for (as
    kubernetes.utils.create_from_yaml resolves them), and a model for it;
  - every key must be a field of its model: the client's deserializer drops unknown keys
    silently, so the document is walked against each model's attribute_map/openapi_types, and a
    typo is reported with its path (spec.containers[1].securityContxt) and the allowed keys;
  - every value must have its field's type (str, int, bool, float, datetime, list[...],
    dict(str, ...), a nested model; `object` takes anything). Quantities such as cpu: "2" are
    strings in the client's models: quote them (the API server would also take a number);
  - each model must then deserialize through the client itself (kubernetes.client.ApiClient),
    which rejects missing required fields (ValueError with client_side_validation, or
    pydantic's ValidationError in newer clients), int-or-string values of the wrong kind, etc.;
  - a YAML mapping with a duplicated key is an error (PyYAML would keep the last silently).

deploy/compose/*.yaml are validated against the compose-spec JSON schema that check-jsonschema
vendors (offline). And every reference to the image ghcr.io/corral/corral under deploy/ (YAML,
comments included, and the Containerfile) must carry CorralVersion.current
(Sources/CorralCore/Version.swift) as its tag.

Prints one line per document checked ("kind/name OK") and a total; exits 1 on any problem.

  check.py [--repo DIR]       check the repository's manifests (default: this file's repository)
  check.py --self-test        feed the checker broken manifests (a typo'd field, a wrong type, a
                              missing required field, a wrong apiVersion, a duplicated key, a
                              compose typo, a stale image tag) and a good one; fail unless each is
                              judged as it should be
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

try:
    import kubernetes
    from kubernetes import client as k8s_client
    from kubernetes.client import models as k8s_models
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("check.py: the kubernetes package is missing: run scripts/check-manifests (it installs Tests/manifests/requirements.txt into .build-venv)")

IMAGE = "ghcr.io/corral/corral"
KUBERNETES_DIR = Path("deploy/kubernetes")
COMPOSE_DIR = Path("deploy/compose")
IMAGE_FILES = [KUBERNETES_DIR, COMPOSE_DIR, Path("deploy/container/Containerfile")]
VERSION_FILE = Path("Sources/CorralCore/Version.swift")


@dataclass
class Problem:
    where: str  # file, document
    path: str  # field path inside the document, "" for the document itself
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.path}: {self.message}" if self.path else f"{self.where}: {self.message}"


# --- YAML ------------------------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})", key_node.start_mark)
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_documents(path: Path, display: str) -> tuple[list[Any], Problem | None]:
    try:
        return list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=StrictLoader)), None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context = f" ({error.context})" if error.context else ""
        return [], Problem(display, "", f"not valid YAML{at}: {error.problem}{context}")
    except yaml.YAMLError as error:
        return [], Problem(display, "", f"not valid YAML: {error}")


# --- Kubernetes models ----------------------------------------------------------------------

_api_client = k8s_client.ApiClient()


def _deserialize(data: Any, model_name: str) -> Any:
    # The client's own path from JSON to models (what a response goes through).
    return _api_client._ApiClient__deserialize(data, model_name)  # type: ignore[attr-defined]


def join(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def resolve_model(api_version: Any, kind: Any) -> tuple[type | None, str | None]:
    """The model class for apiVersion/kind, or why there is none (the rules of
    kubernetes.utils.create_from_yaml: group → {Group}{Version}Api with a create method for kind)."""
    if not isinstance(api_version, str) or not api_version:
        return None, "apiVersion is missing or not a string"
    if not isinstance(kind, str) or not kind:
        return None, "kind is missing or not a string"
    group, _, version = api_version.partition("/")
    if not version:
        group, version = "core", group
    api_group = "".join(word.capitalize() for word in "".join(group.rsplit(".k8s.io", 1)).split("."))
    api_name = f"{api_group}{version.capitalize()}Api"
    api = getattr(k8s_client, api_name, None)
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()
    if api is None or not (hasattr(api, f"create_namespaced_{snake}") or hasattr(api, f"create_{snake}")):
        return None, f"no resource {kind} in apiVersion {api_version} (the client has no create method for it in {api_name})"
    base = version[0].upper() + version[1:] + kind
    for name in (api_group + base, base):
        model = getattr(k8s_models, name, None)
        if isinstance(model, type) and hasattr(model, "openapi_types"):
            return model, None
    return None, f"the client has an API for {api_version} {kind} but no model {base}"


_LIST = re.compile(r"(?:List|list)\[(.*)\]")
_DICT = re.compile(r"(?:Dict\[str,\s*(.*)\]|dict\(str,\s*(.*)\))")
_OPTIONAL = re.compile(r"Optional\[(.*)\]")


def check_value(value: Any, type_name: str, path: str, problems: list[Problem], where: str) -> None:
    type_name = type_name.strip()
    if value is None:  # `key:` with nothing: unset, as for the API server
        return
    if m := _OPTIONAL.fullmatch(type_name):
        return check_value(value, m.group(1), path, problems, where)
    if m := _LIST.fullmatch(type_name):
        if not isinstance(value, list):
            problems.append(Problem(where, path, f"expected a list of {m.group(1)}, got {describe(value)}"))
            return
        for index, item in enumerate(value):
            check_value(item, m.group(1), f"{path}[{index}]", problems, where)
        return
    if m := _DICT.fullmatch(type_name):
        inner = m.group(1) or m.group(2)
        if not isinstance(value, dict):
            problems.append(Problem(where, path, f"expected a mapping of str to {inner}, got {describe(value)}"))
            return
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(Problem(where, path, f"key {key!r} is not a string (quote it)"))
                continue
            check_value(item, inner, join(path, key), problems, where)
        return
    if type_name == "object":
        return
    if type_name in ("datetime", "date"):
        if isinstance(value, (datetime.date, datetime.datetime)):
            return
        if isinstance(value, str):
            try:
                datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
                return
            except ValueError:
                pass
        problems.append(Problem(where, path, f"expected a {type_name} (RFC 3339), got {describe(value)}"))
        return
    primitive = {"str": (str,), "bytes": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}.get(type_name)
    if primitive is not None:
        # YAML's true/false are not numbers, whatever Python thinks.
        if not isinstance(value, primitive) or (type_name in ("int", "float") and isinstance(value, bool)):
            hint = " (quote it)" if type_name == "str" and isinstance(value, (int, float, bool)) else ""
            problems.append(Problem(where, path, f"expected {type_name}, got {describe(value)}{hint}"))
        return
    model = getattr(k8s_models, type_name, None)
    if not (isinstance(model, type) and hasattr(model, "attribute_map")):
        problems.append(Problem(where, path, f"the client's type {type_name!r} is not understood by check.py (a newer client?)"))
        return
    check_model(value, model, path, problems, where)


def check_model(value: Any, model: type, path: str, problems: list[Problem], where: str) -> None:
    if not isinstance(value, dict):
        problems.append(Problem(where, path or "(document)", f"expected a mapping ({model.__name__}), got {describe(value)}"))
        return
    before = len(problems)
    attributes = {json_key: attribute for attribute, json_key in model.attribute_map.items()}
    for key, item in value.items():
        if key not in attributes:
            allowed = ", ".join(sorted(attributes))
            problems.append(Problem(where, join(path, str(key)), f"unknown field {str(key)!r} ({model.__name__} allows: {allowed})"))
            continue
        check_value(item, model.openapi_types[attributes[key]], join(path, key), problems, where)
    # Required fields, where the model says which (pydantic models); older clients say it by
    # raising ValueError below.
    fields = getattr(model, "model_fields", None)
    if isinstance(fields, dict):
        for attribute, field in fields.items():
            json_key = model.attribute_map.get(attribute, attribute)
            if field.is_required() and value.get(json_key) is None:
                problems.append(Problem(where, join(path, json_key), f"missing required field {json_key!r} of {model.__name__}"))
    if len(problems) > before:
        return
    # Nothing wrong below this node as far as the walk can tell: the client's own deserializer
    # must agree, and whatever it still refuses is about this node.
    try:
        _deserialize(value, model.__name__)
    except Exception as error:  # ValueError, TypeError, pydantic.ValidationError
        message = " ".join(str(error).split())
        problems.append(Problem(where, path or "(document)", f"{model.__name__} rejects it: {message[:400]}"))


def check_kubernetes_file(path: Path, display: str) -> tuple[list[str], list[Problem]]:
    documents, problem = load_documents(path, display)
    if problem:
        return [], [problem]
    lines: list[str] = []
    problems: list[Problem] = []
    for number, document in enumerate(documents, start=1):
        if document is None:  # an empty document (a trailing ---)
            continue
        where = f"{display} document {number}"
        if not isinstance(document, dict):
            problems.append(Problem(where, "", f"expected a mapping, got {describe(document)}"))
            continue
        kind = document.get("kind")
        metadata = document.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        where = f"{display} document {number} ({kind}/{name})"
        model, reason = resolve_model(document.get("apiVersion"), kind)
        if model is None:
            problems.append(Problem(where, "", reason or "no model"))
            continue
        before = len(problems)
        if not isinstance(name, str) or not name:
            problems.append(Problem(where, "metadata.name", "missing: every Corral manifest names its objects"))
        check_model(document, model, "", problems, where)
        if len(problems) == before:
            lines.append(f"{display} document {number}: {kind}/{name} OK ({model.__name__}, kubernetes {kubernetes.__version__})")
    return lines, problems


# --- compose ---------------------------------------------------------------------------------


def check_compose_file(path: Path, display: str) -> tuple[list[str], list[Problem]]:
    documents, problem = load_documents(path, display)
    if problem:
        return [], [problem]
    if len([d for d in documents if d is not None]) != 1:
        return [], [Problem(display, "", "a compose file holds exactly one YAML document")]
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", "--output-format", "text", str(path)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        details = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip() and "validation errors were encountered" not in line]
        return [], [Problem(display, "", "compose-spec: " + line.replace(str(path) + "::", "")) for line in details] or [
            Problem(display, "", f"check-jsonschema failed ({result.returncode})")]
    services = sorted((documents[0].get("services") or {}).keys())
    return [f"{display}: compose project {documents[0].get('name', '?')} ({', '.join(services)}) OK (compose-spec)"], []


# --- the image's tag ---------------------------------------------------------------------------


def corral_version(repo: Path) -> str:
    text = (repo / VERSION_FILE).read_text(encoding="utf-8")
    match = re.search(r'static let current = "([^"]+)"', text)
    if not match:
        raise SystemExit(f"check.py: no `static let current = \"…\"` in {repo / VERSION_FILE}")
    return match.group(1)


def check_image_tags(path: Path, display: str, version: str) -> list[Problem]:
    problems = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        for match in re.finditer(re.escape(IMAGE) + r"(?::([A-Za-z0-9_.-]+))?(@sha256:[0-9a-f]+)?", line):
            tag = match.group(1)
            # Prose may name the image without a tag; an image: value may not (that is :latest).
            if tag is None and not re.search(r"image:\s*[\"']?$", line[: match.start()]):
                continue
            if tag != version:
                problems.append(Problem(f"{display}:{number}", "", f"{match.group(0)}: the tag must be {version} (CorralVersion.current in {VERSION_FILE})"))
    return problems


# --- running ------------------------------------------------------------------------------------


def yaml_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))


def check_repository(repo: Path) -> tuple[list[str], list[Problem], int]:
    lines: list[str] = []
    problems: list[Problem] = []
    documents = 0
    kubernetes_files = yaml_files(repo / KUBERNETES_DIR)
    if not kubernetes_files:
        problems.append(Problem(str(KUBERNETES_DIR), "", "no YAML files: nothing to check"))
    for path in kubernetes_files:
        found, wrong = check_kubernetes_file(path, str(path.relative_to(repo)))
        lines += found
        problems += wrong
        documents += len(found) + len({p.where for p in wrong})
    for path in yaml_files(repo / COMPOSE_DIR):
        found, wrong = check_compose_file(path, str(path.relative_to(repo)))
        lines += found
        problems += wrong
        documents += 1
    version = corral_version(repo)
    for target in IMAGE_FILES:
        full = repo / target
        for path in ([full] if full.is_file() else sorted(p for p in full.rglob("*") if p.is_file())):
            problems += check_image_tags(path, str(path.relative_to(repo)), version)
    return lines, problems, documents


def report(lines: list[str], problems: list[Problem], documents: int) -> int:
    for line in lines:
        print(line)
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        print(f"manifests: {documents} documents checked, {len(problems)} problem{'s' if len(problems) != 1 else ''}")
        return 1
    print(f"manifests: {documents} documents checked, all OK")
    return 0


# --- self-test ------------------------------------------------------------------------------------

GOOD_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: good
  annotations:
    io.kubernetes.cri-o.cgroup2-mount-hierarchy-rw: "true"
spec:
  initContainers:
    - name: corral
      image: ghcr.io/corral/corral:{version}
      restartPolicy: Always
      securityContext: {{privileged: true, readOnlyRootFilesystem: true}}
      resources: {{limits: {{cpu: "2", memory: 4Gi}}}}
      startupProbe: {{exec: {{command: [corral, agents, list]}}, periodSeconds: 1}}
  containers:
    - name: app
      image: busybox
      ports: [{{containerPort: 8080}}]
      livenessProbe: {{httpGet: {{path: /, port: http}}}}
    - name: other
      image: busybox
      securityContext: {{runAsUser: 10001}}
  volumes:
    - name: socket
      emptyDir: {{medium: Memory, sizeLimit: 1Mi}}
"""

# (name, manifest, expected problem fragments: every one must appear in one reported problem)
BAD_KUBERNETES = [
    ("a typo'd field",
     GOOD_POD.replace("      securityContext: {{runAsUser: 10001}}", "      securityContxt: {{runAsUser: 10001}}"),
     ["spec.containers[1].securityContxt", "unknown field 'securityContxt'", "securityContext"]),
    ("a wrong type (a string for a bool)",
     GOOD_POD.replace("privileged: true", 'privileged: "yes"'),
     ["spec.initContainers[0].securityContext.privileged", "expected bool"]),
    ("a wrong type (a string for an int)",
     GOOD_POD.replace("runAsUser: 10001", 'runAsUser: "10001"'),
     ["spec.containers[1].securityContext.runAsUser", "expected int"]),
    ("a list where a mapping belongs",
     GOOD_POD.replace("resources: {{limits: {{cpu: \"2\", memory: 4Gi}}}}", "resources: [cpu]"),
     ["spec.initContainers[0].resources", "expected a mapping (V1ResourceRequirements)"]),
    ("a missing required field",
     GOOD_POD.replace("    - name: other\n      image: busybox", "    - image: busybox"),
     ["spec.containers[1]", "name"]),
    ("a typo'd field in a DaemonSet's pod template",
     """\
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: ds}}
spec:
  selector: {{matchLabels: {{app: x}}}}
  template:
    metadata: {{labels: {{app: x}}}}
    spec:
      hostPid: true
      containers: [{{name: c, image: "ghcr.io/corral/corral:{version}"}}]
""",
     ["spec.template.spec.hostPid", "unknown field 'hostPid'", "hostPID"]),
    ("a kind in the wrong apiVersion",
     "apiVersion: v1\nkind: DaemonSet\nmetadata: {{name: ds}}\n",
     ["no resource DaemonSet in apiVersion v1"]),
    ("a duplicated key",
     GOOD_POD.replace("      image: busybox\n      ports:", "      image: busybox\n      image: alpine\n      ports:"),
     ["duplicate key 'image'", "line 18"]),
    ("a stale image tag",
     GOOD_POD.replace("ghcr.io/corral/corral:{version}", "ghcr.io/corral/corral:0.0.1"),
     ["ghcr.io/corral/corral:0.0.1: the tag must be {version}"]),
    ("an image without a tag",
     GOOD_POD.replace("ghcr.io/corral/corral:{version}", "ghcr.io/corral/corral"),
     ["t.yaml:10: ghcr.io/corral/corral: the tag must be {version}"]),
]

GOOD_COMPOSE = """\
name: t
services:
  corral:
    image: ghcr.io/corral/corral:{version}
    cgroup: private
    security_opt: [writable-cgroups=true]
    read_only: true
"""
BAD_COMPOSE = [
    ("a typo'd compose key", GOOD_COMPOSE.replace("read_only", "read_onyl"), ["read_onyl"]),
    ("a wrong compose type", GOOD_COMPOSE.replace("read_only: true", "read_only: [true]"), ["read_only"]),
]


def self_test(repo: Path) -> int:
    version = corral_version(repo)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="check-manifests.") as scratch:
        root = Path(scratch)
        (root / VERSION_FILE).parent.mkdir(parents=True)
        (root / VERSION_FILE).write_text(f'    public static let current = "{version}"\n')

        def run(kubernetes_text: str | None, compose_text: str | None) -> list[Problem]:
            for directory in (KUBERNETES_DIR, COMPOSE_DIR):
                (root / directory).mkdir(parents=True, exist_ok=True)
                for old in (root / directory).glob("*"):
                    old.unlink()
            (root / KUBERNETES_DIR / "t.yaml").write_text((kubernetes_text or GOOD_POD).format(version=version))
            if compose_text is not None:
                (root / COMPOSE_DIR / "compose.yaml").write_text(compose_text.format(version=version))
            return check_repository(root)[1]

        def expect(name: str, problems: list[Problem], fragments: list[str]) -> None:
            nonlocal failures
            texts = [str(p) for p in problems]
            missing = [f for f in fragments if not any(f.format(version=version) in t for t in texts)]
            if not problems or missing:
                failures += 1
                print(f"self-test FAIL {name}: expected a problem naming {missing or fragments}; got {texts or 'none'}")
            else:
                print(f"self-test ok   {name} is rejected: {texts[0]}")

        problems = run(GOOD_POD, GOOD_COMPOSE)
        if problems:
            failures += 1
            print(f"self-test FAIL a good Pod and compose file are rejected: {[str(p) for p in problems]}")
        else:
            print("self-test ok   a good Pod (native sidecar, probes, int-or-string port) and compose file pass")
        for name, manifest, fragments in BAD_KUBERNETES:
            expect(name, run(manifest, None), fragments)
        for name, manifest, fragments in BAD_COMPOSE:
            expect(name, run(None, manifest), fragments)
    total = 1 + len(BAD_KUBERNETES) + len(BAD_COMPOSE)
    print(f"self-test: {total - failures} passed, {failures} failed")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2], help="the repository's root")
    parser.add_argument("--self-test", action="store_true", help="prove that the checker rejects broken manifests")
    arguments = parser.parse_args()
    repo = arguments.repo.resolve()
    if arguments.self_test:
        return self_test(repo)
    return report(*check_repository(repo))


if __name__ == "__main__":
    sys.exit(main())
