"""A page that shows a long job's progress while it runs: the app's first start, when it builds the offline demo.

The job's printed lines (``print`` to stdout, as the quickstart reports its stages) are copied to the terminal and
to the page, which refreshes every few seconds. When the job ends the page closes, and a script in it reloads the
browser as soon as the address serves another page: the app that follows on the same port.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import TextIO, TypeVar

import gradio as gr

T = TypeVar("T")
BUILDING_TITLE = "Building the offline demo"
SHOWN_LINES = 14
REFRESH_SECONDS = 2.0
# Reload once the address no longer serves this page (the app replaced it); failures mean "restarting, wait".
RELOAD_SCRIPT = f"""<script>
setInterval(async () => {{
  try {{
    const page = await (await fetch(window.location.href, {{cache: "no-store"}})).text();
    if (!page.includes("{BUILDING_TITLE}")) window.location.reload();
  }} catch (error) {{}}
}}, 4000);
</script>"""


class Transcript:
    """A text stream that writes through to ``terminal`` and keeps the last ``SHOWN_LINES`` complete lines."""

    def __init__(self, terminal: TextIO) -> None:
        self.terminal = terminal
        self.lines: deque[str] = deque(maxlen=SHOWN_LINES)
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        self.terminal.write(text)
        with self._lock:
            *complete, self._partial = (self._partial + text).split("\n")
            self.lines.extend(line.rstrip() for line in complete if line.strip())
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)


def progress_page(description: str, transcript: Transcript) -> gr.Blocks:
    """The page: what is being built and why, then the job's last lines, refreshed every REFRESH_SECONDS."""

    def shown() -> str:
        return f"```\n{transcript.text() or 'starting ...'}\n```"

    with gr.Blocks(title=BUILDING_TITLE) as page:
        gr.Markdown(f"# {BUILDING_TITLE}\n{description}")
        log = gr.Markdown(shown())
        gr.Timer(REFRESH_SECONDS).tick(shown, outputs=log, queue=False, show_progress="hidden")
    return page


def run_with_progress_page(
    job: Callable[[], T], description: str, host: str | None = None, port: int | None = None
) -> tuple[T, int]:
    """Run ``job`` while :func:`progress_page` is served on ``host:port``; return its result and the port used.

    The page is closed whatever the job does (an exception is raised on, after the page is gone).
    """
    transcript = Transcript(sys.stdout)
    page = progress_page(description, transcript)
    page.queue().launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, head=RELOAD_SCRIPT)
    used_port = page.server_port
    print(f"{BUILDING_TITLE}: progress at {page.local_url}", flush=True)
    stdout, sys.stdout = sys.stdout, transcript
    try:
        return job(), used_port
    finally:
        sys.stdout = stdout
        page.close()
