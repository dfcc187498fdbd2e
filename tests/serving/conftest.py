"""The app as a new user first starts it: ``python app.py`` in an empty folder with nothing configured, which builds
the offline demo (the quickstart's default run) while a progress page is served, then serves the demo."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.app_servers import free_port, stop
from unlearn.serving.building import BUILDING_TITLE

ROOT = Path(__file__).resolve().parents[2]
BUILD_SECONDS = 1800  # the default quickstart takes 3 to 9 minutes on 2 cores; a loaded CI machine may be slower


@dataclass
class DemoApp:
    """The started app: its address, the folder it was started in, what the progress page showed, and its log."""

    url: str
    folder: Path
    progress_pages: list[str]
    log: Path

    @property
    def quickstart(self) -> Path:
        return self.folder / "outputs" / "quickstart"


@pytest.fixture(scope="session")
def demo_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoApp]:
    folder = tmp_path_factory.mktemp("first_start")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLEAR_")}
    env |= {"GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(folder / "gradio")}
    log_path = folder.parent / f"{folder.name}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}/"
        pages: list[str] = []
        deadline = time.monotonic() + BUILD_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(url, timeout=5)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                if BUILDING_TITLE not in response.text:
                    break
                pages.append(response.text)
            time.sleep(2)
        else:
            process.kill()
            pytest.fail(f"the demo was not built and served:\n{log_path.read_text()[-4000:]}")
        try:
            yield DemoApp(url, folder, pages, log_path)
        finally:
            stop(process)
