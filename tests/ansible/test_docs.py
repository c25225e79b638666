"""Every module's DOCUMENTATION, EXAMPLES and RETURN parse as YAML and agree with its argument spec."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest
import yaml

from .conftest import FQCN, MODULES, explain, import_module, module_source, run, tool

TASK_KEYWORDS = {
    "name", "register", "run_once", "when", "timeout", "loop", "loop_control", "vars", "delegate_to", "until",
    "retries", "delay", "changed_when", "failed_when", "tags", "become", "check_mode", "throttle", "notify",
    "environment", "ignore_errors", "no_log", "async", "poll", "diff",
}


def _doc_strings(module: str) -> dict[str, str]:
    tree = ast.parse(module_source(module).read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
            assert isinstance(node.value, ast.Constant), f"{module}: {node.targets[0].id} must be a plain string"
            out[node.targets[0].id] = node.value.value
    return out


@pytest.fixture(scope="module")
def docs(ansible_env: dict[str, str]) -> dict[str, Any]:
    """ansible-doc's view, with the doc fragments merged in, from the installed collection."""
    proc = run([tool("ansible-doc"), "--json", "-t", "module", *[f"{FQCN}.{m}" for m in MODULES]], env=ansible_env)
    assert proc.returncode == 0, explain(proc)
    return {name.rsplit(".", 1)[1]: doc for name, doc in json.loads(proc.stdout).items()}


@pytest.mark.parametrize("module", MODULES)
def test_documentation_blocks_parse_as_yaml(module: str) -> None:
    blocks = _doc_strings(module)
    assert set(blocks) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}, f"{module}: has {sorted(blocks)}"
    doc = yaml.safe_load(blocks["DOCUMENTATION"])
    assert doc["module"] == module
    assert doc["short_description"] and doc["description"] and doc["author"]
    assert isinstance(yaml.safe_load(blocks["EXAMPLES"]), list)
    assert isinstance(yaml.safe_load(blocks["RETURN"]), dict)


def _norm_choices(values: Any) -> list[str] | None:
    return None if values is None else sorted(str(v) for v in values)


@pytest.mark.parametrize("module", MODULES)
def test_documented_options_match_the_argument_spec(module: str, docs: dict[str, Any]) -> None:
    spec = import_module(module).build_argument_spec()
    options = docs[module]["doc"]["options"]
    assert set(options) == set(spec), (
        f"{module}: documented but not in the spec: {sorted(set(options) - set(spec))}; "
        f"in the spec but not documented: {sorted(set(spec) - set(options))}")
    for name, arg in spec.items():
        doc = options[name]
        where = f"{module}.{name}"
        assert doc.get("type", "str") == arg.get("type", "str"), where
        assert bool(doc.get("required", False)) == bool(arg.get("required", False)), where
        assert doc.get("default") == arg.get("default"), f"{where}: doc {doc.get('default')!r}, spec {arg.get('default')!r}"
        assert _norm_choices(doc.get("choices")) == _norm_choices(arg.get("choices")), where
        assert doc.get("elements") == arg.get("elements"), where
        assert doc.get("description"), f"{where}: no description"


@pytest.mark.parametrize("module", MODULES)
def test_every_module_declares_check_mode(module: str, docs: dict[str, Any]) -> None:
    attributes = docs[module]["doc"]["attributes"]
    assert attributes["check_mode"]["support"] == "full", module


@pytest.mark.parametrize("module", MODULES)
def test_examples_use_fqcns_and_documented_options(module: str) -> None:
    specs = {m: import_module(m).build_argument_spec() for m in MODULES}
    tasks = yaml.safe_load(_doc_strings(module)["EXAMPLES"])
    used = set()
    for task in tasks:
        assert task.get("name"), f"{module}: every example task has a name: {task}"
        actions = [k for k in task if k not in TASK_KEYWORDS]
        assert len(actions) == 1, f"{module}: one action per task, got {actions}"
        action = actions[0]
        assert action.startswith(("ansible.builtin.", f"{FQCN}.")), f"{module}: {action} is not a FQCN"
        if not action.startswith(f"{FQCN}."):
            continue
        target = action.rsplit(".", 1)[1]
        used.add(target)
        args = task[action] or {}
        unknown = set(args) - set(specs[target])
        assert not unknown, f"{module} EXAMPLES: {action} has no options {sorted(unknown)}"
        required = {n for n, a in specs[target].items() if a.get("required")}
        assert required <= set(args), f"{module} EXAMPLES: {action} misses {sorted(required - set(args))}"
    assert module in used, f"{module}: its EXAMPLES never call it"


def _check_return(entries: dict[str, Any], where: str) -> None:
    for key, entry in entries.items():
        assert entry.get("description"), f"{where}.{key}: no description"
        assert entry.get("type"), f"{where}.{key}: no type"
        if "contains" in entry:
            _check_return(entry["contains"], f"{where}.{key}")


@pytest.mark.parametrize("module", MODULES)
def test_return_values_are_described(module: str) -> None:
    returns = yaml.safe_load(_doc_strings(module)["RETURN"])
    for key, entry in returns.items():
        assert entry.get("returned"), f"{module}.{key}: no 'returned'"
    _check_return(returns, module)
