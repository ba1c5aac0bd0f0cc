"""The package's import graph has no cycles, and the layers import downwards only.

The graph is built from the source with ``ast``: an edge ``a -> b`` for every
``import b`` / ``from b import ...`` in module ``a``, at module level or inside a
function (a function-level import is still a dependency, only a later one);
imports under ``if TYPE_CHECKING:`` are left out (they never run).  A package's
``__init__`` importing its own submodules lazily is not a cycle with them: the
edge a submodule has to its package's ``__init__`` (Python runs it first) is
not drawn.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "soundtok"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Import nodes of a module, skipping ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            stack.append(child)


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rsplit(".", 1)[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in modules:  # soundtok.x.y.func -> soundtok.x.y
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):
                    graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_graph_sees_function_level_and_relative_imports():
    g = import_graph()
    assert "soundtok.errors" in g["soundtok.fileio"]  # module level, absolute
    assert "soundtok.codec.model" in g["soundtok.codec"]  # function level, relative
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# Lower layers never import higher ones (a package prefix names every module in it).
FORBIDDEN = [
    # nothing below evaluate/ imports it
    (("soundtok.codec", "soundtok.llmcodec", "soundtok.llm", "soundtok.audiolm", "soundtok.train",
      "soundtok.tokens", "soundtok.audio", "soundtok.audio_out", "soundtok.api", "soundtok.pipeline",
      "soundtok.registry", "soundtok.codecs", "soundtok.inputs", "soundtok.streams", "soundtok.minilm"),
     "soundtok.evaluate"),
    # the library never imports the CLI
    (("soundtok.api", "soundtok.codec", "soundtok.llmcodec", "soundtok.llm", "soundtok.audiolm",
      "soundtok.train", "soundtok.evaluate", "soundtok.tokens", "soundtok.audio", "soundtok.audio_out",
      "soundtok.pipeline"),
     "soundtok.cli"),
    # training code is imported only by the training commands
    (("soundtok.api", "soundtok.codec", "soundtok.llmcodec", "soundtok.llm", "soundtok.audiolm",
      "soundtok.evaluate", "soundtok.pipeline", "soundtok.registry", "soundtok.teacher"), "soundtok.train"),
    # the LLM loader is below everything that uses an LLM
    (("soundtok.llm",), "soundtok.audiolm"),
    (("soundtok.llm", "soundtok.audiolm"), "soundtok.llmcodec"),
    # the codecs do not know the registry, nor the commands' library layer
    (("soundtok.codec", "soundtok.llmcodec", "soundtok.codecs"), "soundtok.registry"),
    (("soundtok.codec", "soundtok.llmcodec", "soundtok.llm", "soundtok.audiolm", "soundtok.tokens",
      "soundtok.audio", "soundtok.audio_out"), "soundtok.api"),
]


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize("lower,higher", FORBIDDEN, ids=lambda x: x if isinstance(x, str) else "")
def test_layers(lower, higher):
    g = import_graph()
    bad = sorted(f"{m} -> {t}" for m, ts in g.items() for t in ts
                 if any(_under(m, p) for p in lower) and _under(t, higher))
    assert not bad, "imports against the layering: " + ", ".join(bad)
