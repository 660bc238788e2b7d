"""``[tool.tpcheck]`` in pyproject.toml: targets, widths, rule selection, per-tensor ignores.

```toml
[tool.tpcheck]
targets = ["mypkg.models:dit_spec"]
widths = [64, 128, 256]
select = ["TP"]
ignore = ["TP402"]
format = "text"

[[tool.tpcheck.per-tensor-ignores]]
pattern = "blocks.*.adaLN_modulation.1.weight"
rules = ["TP105"]
reason = "adaLN-Zero is deliberate: identity blocks at init"
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from tpcheck.errors import TpcheckError
from tpcheck.suppress import Ignore


@dataclass(frozen=True)
class Config:
    targets: tuple[str, ...] = ()
    widths: tuple[int, ...] | None = None
    select: list[str] | None = None
    ignore: tuple[str, ...] = ()
    format: str | None = None
    per_tensor_ignores: tuple[Ignore, ...] = ()
    path: Path | None = None


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` (default: the current directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | None = None) -> Config:
    """Read ``[tool.tpcheck]``; no file or no table gives the defaults."""
    file = Path(path) if path else find_pyproject()
    if file is None:
        return Config()
    if not file.is_file():
        raise TpcheckError(f"config file {str(file)!r} does not exist.",
                           fix="pass --pyproject path/to/pyproject.toml")
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise TpcheckError(f"{file} is not valid TOML: {exc}", fix="fix the TOML syntax") from exc
    table = data.get("tool", {}).get("tpcheck")
    if table is None:
        return Config(path=file)
    _validate(table, file)
    ignores = [Ignore(str(e["pattern"]), tuple(e["rules"]), str(e["reason"]).strip())
               for e in table.get("per-tensor-ignores", [])]
    fmt = table.get("format")
    widths = table.get("widths")
    return Config(
        targets=tuple(table.get("targets", ())),
        widths=tuple(int(w) for w in widths) if widths else None,
        select=list(table["select"]) if "select" in table else None,
        ignore=tuple(table.get("ignore", ())),
        format=fmt,
        per_tensor_ignores=tuple(ignores),
        path=file,
    )


def _validate(table: dict, file: Path) -> None:
    """``table`` against tpcheck/schemas/config.schema.json, then every rule code known: the
    first problem is a TpcheckError naming the key and its line in ``file``."""
    from tpcheck.rules import catalogue
    from tpcheck.schema import load, problems

    found = problems(table, load("config"))
    text = file.read_text(encoding="utf-8")
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more problem(s))" if len(found) > 1 else ""
        raise TpcheckError(f"[tool.tpcheck] {first.key}: {first.message}{more}.",
                           where=_where(file, text, first.path),
                           fix=_FIXES.get(str(first.path[0]) if first.path else "",
                                          "see the [tool.tpcheck] keys in docs/ci.md"))
    widths = table.get("widths")
    if widths and len(set(widths)) < 3:
        raise TpcheckError(f"[tool.tpcheck] widths {widths} has fewer than 3 distinct widths.",
                           where=_where(file, text, ("widths",)), fix=_FIXES["widths"])
    codes = [("select", i, c) for i, c in enumerate(table.get("select", []))]
    codes += [("ignore", i, c) for i, c in enumerate(table.get("ignore", []))]
    codes += [("per-tensor-ignores", i, c) for i, e in
              enumerate(table.get("per-tensor-ignores", [])) for c in e["rules"]]
    for key, i, code in codes:
        if code != "ALL" and not any(r.matches(code) for r in catalogue()):
            raise TpcheckError(f"[tool.tpcheck] {key}[{i}]: {code!r} matches no rule.",
                               where=_where(file, text, (key, i)),
                               fix="use a code (TP101), a prefix (TP1) or a name (sp-readout); "
                                   "`tpcheck explain` lists them")


_FIXES = {
    "targets": 'write targets = ["dit", "mypkg.models:spec"]',
    "widths": "write widths = [64, 128, 256]: at least three distinct positive integers",
    "select": 'write select = ["TP1", "TP402"]: an array of codes, prefixes or names',
    "ignore": 'write ignore = ["TP402"]: an array, even for one rule',
    "format": 'write format = "text", "json" or "sarif"',
    "per-tensor-ignores": "give each [[tool.tpcheck.per-tensor-ignores]] a pattern (a glob "
                          "over tensor names), rules (an array) and a non-empty reason",
}


def _where(file: Path, text: str, path: tuple) -> str:
    """``file:line`` of the key at the head of ``path`` inside the [tool.tpcheck] tables (for
    ``[[tool.tpcheck.per-tensor-ignores]]``, the header of entry ``path[1]``)."""
    if not path:
        return f"{file} [tool.tpcheck]"
    key = str(path[0])
    index = path[1] if len(path) > 1 and isinstance(path[1], int) else 0
    inside = False
    table_line = None
    seen = 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            header = stripped.strip("[]").strip()
            inside = header in ("tool.tpcheck", f"tool.tpcheck.{key}")
            if inside and table_line is None:
                table_line = number
            if header == f"tool.tpcheck.{key}":
                if seen == index:
                    return f"{file}:{number}"
                seen += 1
            continue
        if inside and "=" in stripped and stripped.split("=", 1)[0].strip().strip('"') == key:
            return f"{file}:{number}"
    return f"{file}:{table_line}" if table_line else f"{file} [tool.tpcheck]"
