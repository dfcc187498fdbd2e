"""Ask the original model and every unlearned adapter the same question about an image, side by side.

Run ``python app.py`` after the quickstart (it serves ``outputs/quickstart``), or name the models:
``python app.py --base MODEL --adapter ADAPTER ...`` (folders or ``USER/NAME[@REVISION]``); on a Hugging Face Space
set the variables ``CLEAR_BASE`` / ``CLEAR_ADAPTERS`` (comma-separated) / ``CLEAR_DATA`` / ``CLEAR_QUANTIZATION``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from unlearn.errors import UsageError, run_cli
from unlearn.prompts import Example
from unlearn.serving.columns import QUICKSTART, ShownModel, choose_models, describe, run_setting, serving_quantization
from unlearn.serving.examples import GENERIC, AppExample, clear_examples
from unlearn.serving.images import load_image
from unlearn.serving.pool import DEFAULT_NEW_TOKENS, MAX_NEW_TOKENS, MAX_QUESTION_CHARS, ModelPool, bounded_new_tokens

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
    "Upload a face (or ask without an image) and compare the **original** model with each **unlearned adapter**. "
    "The adapters were trained to forget some persons of the [CLEAR](https://huggingface.co/datasets/therem/CLEAR) "
    "benchmark and keep everything else: on a forgotten person they should no longer give the name or facts, on a "
    "retained one they should answer like the original. Decoding is greedy: the same question gets the same answer."
)
MAX_FILE_SIZE = "20mb"
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


def respond(
    pool: ModelPool, image_payload: Any, question: Any, max_new_tokens: Any, upload_folder: str | Path
) -> Iterator[list[str]]:
    """Stream ``[status, original's answer, adapter 1's answer, ...]`` for the raw request values; bad input only
    sets the status line."""
    answers = [""] * (1 + len(pool.adapters))
    try:
        source = image_source(image_payload, upload_folder)
        image = load_image(source) if source is not None else None
        new_tokens = bounded_new_tokens(max_new_tokens)
        prompt, cut = pool.fit_question(question if isinstance(question, str) else "", image, new_tokens)
    except UsageError as exc:
        yield [f"⚠️ {exc}", *answers]
        return
    notes = ["text-only question (no image)"] if image is None else []
    notes += ["the question was cut to fit the model's context"] if cut else []
    status = f"ℹ️ {'; '.join(notes)}" if notes else ""
    example = Example(prompt, "", image)
    for column, adapter in enumerate((None, *pool.adapters)):
        try:
            for text in pool.stream(adapter, example, new_tokens):
                answers[column] = text
                yield [status, *answers]
        except Exception as exc:  # one failing model must not end the request, nor the server
            logger.exception("generation failed")
            answers[column] = f"⚠️ generation failed ({type(exc).__name__})"
    yield [status, *answers]


def example_rows(examples: Sequence[AppExample]) -> tuple[list[list[Any]], list[str]]:
    """gr.Examples rows ``[image, question]`` and their labels."""
    return [[example.image, example.question] for example in examples], [example.label for example in examples]


def build_demo(pool: ModelPool, columns: Sequence[ShownModel], examples: Sequence[AppExample]) -> gr.Blocks:
    """The page: image and question on top, one answer column per model, examples below."""
    if len(columns) != 1 + len(pool.adapters):
        raise ValueError("one column per model: the original, then each adapter")

    @on_gpu
    def answer(image_payload: Any, question: Any, max_new_tokens: Any) -> Iterator[list[str]]:
        yield from respond(pool, image_payload, question, max_new_tokens, image.GRADIO_CACHE)

    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            image = gr.Image(label="Image (optional)", type="filepath", image_mode=None, format="png", height=300)
            with gr.Column():
                question = gr.Textbox(
                    label="Question", placeholder="Who is this person?", lines=2, max_length=MAX_QUESTION_CHARS
                )
                with gr.Accordion("Settings", open=False):
                    max_new_tokens = gr.Slider(
                        1, MAX_NEW_TOKENS, value=DEFAULT_NEW_TOKENS, step=1, label="Max new tokens"
                    )
                ask = gr.Button("Ask every model", variant="primary")
        status = gr.Markdown()
        answers = []
        with gr.Row(equal_height=True):
            for column in columns:
                with gr.Column(min_width=240):
                    gr.Markdown(column.markdown())
                    answers.append(gr.Textbox(label="Answer", lines=4, interactive=False))
        rows, labels = example_rows(examples)
        gr.Examples(rows, inputs=[image, question], example_labels=labels, label="Examples")
        gr.on(
            [ask.click, question.submit],
            answer,
            inputs=[image, question, max_new_tokens],
            outputs=[status, *answers],
            api_name="answer",
            preprocess=False,  # raw values: respond() checks and decodes them itself
            concurrency_limit=1,  # one generation at a time; the pool's lock also guarantees it
        )
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
    """Load the models once and build the page."""
    pool = ModelPool.load(base, adapters, quantization)
    columns = [describe(base, original=True), *(describe(adapter) for adapter in adapters)]
    first = columns[1] if adapters else None
    data = data or (run_setting(adapters[0], "data") if adapters else None)
    return build_demo(pool, columns, load_examples(data, first.forget if first else None))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    parser.add_argument("--quickstart", default=QUICKSTART, help="folder served when no model is named")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; 0.0.0.0 on Spaces)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860 or the first free one after it)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base, adapters = choose_models(args.base, args.adapter, os.environ, args.quickstart)
    quantization = serving_quantization(args.quantization, adapters)
    print(f"base: {base}\nadapters: {', '.join(adapters) or 'none'}\nquantization: {quantization or 'none'}")
    demo = create_demo(base, adapters, quantization, args.data)
    demo.queue(max_size=64).launch(server_name=args.host, server_port=args.port, max_file_size=MAX_FILE_SIZE)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
