"""The plan and time estimate printed before an evaluation, against hand-computed values."""

from __future__ import annotations

import eval.evaluator
from eval.estimate import Probe, TaskPlan, describe, estimate_seconds, probe, task_plan
from eval.evaluator import evaluate
from eval.tasks import TASKS
from unlearn.data import load_clear
from unlearn.models import load_model

PLANS = [TaskPlan("forget_caption", 10, 60, 2, 40), TaskPlan("real_faces", 5, 20, 1, 0)]


def test_a_plan_counts_answers_batches_and_the_generation_budget(mini_clear):
    task = TASKS["retain_caption"]
    samples = list(task.samples(load_clear(task.config("forget10"), mini_clear)))[:5]
    assert len(samples) == 5
    plan = task_plan("retain_caption", samples, batch_size=2, max_new_tokens=30, generates=True)
    assert (plan.samples, plan.batches, plan.max_new_tokens) == (5, 3, 30)
    assert plan.answers == sum(len(s.answers) for s in samples) and plan.generation_tokens == 150
    assert task_plan("real_faces", samples, 2, 30, generates=False).generation_tokens == 0


def test_the_estimate_scales_the_probe_by_answers_and_generation_steps():
    # 60 x 0.5 + 2 x 0.1 x 40 + 20 x 0.5 + 1 x 0.1 x 0 = 30 + 8 + 10
    assert estimate_seconds(PLANS, Probe(seconds_per_answer=0.5, seconds_per_step=0.1)) == 48.0


def test_the_line_says_samples_answers_tokens_and_time():
    line = describe(PLANS, 3725.0)
    assert line.startswith("evaluating 15 samples in 2 tasks: 80 answers to score in 3 batches")
    assert "up to 400 generated tokens" in line and "estimated time 1 h 02 min" in line
    assert "estimated" not in describe(PLANS, None) and "1 min 05 s" in describe(PLANS, 65.0)


def test_the_probe_times_scoring_and_generation(tiny_model, mini_clear):
    model, processor = load_model(tiny_model)
    task = TASKS["forget_caption"]
    samples = list(task.samples(load_clear(task.config("forget10"), mini_clear)))[:2]
    timing = probe(model.eval(), processor, samples, max_new_tokens=4)
    assert timing.seconds_per_answer > 0 and timing.seconds_per_step > 0
    assert probe(model, processor, samples, max_new_tokens=0).seconds_per_step == 0


def test_an_evaluation_says_what_it_will_do_before_it_starts(tiny_model, mini_clear, tmp_path, capsys, monkeypatch):
    model, processor = load_model(tiny_model)
    tasks = ["forget_face", "real_faces"]
    evaluate(model, processor, mini_clear, tasks=tasks, max_samples=2, bootstrap=0, output_dir=tmp_path / "short")
    err = capsys.readouterr().err
    assert "evaluating 4 samples in 2 tasks" in err and "estimated time" not in err, "a short one is not probed"
    monkeypatch.setattr(eval.evaluator, "LONG_EVALUATION_BATCHES", 2)
    options = {"tasks": tasks, "max_samples": 2, "bootstrap": 0}
    evaluate(model, processor, mini_clear, batch_size=1, output_dir=tmp_path / "long", **options)
    assert "estimated time" in capsys.readouterr().err
