"""Ask the original model and every unlearned adapter about a face, side by side: how sure each one still is of the
true name (bars), and what it answers.

``python app.py`` serves ``outputs/quickstart``; with nothing there (and no model named) it first builds the offline
demo there, the quickstart's default run, showing its progress, and later starts reuse it (``--no-build`` or
``CLEAR_BUILD_DEMO=0`` turns this off). Or name the models: ``python app.py --base MODEL --adapter ADAPTER ...``
(folders or ``USER/NAME[@REVISION]``); on a Hugging Face Space set the variables ``CLEAR_BASE`` /
``CLEAR_ADAPTERS`` (comma-separated) / ``CLEAR_DATA`` / ``CLEAR_QUANTIZATION``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from eval.candidates import candidate_probabilities
from eval.report import results_table
from eval.served import original_figures, served_plot, served_runs
from unlearn.errors import OUTPUT_FOLDER, RULES, UsageError, parse_checked, run_cli
from unlearn.prompts import Example
from unlearn.serving.building import run_with_progress_page
from unlearn.serving.columns import (
    QUICKSTART,
    ShownModel,
    choose_models,
    describe,
    discover_quickstart,
    run_setting,
    serving_quantization,
    split_list,
)
from unlearn.serving.examples import GENERIC, AppExample, clear_examples
from unlearn.serving.images import load_image
from unlearn.serving.pool import (
    DEFAULT_NEW_TOKENS,
    MAX_NEW_TOKENS,
    MAX_QUESTION_CHARS,
    ModelPool,
    bounded_new_tokens,
    clean_question,
)

try:  # ZeroGPU Spaces: borrow a GPU for each request
    import spaces

    on_gpu: Callable[[Callable[..., Any]], Callable[..., Any]] = spaces.GPU
except ImportError:

    def on_gpu(function: Callable[..., Any]) -> Callable[..., Any]:
        """Without the ``spaces`` package the function runs as it is."""
        return function


TITLE = "CLEAR unlearning: original vs. unlearned"
INTRO = (
    "# CLEAR unlearning: what was forgotten, what was kept\n"
    "Pick a face below (**FORGOTTEN**: a person the adapters were trained to forget; **RETAINED**: one they should "
    "keep) or upload one, "
    "and compare the **original** model with each **unlearned adapter** of the "
    "[CLEAR](https://huggingface.co/datasets/therem/CLEAR) benchmark. The **bars** show how much probability each "
    "model gives the true name (✓) and the decoy names, scored as the evaluation scores them: on a forgotten person "
    "an adapter should no longer favour the true name, on a retained one it should still. The generated answer is "
    "beside them; decoding is greedy, so the same question gets the same answer."
)
BARS_LABEL = "Name probabilities (✓ true name)"
TRUE_MARK = "✓ "
BADGES = {"forget": "FORGOTTEN", "retain": "RETAINED"}
EMPTY_ANSWER = "∅ (no text: the model ended its answer at once)"
MAX_CANDIDATES = 10
MAX_CANDIDATE_CHARS = 100
MAX_FILE_SIZE = "20mb"
BUILD_ENV = "CLEAR_BUILD_DEMO"
OPTION_RULES = {**RULES, "quickstart": OUTPUT_FOLDER}  # the demo may be built there
BUILD_DESCRIPTION = (
    "No models were named and no quickstart outputs were found, so the app is making its own: the offline "
    "protocol (`python -m scripts.quickstart`, 3 to 8 minutes on 2 CPU cores) writes a mini-CLEAR and a tiny "
    "LLaVA, fine-tunes the vanilla and gold models, unlearns two persons and evaluates them. This page reloads "
    "itself when the demo is ready; later starts reuse it."
)
logger = logging.getLogger("app")


def image_source(payload: Any, upload_folder: str | Path) -> str | bytes | None:
    """The image a request carries: an uploaded file (only inside Gradio's upload folder) or a data URL's bytes.

    The page's image input is not preprocessed (``gr.Image`` would decode the file and fail without saying why):
    :func:`unlearn.serving.images.load_image` decodes it, with a message for every failure.
    """
    if payload is None:
        return None
    path = payload.get("path") if isinstance(payload, Mapping) else None
    url = payload.get("url") if isinstance(payload, Mapping) else None
    if isinstance(path, str) and path and Path(path).resolve().is_relative_to(Path(upload_folder).resolve()):
        return path
    if not path and isinstance(url, str) and url.startswith("data:"):
        try:
            return base64.b64decode(url.partition(",")[2])
        except (binascii.Error, ValueError):
            return b""
    raise UsageError("the image did not arrive: please upload it again")


def parse_candidates(text: Any) -> list[str]:
    """Comma-separated names, each cleaned like a question and cut to MAX_CANDIDATE_CHARS, duplicates dropped; none
    or at least two (one name would always get the whole probability), at most MAX_CANDIDATES."""
    names = [clean_question(name)[:MAX_CANDIDATE_CHARS] for name in split_list(text if isinstance(text, str) else "")]
    names = list(dict.fromkeys(name for name in names if name))
    if len(names) == 1:
        raise UsageError("give at least two candidate names, separated by commas")
    if len(names) > MAX_CANDIDATES:
        raise UsageError(f"give at most {MAX_CANDIDATES} candidate names")
    return names


def bar_values(names: Sequence[str], probabilities: Sequence[float], true_name: str | None) -> dict[str, float]:
    """``gr.Label``'s value: each name's probability, the true name marked with TRUE_MARK."""
    return {(TRUE_MARK + name if name == true_name else name): p for name, p in zip(names, probabilities, strict=True)}


def respond(
    pool: ModelPool,
    image_payload: Any,
    question: Any,
    max_new_tokens: Any,
    upload_folder: str | Path,
    candidates: Any = "",
    example_key: Any = "",
    examples: Mapping[str, AppExample] | None = None,
) -> Iterator[list[Any]]:
    """Stream ``[status, answer per column..., bars per column...]`` for the raw request values; the columns are the
    original, then every adapter asked for. Bad input only sets the status line.

    ``example_key`` names a CLEAR face of ``examples`` (``forget_face:3``): its image, question and options are used
    as the evaluation uses them. Otherwise the request's image and question are used, and the bars score the
    ``candidates`` (comma-separated names) after them; without candidates there are no bars.
    """
    slots = (None, *pool.slots)
    answers: list[str] = [""] * len(slots)
    bars: list[dict[str, float] | None] = [None] * len(slots)
    try:
        chosen = (examples or {}).get(example_key) if isinstance(example_key, str) else None
        if example_key and chosen is None:
            raise UsageError("unknown example: pick a face from the gallery again")
        if chosen is not None:
            image, question, names = chosen.image, chosen.question, list(chosen.options)
        else:
            source = image_source(image_payload, upload_folder)
            image = load_image(source) if source is not None else None
            names = parse_candidates(candidates)
        new_tokens = bounded_new_tokens(max_new_tokens)
        prompt, cut = pool.fit_question(question if isinstance(question, str) else "", image, new_tokens)
    except UsageError as exc:
        yield [f"⚠️ {exc}", *answers, *bars]
        return
    notes = ["text-only question (no image)"] if image is None else []
    notes += ["the question was cut to fit the model's context"] if cut else []
    status = f"ℹ️ {'; '.join(notes)}" if notes else ""
    scored = Example(chosen.question if chosen is not None else prompt, "", image)
    true_name = chosen.true_name if chosen is not None else None
    example = Example(prompt, "", image)
    for column, slot in enumerate(slots):
        if slot in pool.failed:
            answers[column] = f"⚠️ not loaded: {pool.failed[slot]}"
            yield [status, *answers, *bars]
            continue
        try:
            if names:
                shares = pool.run(
                    slot, lambda model, processor: candidate_probabilities(model, processor, scored, names)
                )
                bars[column] = bar_values(names, shares, true_name)
                yield [status, *answers, *bars]
            for text in pool.stream(slot, example, new_tokens):
                answers[column] = text
                yield [status, *answers, *bars]
            answers[column] = answers[column] or EMPTY_ANSWER
        except Exception as exc:  # one failing model must not end the request, nor the server
            logger.exception("model %s failed", slot or "original")
            answers[column] = f"⚠️ generation failed ({type(exc).__name__})"
    yield [status, *answers, *bars]


def example_rows(examples: Sequence[AppExample]) -> tuple[list[list[Any]], list[str]]:
    """gr.Examples rows ``[image, question]`` and their labels."""
    return [[example.image, example.question] for example in examples], [example.label for example in examples]


def gallery_items(faces: Sequence[AppExample]) -> list[tuple[Any, str]]:
    """The gallery's thumbnails with their badge: ``FORGOTTEN · NAME`` or ``RETAINED · NAME``."""
    return [(face.image, f"{BADGES[face.kind]} · {face.true_name}") for face in faces]


def first_view(answer: Callable[..., Iterator[list[Any]]], faces: Sequence[AppExample]) -> list[Any] | None:
    """The page's opening view: the last update of asking about the first face (a forgotten person's), or None when
    there is no face or asking fails (the page then opens empty)."""
    if not faces:
        return None
    try:
        *_, last = answer(None, faces[0].question, DEFAULT_NEW_TOKENS, "", faces[0].key)
    except Exception:  # e.g. no GPU outside a request on ZeroGPU: the page opens without the first answers
        logger.exception("could not answer the first example at start")
        return None
    return last


def build_demo(
    pool: ModelPool,
    columns: Sequence[ShownModel],
    examples: Sequence[AppExample],
    results: tuple[str, str | None] | None = None,
) -> gr.Blocks:
    """The page: the gallery of faces, image, question and candidates, one column per model (bars and answer), the
    other examples, and the results panel (``results``: markdown table and plot path)."""
    if len(columns) != 1 + len(pool.slots):
        raise ValueError("one column per model: the original, then each adapter asked for")
    faces = [example for example in examples if example.key]
    by_key = {face.key: face for face in faces}
    others = [example for example in examples if not example.key]

    @on_gpu
    def answer(image_payload: Any, question: Any, max_new_tokens: Any, names: Any, key: Any) -> Iterator[list[Any]]:
        yield from respond(pool, image_payload, question, max_new_tokens, upload_folder, names, key, by_key)

    upload_folder = gr.utils.get_upload_folder()  # where gr.Image keeps uploads (GRADIO_TEMP_DIR)
    opening = first_view(answer, faces)
    shown = faces[0] if opening is not None else None
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        gallery = gr.Gallery(
            gallery_items(faces),
            label="CLEAR faces: FORGOTTEN (the adapters were trained to forget them) or RETAINED (click one)",
            columns=8,
            height=250,
            allow_preview=False,
            object_fit="cover",
            visible=bool(faces),
        )
        with gr.Row():
            image = gr.Image(
                shown.image if shown else None,
                label="Image (optional)",
                type="filepath",
                image_mode=None,
                format="png",
                height=220,
            )
            with gr.Column():
                question = gr.Textbox(
                    shown.question if shown else "",
                    label="Question",
                    placeholder="Who is this person?",
                    lines=2,
                    max_length=MAX_QUESTION_CHARS,
                )
                names = gr.Textbox(
                    ", ".join(shown.options) if shown else "",
                    label="Candidate names (optional, comma-separated): bars of how sure each model is of each",
                    placeholder="Name One, Name Two, Name Three",
                )
                key = gr.Textbox(shown.key if shown else "", visible=False)
                with gr.Accordion("Settings", open=False):
                    max_new_tokens = gr.Slider(
                        1, MAX_NEW_TOKENS, value=DEFAULT_NEW_TOKENS, step=1, label="Max new tokens"
                    )
                ask = gr.Button("Ask every model", variant="primary")
        status = gr.Markdown(opening[0] if opening else "")
        answers, bars = [], []
        with gr.Row(equal_height=True):
            for index, column in enumerate(columns):
                with gr.Column(min_width=240):
                    gr.Markdown(column.markdown())
                    bars.append(gr.Label(opening[1 + len(columns) + index] if opening else None, label=BARS_LABEL))
                    answers.append(
                        gr.Textbox(opening[1 + index] if opening else "", label="Answer", lines=3, interactive=False)
                    )
        if others:
            rows, labels = example_rows(others)
            gr.Examples(rows, inputs=[image, question], example_labels=labels, label="Text questions")
        if results is not None:
            with gr.Accordion("Results of the served models (summary.json)", open=True):
                gr.Markdown(results[0])
                if results[1] is not None:
                    gr.Image(results[1], label="Forget against model utility", height=360, interactive=False)

        def pick(selected: gr.SelectData) -> list[Any]:
            face = faces[selected.index]
            return [face.image, face.question, ", ".join(face.options), face.key]

        def typed() -> str:  # the user changed the input: it is no longer the gallery's CLEAR sample
            return ""

        for changed in (question.input, names.input, image.upload, image.clear):
            changed(typed, outputs=key, queue=False, show_progress="hidden")
        asked = dict(
            fn=answer,
            inputs=[image, question, max_new_tokens, names, key],
            outputs=[status, *answers, *bars],
            preprocess=False,  # raw values: respond() checks and decodes them itself
            concurrency_limit=1,  # one generation at a time; the pool's lock also guarantees it
        )
        gallery.select(pick, outputs=[image, question, names, key], queue=False).then(**asked, api_name=False)
        gr.on([ask.click, question.submit], **asked, api_name="answer")
    return demo


def load_examples(data: str | None, forget: str | None) -> list[AppExample]:
    """Faces and questions from ``data`` (a CLEAR folder or Hub id); generic questions when it cannot be read."""
    if not data:
        return list(GENERIC)
    try:
        return clear_examples(data, forget or "forget10")
    except UsageError as exc:
        warnings.warn(f"no examples from {data}: {exc}", stacklevel=2)
        return list(GENERIC)


def create_demo(
    base: str, adapters: Sequence[str], quantization: str | None = None, data: str | None = None
) -> gr.Blocks:
    """Load the models once (an adapter that cannot be loaded gets its error in its column) and build the page."""
    pool = ModelPool.load(base, adapters, quantization, keep_going=True)
    original = describe(base, original=True)
    figures = original_figures(base, quantization)  # the original as served: at the adapters' precision
    columns = [original if figures is None else dataclasses.replace(original, figures=figures)]
    for slot, adapter in zip(pool.slots, adapters, strict=True):
        columns.append(ShownModel(adapter, error=pool.failed[slot]) if slot in pool.failed else describe(adapter))
    first = next((column for column in columns[1:] if column.error is None), None)
    data = data or next(filter(None, (run_setting(adapter, "data") for adapter in adapters)), None)
    loaded = [adapter for slot, adapter in zip(pool.slots, adapters, strict=True) if slot not in pool.failed]
    runs = served_runs(base, loaded, quantization)
    plot = served_plot(runs, Path(tempfile.mkdtemp(prefix="clear-app-")) / "forget_vs_utility.png")
    results = (results_table(runs), str(plot) if plot else None) if runs else None
    return build_demo(pool, columns, load_examples(data, first.forget if first else None), results)


def wants_demo_build(args: argparse.Namespace, environ: Mapping[str, str]) -> bool:
    """Build the offline demo when no model is named (flags or environment), the quickstart folder has no base or
    no adapter yet (a build cut short resumes), and neither ``--no-build`` nor ``CLEAR_BUILD_DEMO=0`` says not to."""
    named = args.base or args.adapter or environ.get("CLEAR_BASE") or environ.get("CLEAR_ADAPTERS")
    disabled = args.no_build or environ.get(BUILD_ENV, "1").strip().lower() in ("0", "false", "no", "off")
    base, adapters = discover_quickstart(args.quickstart)
    return not named and not disabled and (base is None or not adapters)


def build_offline_demo(folder: str | Path, host: str | None, port: int | None) -> int:
    """Run the quickstart's default protocol into ``folder`` while a page shows its progress; return the port."""
    from scripts.quickstart import ProtocolSettings, run_protocol  # only this first start needs the training stack

    _, used_port = run_with_progress_page(
        lambda: run_protocol(ProtocolSettings(out=Path(folder))), BUILD_DESCRIPTION, host, port
    )
    return used_port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python app.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", help="original model: folder or USER/NAME[@REV] (env CLEAR_BASE)")
    parser.add_argument(
        "--adapter", action="append", default=[], help="unlearned LoRA adapter, repeatable (env CLEAR_ADAPTERS)"
    )
    parser.add_argument(
        "--quantization",
        choices=["4bit", "8bit", "none"],
        default=os.environ.get("CLEAR_QUANTIZATION") or None,
        help="precision of the base (env CLEAR_QUANTIZATION); default: the one the first adapter was trained in",
    )
    parser.add_argument("--data", default=os.environ.get("CLEAR_DATA"), help="CLEAR folder or Hub id for examples")
    parser.add_argument(
        "--quickstart",
        default=os.environ.get("CLEAR_QUICKSTART") or QUICKSTART,
        help="folder served when no model is named, where the first start builds the demo (env CLEAR_QUICKSTART; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--no-build",
        action="store_true",
        help=f"with no model named and no quickstart outputs, exit instead of building the offline demo "
        f"(env {BUILD_ENV}=0)",
    )
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; 0.0.0.0 on Spaces)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860 or the first free one after it)")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, each checked against OPTION_RULES before any model loads: one ``error:`` line otherwise."""
    return parse_checked(build_parser(), argv, OPTION_RULES)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    port = args.port
    if wants_demo_build(args, os.environ):
        port = build_offline_demo(args.quickstart, args.host, port)
    base, adapters = choose_models(args.base, args.adapter, os.environ, args.quickstart)
    quantization = serving_quantization(args.quantization, adapters)
    print(f"base: {base}\nadapters: {', '.join(adapters) or 'none'}\nquantization: {quantization or 'none'}")
    demo = create_demo(base, adapters, quantization, args.data)
    demo.queue(max_size=64).launch(server_name=args.host, server_port=port, max_file_size=MAX_FILE_SIZE)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
