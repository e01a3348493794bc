"""The server's Streamlit settings that keep pages working (.streamlit/config.toml; the reasons are its comments)."""

from __future__ import annotations

import tomllib

from explorer.paths import REPO_ROOT


def _config() -> dict:
    return tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())


def test_forward_message_cache_is_off():
    """A reference to a message the browser has dropped stops its message queue for good (the page stays
    "running"): no element may be sent as a reference. Plotly charts run to megabytes, so the threshold must be
    above any message the app can send (the websocket's own limit, server.maxMessageSize, is in MB)."""
    config = _config()
    # Streamlit's default limit: 200 MB.
    max_message_bytes = config.get("server", {}).get("maxMessageSize", 200) * 1e6
    assert config["global"]["minCachedMessageSize"] > max_message_bytes


def test_no_file_watcher_and_no_gc_after_each_run():
    config = _config()
    assert config["server"]["fileWatcherType"] == "none"
    assert config["runner"]["postScriptGC"] is False
