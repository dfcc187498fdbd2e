"""``python app.py`` on localhost, driven over real HTTP: every column answers, answers stream, malformed input never
breaks the server, and concurrent clients get exactly the answers they get one by one."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.app_servers import free_port, stop
from unlearn.data import load_clear
from unlearn.offline.random_adapters import write_random_adapters
from unlearn.serving.images import DAMAGED, NOT_AN_IMAGE

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 180
TOKENS = 6
COLUMNS = 3  # the original and two adapters


@pytest.fixture(scope="module")
def server(tiny_model, mini_clear, tmp_path_factory) -> Iterator[tuple[str, subprocess.Popen]]:
    """The app serving the tiny model and two random adapters, as ``python app.py`` runs it."""
    folder = tmp_path_factory.mktemp("http_app")
    configs = [{"method": "npo", "forget": "forget10", "data": mini_clear}, {"method": "gd", "forget": "forget10"}]
    adapters = write_random_adapters(tiny_model, folder / "adapters", configs)
    port = free_port()
    command = [sys.executable, "app.py", "--base", tiny_model, "--port", str(port)]
    command += [arg for adapter in adapters for arg in ("--adapter", str(adapter))]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(folder / "gradio")}
    log = (folder / "app.log").open("w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    else:
        process.kill()
        pytest.fail(f"the app did not start:\n{(folder / 'app.log').read_text()[-3000:]}")
    try:
        yield url, process
    finally:
        stop(process)
        log.close()


@pytest.fixture(scope="module")
def face_file(mini_clear, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("faces") / "face.png"
    load_clear("forget10", mini_clear)[0]["image"].save(path)
    return str(path)


def ask(url: str, image: str | None, question: str, tokens: int = TOKENS, names: str = "") -> tuple:
    """``(status, answer per column..., bars per column...)`` of one request: image, question, max new tokens,
    candidate names and no gallery example."""
    return tuple(
        Client(url, verbose=False).predict(
            handle_file(image) if image else None, question, tokens, names, "", api_name="/answer"
        )
    )


def raw_call(url: str, body: str) -> tuple[str, str]:
    """POST a hand-written JSON body to /answer; the last server-sent event and its data (or the HTTP status)."""
    endpoint = f"{url}gradio_api/call/answer"
    response = httpx.post(endpoint, content=body, headers={"content-type": "application/json"}, timeout=30)
    if response.status_code != 200:
        return str(response.status_code), response.text
    stream = httpx.get(f"{endpoint}/{response.json()['event_id']}", timeout=120).text.strip().splitlines()
    return stream[-2].removeprefix("event: "), stream[-1].removeprefix("data: ")


def test_every_column_answers_and_answers_stream(server, face_file):
    url, _ = server
    job = Client(url, verbose=False).submit(
        handle_file(face_file), "Who is this person?", TOKENS, "", "", api_name="/answer"
    )
    status, *outputs = job.result(timeout=120)
    answers = outputs[:COLUMNS]
    assert status == "" and len(outputs) == 2 * COLUMNS and all(answers)
    assert len(set(answers)) == 3, "the original and the two adapters answer differently"
    updates = job.outputs()
    assert len(updates) > 3, "answers arrive token by token, not at the end"
    assert list(updates[0][2 : COLUMNS + 1]) == ["", ""], "the original streams first, the adapters wait their turn"


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def bomb_header() -> bytes:
    """A 1x1 PNG whose header (with a valid CRC) claims 30000 x 30000 pixels."""
    data = bytearray(png_bytes(Image.new("L", (1, 1))))
    header = b"IHDR" + struct.pack(">II", 30000, 30000) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


def malformed_files(folder: Path) -> dict[str, tuple[bytes, str]]:
    """File name -> (content, expected status): files a browser or a client may send in place of a photo."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8))
    frames = [Image.new("RGB", (16, 16), (255, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 255))]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    cmyk = io.BytesIO()
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(cmyk, "JPEG")
    sixteen = Image.fromarray(np.arange(256, dtype=np.uint16).reshape(16, 16) * 256)
    return {
        "notes.txt": (b"just some text", f"⚠️ {NOT_AN_IMAGE}"),
        "empty.png": (b"", f"⚠️ {NOT_AN_IMAGE}"),
        "drawing.svg": (b"<svg xmlns='http://www.w3.org/2000/svg'><circle r='4'/></svg>", f"⚠️ {NOT_AN_IMAGE}"),
        "truncated.png": (png_bytes(noise)[:1500], f"⚠️ {DAMAGED}"),
        "bomb.png": (bomb_header(), "⚠️ the image is too large"),
        "animated.gif": (animated.getvalue(), ""),
        "cmyk.jpg": (cmyk.getvalue(), ""),
        "sixteen-bit.png": (png_bytes(sixteen), ""),
        "palette.png": (png_bytes(noise.convert("P"), transparency=0), ""),
        "one-bit.png": (png_bytes(noise.convert("1")), ""),
        "strip.png": (png_bytes(Image.new("RGB", (4000, 2))), ""),
    }


# Hand-written request bodies -> the server-sent event expected (or the HTTP status) and, for a complete event,
# the status line it must show.
TEXT_ONLY = "ℹ️ text-only question (no image)"
NOT_UPLOADED = "⚠️ the image did not arrive: please upload it again"
UNKNOWN_EXAMPLE = "⚠️ unknown example: pick a face from the gallery again"
RAW_BODIES = {
    "lone surrogate and NUL": (
        '{"data": [null, "\\ud800 Who\\u0000 is <image> this?</s>", 1, "", ""]}',
        "complete",
        TEXT_ONLY,
    ),
    "question is a number": ('{"data": [null, 12345, 1, "", ""]}', "complete", "⚠️ please type a question"),
    "max tokens not a number": ('{"data": [null, "hi", "abc", "", ""]}', "complete", TEXT_ONLY),
    "max tokens negative": ('{"data": [null, "hi", -5, "", ""]}', "complete", TEXT_ONLY),
    "missing inputs": ('{"data": [null]}', "error", None),
    "image is a string": ('{"data": ["/etc/passwd", "hi", 1, "", ""]}', "error", None),
    "file outside the upload folder": (
        '{"data": [{"path": "/etc/passwd"}, "hi", 1, "", ""]}',
        "complete",
        NOT_UPLOADED,
    ),
    "declared file outside it": (
        '{"data": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, "hi", 1, "", ""]}',
        "error",
        None,
    ),
    "garbage data URL": (
        '{"data": [{"url": "data:image/png;base64,@@@"}, "hi", 1, "", ""]}',
        "complete",
        f"⚠️ {NOT_AN_IMAGE}",
    ),
    "candidates not text": ('{"data": [null, "hi", 1, ["Ann", "Bo"], ""]}', "complete", TEXT_ONLY),
    "one candidate": (
        '{"data": [null, "hi", 1, "Ann", ""]}',
        "complete",
        "⚠️ give at least two candidate names, separated by commas",
    ),
    "unknown example": ('{"data": [null, "hi", 1, "", "forget_face:99999"]}', "complete", UNKNOWN_EXAMPLE),
    "example not text": ('{"data": [null, "hi", 1, "", [1]]}', "complete", UNKNOWN_EXAMPLE),
    "broken JSON": ('{"data": [null, "hi"', "422", None),
}


def test_malformed_input_never_breaks_the_server(server, face_file, tmp_path):
    url, process = server
    before = ask(url, face_file, "Who is this person?")
    for name, (content, expected) in malformed_files(tmp_path).items():
        (tmp_path / name).write_bytes(content)
        status, *answers = ask(url, str(tmp_path / name), "Who is this person?", 1)[: 1 + COLUMNS]
        assert status.startswith(expected), name
        # a decoded image is answered (a column may legitimately stop at once); a refused one gets no answers
        assert any(answers) if expected == "" else not any(answers), name
    assert ask(url, None, "")[0] == "⚠️ please type a question"
    assert ask(url, None, " \n\t ")[0] == "⚠️ please type a question"
    assert "cut to fit" in ask(url, None, "7 " * 50_000, 1)[0]
    odd = "\u202eRTL\u202c z\u0301\u200b 😀🏳️‍🌈 \U0010ffff שלום 你好 <image><image></s>"
    assert all(ask(url, face_file, odd, 1)[1 : 1 + COLUMNS])
    for name, (body, expected_event, expected_status) in RAW_BODIES.items():
        event, data = raw_call(url, body)
        assert event == expected_event, f"{name}: {event} {data}"
        if expected_status is not None:
            status, *answers = json.loads(data)[: 1 + COLUMNS]
            assert status == expected_status and all(answers) == (status == TEXT_ONLY), name
    valid_png = base64.b64encode(Path(face_file).read_bytes()).decode()
    event, data = raw_call(
        url, json.dumps({"data": [{"url": f"data:image/png;base64,{valid_png}"}, "Who?", 1, "", ""]})
    )
    assert event == "complete" and json.loads(data)[0] == "", "an image sent inline as a data URL is used"
    assert process.poll() is None, "the server is still running"
    assert ask(url, face_file, "Who is this person?") == before, "and answers exactly as before"


def test_concurrent_clients_get_the_answers_they_get_one_by_one(server, face_file):
    url, _ = server
    names = "Ann Lee, Bo Chen, Cy Dunn"
    questions = [
        (face_file, "Who is this person?", names),
        (face_file, "Describe the image.", ""),
        (None, "Who is this person?", names),
        (face_file, "What is the name of the person in the image?", ""),
        (None, "Where was Ann born?", ""),
        (face_file, "Name the person in the photo.", "Dee Fox, Eli Gray"),
        (None, "Describe the image.", ""),
        (face_file, "Write a caption for this image.", ""),
    ]
    alone = [ask(url, image, question, TOKENS, candidates) for image, question, candidates in questions]
    assert len({json.dumps(outputs) for outputs in alone}) == len(alone), "eight questions, eight sets of answers"
    assert all(outputs[1 + COLUMNS] for outputs, job in zip(alone, questions, strict=True) if job[2]), "names get bars"
    with ThreadPoolExecutor(len(questions)) as executor:
        together = list(executor.map(lambda job: ask(url, job[0], job[1], TOKENS, job[2]), questions))
    assert together == alone
