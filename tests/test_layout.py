"""The repository's layout and the package it installs (issue: a one-way house).

* the top level shows the three parts: the engine (``tpcheck/``), the knowledge
  (``rules/``) and the zoo (``models/``);
* no import cycle anywhere in the package, counting every import (module level, inside
  functions, under ``TYPE_CHECKING``): the stages run one way;
* the wheel ships the rule data and the zoo inside ``tpcheck`` (no top-level ``models`` or
  ``rules`` in site-packages), and the console script lints and explains from a fresh venv.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Source folder -> the package it installs as (pyproject's package-dir).
PACKAGES = {"tpcheck": "tpcheck", "rules": "tpcheck.rules", "models": "tpcheck.models"}


def test_the_top_level_shows_engine_knowledge_and_zoo() -> None:
    top = {p.name for p in REPO.iterdir() if not p.name.startswith(".")}
    assert {"pyproject.toml", "tpcheck", "rules", "models", "tests", "docs"} <= top
    assert not (REPO / "tpcheck" / "rules").exists()
    assert not (REPO / "tpcheck" / "models").exists()


def modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if folder == "tpcheck" and parts[0] in ("rules", "models"):
                continue
            name = ".".join((package, *parts))
            out[name.removesuffix(".__init__")] = path
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .x import y
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                # a module importing its own package (its __init__) is not an edge
                if target and target != name and not name.startswith(target + "."):
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_in_the_package() -> None:
    edges = import_graph()
    assert "tpcheck.pipeline" in edges and "tpcheck.rules" in edges and "tpcheck.models" in edges
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above could pass by never seeing an edge: it must see one planted."""
    edges = import_graph()
    assert "tpcheck.graph" in edges["tpcheck.classify"]
    planted = {**edges, "tpcheck.graph": edges["tpcheck.graph"] | {"tpcheck.classify"}}
    assert any({"tpcheck.graph", "tpcheck.classify"} <= set(c) for c in cycles(planted))


def test_stages_import_only_earlier_stages() -> None:
    """spec → capture → widths → graph → classify → measure → propagate → check → suppress →
    report: no stage imports a later one."""
    order = ["spec", "capture", "widths", "graph", "classify", "measure", "propagate", "check",
             "suppress", "report"]
    edges = import_graph()
    for i, stage in enumerate(order):
        later = {f"tpcheck.{s}" for s in order[i + 1:]}
        assert not edges[f"tpcheck.{stage}"] & later, (stage, edges[f"tpcheck.{stage}"] & later)


# --- the wheel --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (the build leaves nothing in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        (src / name).write_bytes((REPO / name).read_bytes())
    for folder in PACKAGES:
        subprocess.run(["cp", "-r", str(REPO / folder), str(src / folder)], check=True)
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "--no-build-isolation", "-q", "-w", str(out), str(src)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("tpcheck-*.whl")
    return built


def test_the_wheel_ships_rules_models_and_schemas_inside_tpcheck(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops <= {"tpcheck", next(t for t in tops if t.endswith(".dist-info"))}
    for needed in ("tpcheck/rules/catalogue.toml", "tpcheck/rules/docs.toml",
                   "tpcheck/rules/fixtures.py", "tpcheck/models/dit.py",
                   "tpcheck/models/registry.py", "tpcheck/schemas/config.schema.json",
                   "tpcheck/schemas/plan.schema.json", "tpcheck/cli/lint.py",
                   "tpcheck/pytest_plugin.py"):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "tpcheck = tpcheck.cli:main" in text and "tpcheck = tpcheck.pytest_plugin" in text


def test_the_installed_wheel_lints_and_explains(wheel: Path, tmp_path: Path) -> None:
    """A fresh venv with the wheel: its dependencies come from this environment's
    site-packages (a path entry, whose own .pth files — this checkout's editable install —
    are not run), so the tpcheck imported is the wheel's."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                              "--no-deps", "-q", str(wheel)], capture_output=True, text=True,
                             timeout=600)
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "CI": "1"}
    env.pop("PYTHONPATH", None)
    where = subprocess.run([str(python), "-c", "import tpcheck, tpcheck.rules, tpcheck.models; "
                            "print(tpcheck.__file__, tpcheck.rules.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.stdout.count(purelib) == 2, where.stdout + where.stderr
    lint = subprocess.run([str(venv / "bin" / "tpcheck"), "lint", "dit", "--no-tensors"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert lint.returncode == 1, lint.stderr  # the SP reference DiT has errors
    assert "TP202 [error] final_layer.linear.weight" in lint.stdout
    explain = subprocess.run([str(venv / "bin" / "tpcheck"), "explain", "TP101"],
                             capture_output=True, text=True, cwd=tmp_path, env=env)
    assert explain.returncode == 0, explain.stderr
    assert explain.stdout.startswith("# TP101 sp-readout")


# --- the public API ---------------------------------------------------------------------------


def test_the_public_api_is_importable_from_tpcheck() -> None:
    """docs/api.md documents these as `from tpcheck import ...`; each must resolve."""
    import tpcheck

    for name in ("ModelSpec", "lint", "convert", "Plan", "Report", "Finding", "coord_check",
                 "assert_mup", "NotMuP", "TpcheckError", "autospec"):
        assert name in tpcheck.__all__, name
        assert getattr(tpcheck, name) is not None, name
    assert tpcheck.Plan.__module__ == "tpcheck.plan"
    assert issubclass(tpcheck.NotMuP, AssertionError)


def test_importing_tpcheck_and_its_pytest_plugin_does_not_import_torch() -> None:
    """pytest loads every installed plugin at start-up, and `tpcheck --help` should be quick:
    neither may pay for importing torch."""
    code = ("import sys, tpcheck, tpcheck.pytest_plugin, tpcheck.cli; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
