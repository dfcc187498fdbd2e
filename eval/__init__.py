"""The CLEAR evaluation suite: metrics, tasks, evaluator and reports.

``metrics`` (pure functions), ``tasks`` (what each task reads and scores), ``scoring`` (batched answer losses and
greedy generation), ``evaluator`` (runs the tasks, writes ``<task>.jsonl`` and ``summary.json``), ``logs``
(reads them back), ``runs``/``report``/``plots`` (tables and figures over several runs), ``bench`` (batched
against the one-sample loop).
"""

import unlearn as _library  # noqa: F401  (first: it quiets a bitsandbytes notice before peft imports bitsandbytes)
