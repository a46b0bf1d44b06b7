"""Render a report in a real, headless Chromium: the DOM it builds and a screenshot (for tests and docs).

Only a browser already installed is used (Debian's `chromium`, `chromium-browser` or `google-chrome`); nothing
is downloaded. The flags keep it off the network and out of the user's profile.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")


def find_chromium() -> str | None:
    """Path of an installed Chromium-family browser, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no chromium, chromium-browser or google-chrome on PATH")
    with tempfile.TemporaryDirectory(prefix="losspath-chromium-") as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout, check=False)


def dump_dom(html_file: str | Path, timeout: float = 60) -> str:
    """The DOM Chromium builds from `html_file` (opened as file://), serialized as HTML."""
    proc = _run(["--virtual-time-budget=5000", "--dump-dom", Path(html_file).resolve().as_uri()], timeout)
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise RuntimeError(f"chromium --dump-dom failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


def screenshot(html_file: str | Path, png: str | Path, *, width: int = 1200, height: int = 2000,
               timeout: float = 60) -> Path:
    """A `width` × `height` PNG screenshot of the top of `html_file` as Chromium renders it."""
    png = Path(png).resolve()
    proc = _run([f"--window-size={width},{height}", "--virtual-time-budget=5000", f"--screenshot={png}",
                 Path(html_file).resolve().as_uri()], timeout)
    if not png.is_file():
        raise RuntimeError(f"chromium --screenshot wrote nothing ({proc.returncode}): {proc.stderr[-2000:]}")
    return png
