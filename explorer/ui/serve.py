"""Start the Streamlit server for streamlit_app.py in this process (what `eigen-explorer serve` runs)."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys

from explorer.paths import REPO_ROOT
from explorer.ui.streamlit_internals import disable_legacy_pages_mode


def serve(port: int, address: str, extra_args: list[str], warm_up: bool = True) -> int:
    app = REPO_ROOT / "streamlit_app.py"
    if not app.is_file():
        print(f"error: {app} not found; run from a source checkout (pip install -e .).", file=sys.stderr)
        return 2
    from streamlit.web import cli as streamlit_cli

    os.chdir(REPO_ROOT)  # so .streamlit/config.toml applies
    # `kill -USR1 <pid>` prints every thread's Python stack to the server's stderr: how a page stuck in
    # "running" is diagnosed (the browser tests send it when one fails and attach the dump to the report).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # In-process, so the first visitor already gets the app's own navigation (see streamlit_internals).
    disable_legacy_pages_mode()
    # Imports and the default model in the background, so the first visitor does not wait for them.
    if warm_up:
        from explorer.ui import warmup

        warmup.start()
    sys.argv = [
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(port),
        "--server.address",
        address,
        *extra_args,
    ]
    return streamlit_cli.main()
