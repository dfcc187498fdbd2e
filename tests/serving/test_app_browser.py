"""A headless Chromium loads the page: the DOM holds every model column's title, and a screenshot is taken.

Set ``APP_SCREENSHOT=/some/file.png`` to keep the screenshot; otherwise it is written to the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from html import escape
from pathlib import Path

import pytest
from PIL import Image

import app
from unlearn.offline.random_adapters import write_random_adapters
from unlearn.serving.columns import describe

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs the Debian package chromium (.ci/run installs it)"),
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",
]
WINDOW = (1400, 1100)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def page(tiny_model, mini_clear, tmp_path_factory) -> Iterator[tuple[str, list[str]]]:
    """The page's URL (app launched in this process) and the column titles it must show."""
    folder = tmp_path_factory.mktemp("browser_app")
    configs = [{"method": "npo", "forget": "forget10", "data": mini_clear}, {"method": "rmu", "forget": "forget10"}]
    adapters = [str(a) for a in write_random_adapters(tiny_model, folder, configs, [{"model_utility": 0.5}, None])]
    demo = app.create_demo(tiny_model, adapters)
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    columns = [describe(tiny_model, original=True), *(describe(adapter) for adapter in adapters)]
    yield f"http://127.0.0.1:{port}/", [text for column in columns for text in (column.heading, column.name)]
    demo.close()


def chromium(tmp_path: Path, url: str, *flags: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *flags, url], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def rendered(dom: str) -> str:
    """The DOM without scripts: the server also embeds the page's configuration (with every title) as JSON."""
    return re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.DOTALL)


def test_page_shows_every_model_column_and_the_examples(page, tmp_path):
    url, titles = page
    dom = rendered(chromium(tmp_path, url, "--dump-dom"))
    headings, names = titles[0::2], titles[1::2]
    assert headings == ["Original", "NPO · forget10", "RMU · forget10"] and names[1:] == ["adapter-1", "adapter-2"]
    missing = [h for h in headings if f"<h3>{escape(h)}</h3>" not in dom]
    missing += [n for n in names if f"<code>{escape(n)}</code>" not in dom]
    assert not missing, f"column titles missing from the rendered page: {missing}"
    assert "Model utility <strong>0.5</strong>" in dom, "headline figures are rendered"
    assert "Ask every model" in dom and "forget · text question" in dom


def test_screenshot_of_the_page(page, tmp_path):
    url, _ = page
    path = Path(os.environ.get("APP_SCREENSHOT") or tmp_path / "app.png")
    chromium(tmp_path, url, f"--screenshot={path}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
    with Image.open(path) as shot:
        assert shot.size == WINDOW
        assert len(set(shot.convert("L").resize((70, 55)).getdata())) > 10, "the page rendered, not a blank window"
