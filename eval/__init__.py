"""The CLEAR evaluation suite: metrics, tasks, evaluator and reports."""
