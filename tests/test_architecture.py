"""The package's shape: layers import only downwards, no module imports itself back, every part says
what it owns."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "drivegpt"

#: subpackages from the lowest layer to the highest: a module may import only its own layer or lower ones
LAYERS = ("core", "sim", "data", "model", "policies", "takeover", "corner", "eval", "rlhf", "pipeline", "cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``drivegpt`` module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "drivegpt"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "drivegpt":
            found.add(node.module)
            for a in node.names:  # ``from drivegpt.pipeline import stages`` imports a module
                if (ROOT.parent / node.module.replace(".", "/") / f"{a.name}.py").is_file():
                    found.add(f"{node.module}.{a.name}")
    return found


def graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {m: {i for i in imports_of(p) if i in mods and i != m} for m, p in mods.items()}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``g`` (a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_find_cycle_finds_one_and_accepts_a_tree() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_every_module_is_in_a_layer_and_layers_import_only_downwards() -> None:
    g = graph()
    outside = [m for m in g if m != "drivegpt" and layer(m) is None]
    assert not outside, f"modules outside the layered subpackages: {outside}"
    upward = [
        f"{m} -> {i}"
        for m, deps in g.items()
        for i in deps
        if layer(m) is not None and layer(i) is not None and layer(i) > layer(m)  # type: ignore[operator]
    ]
    assert not upward, "lower layers import higher ones:\n" + "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("part", LAYERS)
def test_each_part_says_what_it_owns_and_may_import(part: str) -> None:
    doc = importlib.import_module(f"drivegpt.{part}").__doc__ or ""
    assert "Owns:" in doc and "May import:" in doc, f"drivegpt/{part}/__init__.py: docstring incomplete"


def test_library_code_never_reads_the_repository_tree(tmp_path, monkeypatch):
    """Run from another directory, ``configs/...`` names the packaged config (as after ``pip install .``)."""
    from drivegpt.core.config import ConfigError, load_config
    from drivegpt.core.resources import packaged_configs
    from drivegpt.pipeline.config import PipelineConfig

    monkeypatch.chdir(tmp_path)
    cfg = load_config(PipelineConfig, "configs/pipeline/tiny.yaml")
    assert cfg == load_config(PipelineConfig, packaged_configs() / "pipeline" / "tiny.yaml")
    (tmp_path / "configs" / "pipeline").mkdir(parents=True)  # a user's own file of that name wins
    (tmp_path / "configs" / "pipeline" / "tiny.yaml").write_text("eval_episodes: 7\n")
    assert load_config(PipelineConfig, "configs/pipeline/tiny.yaml").eval_episodes == 7
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(PipelineConfig, "configs/pipeline/nope.yaml")
    climbs = re.compile(r'(parent|parents\[\d\])\s*/\s*"(bench|configs|takeover_data|tests)"')
    for path in ROOT.rglob("*.py"):  # no library module climbs out of the package to find files
        assert not climbs.search(path.read_text()), path
