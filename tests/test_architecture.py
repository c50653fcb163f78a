"""The package's shape: no import cycles, imports pointing down the layers, pure NumPy maths modules.

A small AST walk over ``uplift_spark`` (no imports executed): every ``import``/``from … import`` of a
package module, relative ones resolved, ``if TYPE_CHECKING:`` blocks skipped since they never run.
"""

import ast
import functools
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "uplift_spark"
CORE = {"errors", "config", "schemas", "logs", "versions", "session"}
DOMAIN = {"datasets", "validation", "splitting", "learners", "evaluation", "policy", "monitoring", "report", "io"}
TOP = {"pipelines", "cli", "jobs"}
# deliberate, documented exceptions: (importer, imported package) with the reason in the importer
ALLOWED_UPWARD = {
    # config validation reads the learner/trainer registries, imported inside the function
    ("uplift_spark.config", "learners"),
}


def _modules():
    mods = {}
    for dirpath, _, files in os.walk(os.path.join(ROOT, PKG)):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                mods[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return mods


MODULES = _modules()


def _is_type_checking(node):
    test = node.test
    return isinstance(node, ast.If) and (getattr(test, "id", None) == "TYPE_CHECKING"
                                         or getattr(test, "attr", None) == "TYPE_CHECKING")


def _walk(nodes, top_level):
    """Import nodes, with whether they run at module import time (not inside a def)."""
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, top_level
        inner = top_level and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _walk(ast.iter_child_nodes(node), inner)


@functools.lru_cache(maxsize=None)
def imports(name):
    """{imported package module: runs at import time?} for module ``name``."""
    path = MODULES[name]
    is_pkg = path.endswith("__init__.py")
    out = {}
    for node, top in _walk(ast.parse(open(path, encoding="utf-8").read()).body, True):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif node.level:
            base = name.split(".") if is_pkg else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
        else:
            mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
        for t in targets:
            while t and t not in MODULES:  # ``import uplift_spark.x.y as z`` / attribute-style names
                t = t.rpartition(".")[0]
            if t.startswith(PKG) and t != name:
                out[t] = out.get(t, False) or top
    return out


def _cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return comps


def _layer(module):
    part = module.split(".")[1] if module.count(".") else ""
    return part


def test_the_walk_sees_known_edges():
    """Guards the checks below against an AST walk that silently finds nothing."""
    assert MODULES and "uplift_spark.evaluation.scan" in MODULES
    assert imports("uplift_spark.evaluation.scan")["uplift_spark.evaluation.curves"] is True
    assert "uplift_spark.errors" in imports("uplift_spark.schemas")
    assert imports("uplift_spark.config").get("uplift_spark.learners.registry") is False  # lazy
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules():
    # import-time edges: a cycle here can fail with a partially initialised module
    eager = {m: {t for t, top in imports(m).items() if top} for m in MODULES}
    # a package's __init__ re-exporting its modules is not a cycle with them
    for m in eager:
        eager[m] = {t for t in eager[m] if not m.startswith(t + ".")}
    assert _cycles(eager) == []


def test_evaluation_maths_modules_do_not_reach_back_into_spark_modules():
    """curves/metrics/calibration are leaves below the scan: not even a deferred import of it."""
    for leaf in ("curves", "metrics", "calibration", "bootstrap"):
        name = f"uplift_spark.evaluation.{leaf}"
        spark_side = {"uplift_spark.evaluation.scan", "uplift_spark.evaluation.suite",
                      "uplift_spark.evaluation.evaluator"}
        assert not set(imports(name)) & spark_side, name


def test_layers_point_down():
    bad = []
    for m in MODULES:
        layer = _layer(m)
        for t in imports(m):
            target = _layer(t)
            if layer in CORE and target in DOMAIN | TOP and (m, target) not in ALLOWED_UPWARD:
                bad.append((m, t))
            if layer in DOMAIN and target in TOP:
                bad.append((m, t))
            if layer == "pipelines" and target in {"cli", "jobs"}:
                bad.append((m, t))
    assert bad == []


def test_maths_modules_import_without_pyspark():
    code = ("import sys\n"
            "import uplift_spark.evaluation.curves, uplift_spark.evaluation.metrics, "
            "uplift_spark.evaluation.calibration\n"
            "spark = sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j'))\n"
            "print(spark)\n"
            "sys.exit(1 if spark else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
