"""ffnlib's import graph has no circle, counting imports inside functions too: a module that needs
another's names imports it at the top, and no lazy import dodges a circle."""
import ast
from pathlib import Path

from ffnlib.paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "ffnlib"


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                targets = ([base] if node.module else []) + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in modules:  # `from ffnlib.a import name`: the module a
                    target = target.rpartition(".")[0]
                if not target or target == name:
                    continue
                graph[name].add(target)
                parent = target.rpartition(".")[0]  # importing ffnlib.a.b runs ffnlib.a's __init__ first
                while parent and not name.startswith(parent + ".") and name != parent:
                    graph[name].add(parent)
                    parent = parent.rpartition(".")[0]
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "ffnlib.train.config" in graph["ffnlib.profiles"] and "ffnlib.train" in graph["ffnlib.profiles"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_circle_in_ffnlib():
    cycle = find_cycle(import_graph())
    assert not cycle, " -> ".join(cycle)


def test_no_module_is_longer_than_450_lines():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long
