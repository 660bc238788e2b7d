"""tpcheck's pytest plugin (registered through the ``pytest11`` entry point).

* the ``assert_mup`` fixture: :func:`tpcheck.assert_mup` with the project's
  ``[tool.tpcheck]`` (widths, rule choice, per-tensor ignores) applied;
* ``pytest --tpcheck``: one test item per ``[tool.tpcheck]`` target, each a lint;
* a failure from either shows the findings as ``tpcheck lint`` prints them, not a traceback
  through tpcheck.

Importing it is cheap (no torch): pytest loads every installed plugin at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tpcheck import testing
from tpcheck.testing import NotMuP


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tpcheck", "μP parametrization checks (tpcheck)")
    group.addoption("--tpcheck", action="store_true", default=False,
                    help="lint every [tool.tpcheck] target of the project as a test item")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tpcheck: a μP lint of a [tool.tpcheck] target "
                                       "(added by pytest --tpcheck)")


def _project_config(config: pytest.Config) -> Any:
    from tpcheck.config import find_pyproject, load_config

    found = find_pyproject(Path(str(config.rootpath)))
    return load_config(str(found)) if found else load_config(None)


@pytest.fixture(scope="session")
def tpcheck_config(pytestconfig: pytest.Config) -> Any:
    """The project's ``[tool.tpcheck]`` (from the pyproject.toml at or above pytest's root)."""
    return _project_config(pytestconfig)


@pytest.fixture
def assert_mup(tpcheck_config: Any) -> Callable[..., Any]:
    """``assert_mup(spec, ignore=..., plan=...)`` with the project's config applied."""

    def check(spec: Any, **options: Any) -> Any:
        options.setdefault("config", tpcheck_config)
        return testing.assert_mup(spec, **options)

    return check


class LintItem(pytest.Item):
    """``pytest --tpcheck``: one configured target, linted."""

    def __init__(self, *, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.add_marker("tpcheck")

    def runtest(self) -> None:
        testing.assert_mup(self.target, config=_project_config(self.config))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"tpcheck lint {self.target}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        return _failure_text(excinfo) or super().repr_failure(excinfo, style)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if not config.getoption("tpcheck"):
        return
    for target in _project_config(config).targets:
        items.append(LintItem.from_parent(session, name=f"tpcheck::{target}", target=target))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A NotMuP failure reads as lint's findings, whatever test raised it."""
    report = yield
    if call.excinfo is not None and report.failed:
        text = _failure_text(call.excinfo)
        if text:
            report.longrepr = text
    return report


def _failure_text(excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
    from tpcheck.errors import TpcheckError

    exc = excinfo.value
    if isinstance(exc, NotMuP):
        what = "errors or warnings (strict)" if exc.strict else "errors"
        return f"tpcheck: the model is not μP — lint finds {what}:\n\n{exc}"
    if isinstance(exc, TpcheckError):
        return f"tpcheck could not lint the model:\n{exc.render()}"
    return None


__all__ = ["LintItem", "NotMuP", "assert_mup", "tpcheck_config"]
