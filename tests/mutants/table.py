"""Print the mutation suite's confusion table: for every correct model and optimizer, how
many of its cases tpcheck judged right, with a false alarm, or with a miss.

    python tests/mutants/table.py
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cases import judge, models


def main() -> int:
    rows = []
    totals = [0, 0, 0]
    for model in models():
        cases = [("correct model", model.build, (), ())]
        cases += [(m.name, m.build, m.errors, m.warnings) for m in model.mutants]
        right = false_alarm = miss = 0
        for name, build, errors, warnings in cases:
            verdict = judge(build(), errors, warnings)
            right += verdict.right
            false_alarm += bool(verdict.false_alarms)
            miss += bool(verdict.missed)
            if not verdict.right:
                print(f"  {model.name}: {name}: missed {verdict.missed}, "
                      f"false alarms {verdict.false_alarms}", file=sys.stderr)
        rows.append((model.name, len(cases), right, false_alarm, miss))
        totals = [totals[0] + right, totals[1] + false_alarm, totals[2] + miss]
    print("| model / optimizer | cases | right | false alarm | miss |")
    print("|---|---|---|---|---|")
    for name, cases, right, false_alarm, miss in rows:
        print(f"| {name} | {cases} | {right} | {false_alarm} | {miss} |")
    print(f"| **all** | {sum(r[1] for r in rows)} | {totals[0]} | {totals[1]} | {totals[2]} |")
    return 0 if totals[1] == totals[2] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
