"""A headless Chromium loads the page of the first start (the offline demo the app built itself): the DOM holds
every model column's title, the gallery's thumbnails and the bars' names, and a screenshot shows them.

Set ``APP_SCREENSHOT=/some/file.png`` to keep the screenshot (``docs/app.png`` is one); otherwise it is written to
the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html import escape
from pathlib import Path

import pytest
from PIL import Image

from app import BADGES, TRUE_MARK
from unlearn.serving.columns import describe, discover_quickstart
from unlearn.serving.examples import clear_examples

CHROMIUM = shutil.which("chromium")
XDIST_GROUP = "first_start"  # with the other module on the demo_app fixture: one build
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
WINDOW = (1400, 1900)


@pytest.fixture(scope="module")
def page(demo_app) -> tuple[str, list[str], list]:
    """The page's URL, the column titles it must show and its gallery's faces."""
    base, adapters = discover_quickstart(demo_app.quickstart)
    columns = [describe(base, original=True), *(describe(adapter) for adapter in adapters)]
    faces = [face for face in clear_examples(str(demo_app.quickstart / "data"), "forget10") if face.key]
    return demo_app.url, [text for column in columns for text in (column.heading, column.name)], faces


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


def test_page_shows_every_model_column_the_gallery_and_the_bars(page, tmp_path):
    url, titles, faces = page
    dom = rendered(chromium(tmp_path, url, "--dump-dom"))
    headings, names = titles[0::2], titles[1::2]
    assert headings == ["Original", "NPO_GD · forget10"] and names == ["vanilla", "unlearn-npo_gd"]
    missing = [h for h in headings if f"<h3>{escape(h)}</h3>" not in dom]
    missing += [n for n in names if f"<code>{escape(n)}</code>" not in dom]
    assert not missing, f"column titles missing from the rendered page: {missing}"
    assert "Model utility <strong>" in dom, "headline figures are rendered"
    first = faces[0]  # the page opens on the first forgotten face, asked already
    assert dom.count(escape(TRUE_MARK + first.true_name)) >= 2, "each column's bars name and mark the true name"
    assert all(escape(name) in dom for name in first.options[1:]), "and the decoys"
    thumbnails = re.findall(r"<img[^>]+src=\"[^\"]*/gradio_api/file=[^\"]+\"", dom)
    assert len(thumbnails) >= len(faces), "every gallery face is a thumbnail"
    assert all(escape(f"{BADGES[face.kind]} · {face.true_name}") in dom for face in faces), "with its badge"
    assert "Results of the served models" in dom and "unlearn-npo_gd" in dom and "gold-4bit" in dom


def test_screenshot_of_the_page(page, tmp_path):
    url, _, _ = page
    path = Path(os.environ.get("APP_SCREENSHOT") or tmp_path / "app.png")
    chromium(tmp_path, url, f"--screenshot={path}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
    with Image.open(path) as shot:
        assert shot.size == WINDOW
        assert len(set(shot.convert("L").resize((70, 55)).getdata())) > 10, "the page rendered, not a blank window"
