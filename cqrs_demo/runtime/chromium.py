"""Finding a Chromium for the browser test (Debian's, or any on the PATH); Playwright drives it."""

from __future__ import annotations

import os
import shutil

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL = "apt-get install chromium"


def find_chromium(explicit: str | None = None) -> str | None:
    """`explicit` (the browser test's CHROMIUM_PATH) if executable, else /usr/bin/chromium or one on PATH."""
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for candidate in CANDIDATES:
        found = candidate if os.path.isabs(candidate) and os.access(candidate, os.X_OK) else shutil.which(candidate)
        if found:
            return found
    return None
