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

from tpcheck.check import Ignore
from tpcheck.errors import TpcheckError

_KEYS = {"targets", "widths", "select", "ignore", "format", "per-tensor-ignores"}


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
    where = f"{file} [tool.tpcheck]"
    unknown = set(table) - _KEYS
    if unknown:
        raise TpcheckError(f"unknown key(s) {sorted(unknown)} in [tool.tpcheck].", where=where,
                           fix="use: " + ", ".join(sorted(_KEYS)))
    ignores = []
    for i, entry in enumerate(table.get("per-tensor-ignores", [])):
        missing = {"pattern", "rules", "reason"} - set(entry)
        if missing:
            raise TpcheckError(f"per-tensor-ignores[{i}] lacks {sorted(missing)}.", where=where,
                               fix="give each ignore a pattern (glob), rules and a reason")
        if not str(entry["reason"]).strip():
            raise TpcheckError(f"per-tensor-ignores[{i}] has an empty reason.", where=where,
                               fix="say why the finding does not apply to these tensors")
        ignores.append(Ignore(str(entry["pattern"]), tuple(entry["rules"]), str(entry["reason"])))
    fmt = table.get("format")
    if fmt is not None and fmt not in ("text", "json", "sarif"):
        raise TpcheckError(f"format = {fmt!r} is not text, json or sarif.", where=where)
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
