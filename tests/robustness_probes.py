"""A probes.json by hand, following scripts.probe's schema, for the robustness table, report and card tests."""

from __future__ import annotations

import copy
from typing import Any


def _points(figures: list[tuple[float, float, float | None, float | None]]) -> list[dict[str, Any]]:
    """Relearning points at steps 0, 1, 5, 20 from (face probability, caption ROUGE-L, their recoveries)."""
    return [
        {
            "steps": steps,
            "face_probability": face,
            "caption_rouge_l": rouge,
            "recovery": {"face_probability": face_recovery, "caption_rouge_l": rouge_recovery},
        }
        for steps, (face, rouge, face_recovery, rouge_recovery) in zip((0, 1, 5, 20), figures, strict=True)
    ]


def _split(relearned_on: str, samples: dict[str, int]) -> dict[str, Any]:
    return {
        "relearned_on": relearned_on,
        "relearn_examples": 30,
        "samples": samples,
        "vanilla": {"face_probability": 0.97, "caption_rouge_l": 0.81},
        "model": _points(
            [(0.01, 0.1, 0.0, 0.0), (0.25, 0.2, 0.25, 0.1408), (0.5, 0.4, 0.4896, 0.4225), (0.9, 0.7, 0.9271, 0.8451)]
        ),
        "gold": _points(
            [
                (0.35, 0.3, 0.0, 0.0),
                (0.36, 0.31, 0.0161, 0.0196),
                (0.4, 0.35, 0.0806, 0.098),
                (0.6, 0.5, 0.4032, 0.3922),
            ]
        ),
    }


def _run(forget_face_probability: float) -> dict[str, Any]:
    return {
        "forget": 0.021,
        "retain": 0.832,
        "forget_face_probability": forget_face_probability,
        "forget_face_accuracy": 0.0,
        "samples": {"forget_caption": 30, "forget_face": 30, "retain_caption": 40, "retain_face": 40},
        "language_weight_dtypes": ["uint8"],
        "lora_layers": 14,
    }


def _variants(probability: float, grayscale: float) -> dict[str, dict[str, float | int]]:
    names = ["original", *(f"wording_{i}" for i in range(1, 6)), "crop", "flip", "blur", "jpeg30", "rotate10"]
    variants = {name: {"probability": probability, "accuracy": 0.0, "samples": 30} for name in names}
    return {**variants, "grayscale": {"probability": grayscale, "accuracy": 0.9, "samples": 30}}


def _membership(auc: dict[str, float], precision: str | None) -> dict[str, Any]:
    return {"auc": auc, "samples": {"forget": 38, "retain": 38}, "k": 0.2, "precision": precision}


PROBES: dict[str, Any] = {
    "relearning": {
        "steps": [1, 5, 20],
        "learning_rate": 1e-4,
        "batch_size": 4,
        "seed": 0,
        "precision": "4bit",
        "gold_precision": None,
        "image": _split("captions of half of each forget person's images", {"forget_face": 15, "forget_caption": 15}),
        "text": _split("the forget persons' text answers", {"forget_face": 30, "forget_caption": 30}),
    },
    "precision": {
        "4bit": {"model": _run(0.011), "vanilla": _run(0.971), "lost": False},
        "8bit": {"model": _run(0.6), "vanilla": _run(0.98), "lost": True},
        "merged": {"model": _run(0.012), "vanilla": _run(0.99), "lost": False},
        "lost_at": ["8bit"],
    },
    "rephrased": {
        "model": _variants(0.011, 0.796),
        "vanilla": _variants(0.999, 0.971),
        "gold": _variants(0.35, 0.3),
        "precision": "4bit",
        "gold_precision": None,
    },
    "cross_modal": {
        "headline": {"visual": "forget_face/probability", "text": "forget_text/rouge_l"},
        "samples": {"forget_face": 30, "forget_caption": 30, "forget_text": 40},
        "vanilla": {"forget_face/probability": 0.97, "forget_caption/rouge_l": 0.9, "forget_text/rouge_l": 0.99},
        "gold": {"forget_face/probability": 0.35, "forget_caption/rouge_l": 0.3, "forget_text/rouge_l": 0.42},
        "rows": {
            "visual": {
                "adapter": "runs/npo-visual",
                "figures": {"forget_face/probability": 0.04, "forget_caption/rouge_l": 0.2, "forget_text/rouge_l": 0.9},
                "forgotten": {"visual": 1.5, "text": 0.1579},
            },
            "both": {
                "adapter": "runs/npo",
                "figures": {
                    "forget_face/probability": 0.35,
                    "forget_caption/rouge_l": 0.2,
                    "forget_text/rouge_l": 0.42,
                },
                "forgotten": {"visual": 1.0, "text": 1.0},
            },
        },
        "precision": "4bit",
        "gold_precision": None,
    },
    "membership": {
        "model": _membership({"loss": 1.0, "zlib": 0.98, "min_k": 0.95, "min_k_plus_plus": 0.5}, "4bit"),
        "vanilla": _membership({"loss": 0.497, "zlib": 0.47, "min_k": 0.491, "min_k_plus_plus": 0.37}, "4bit"),
        "gold": _membership({"loss": 1.0, "zlib": 1.0, "min_k": 0.9, "min_k_plus_plus": 0.5}, None),
        "gap_from_gold": {"loss": 0.0, "zlib": -0.02, "min_k": 0.0556, "min_k_plus_plus": 0.0},
    },
}


def probes(**changes: Any) -> dict[str, Any]:
    """A deep copy of PROBES with top-level probes replaced (None removes one)."""
    copied = copy.deepcopy(PROBES)
    for name, value in changes.items():
        if value is None:
            copied.pop(name, None)
        else:
            copied[name] = value
    return copied
