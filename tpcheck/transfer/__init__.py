"""μTransfer: tune on a small proxy, train the large model with the same hyperparameters.

The study behind ``tpcheck transfer`` (docs/mutransfer.md), as a library for your own model:

* a :class:`Task` says how to build the model at any width and how to train and evaluate it
  (:class:`DigitsTask` is the built-in one: a DiT trained by flow matching on scikit-learn's
  digits);
* :func:`make_plan` converts it to μP with the smallest width as the base (``tpcheck.convert``);
* :func:`sweep` trains every (parametrization, width, LR, seed) of a :class:`SweepConfig` and
  returns a :class:`Sweep` that knows each width's optimum and the shift across widths;
* :func:`search` runs Optuna on the proxy and :func:`transfer` trains the target with the
  result, beside SP;
* :func:`run_study` does all of it and writes the JSON, report and figures.

```python
from tpcheck.transfer import DigitsTask, SweepConfig, lr_grid, make_plan, sweep

task = DigitsTask()
config = SweepConfig(widths=(32, 64, 128, 256), lrs=lr_grid(-9, -4.5), seeds=3)
result = sweep(task, config, plan=make_plan(task, config.widths), workers=2)
print(result.shift("mup"), result.shift("sp"))   # octaves, standard error
```

Imports are light: torch and the DiT load when a task builds a model, optuna only for the
search, matplotlib only for the figures.
"""

from __future__ import annotations

from tpcheck.transfer.digits import DigitsTask, flow_matching_loss
from tpcheck.transfer.grid import Optimum, lr_grid, optimum, parse_grid
from tpcheck.transfer.report import StudyResult
from tpcheck.transfer.search import SearchResult, SearchSpace, load_search, search
from tpcheck.transfer.study import StudyConfig, make_plan, run_study
from tpcheck.transfer.sweep import Sweep, SweepConfig, WidthOptimum, sweep
from tpcheck.transfer.target import SP_DEFAULT, Transfer, TransferRow, transfer
from tpcheck.transfer.task import Task
from tpcheck.transfer.train import Hyper, RunResult, train

__all__ = ["SP_DEFAULT", "DigitsTask", "Hyper", "Optimum", "RunResult", "SearchResult",
           "SearchSpace", "StudyConfig", "StudyResult", "Sweep", "SweepConfig", "Task",
           "Transfer", "TransferRow", "WidthOptimum", "flow_matching_loss", "load_search",
           "lr_grid", "make_plan", "optimum", "parse_grid", "run_study", "search", "sweep",
           "train", "transfer"]
