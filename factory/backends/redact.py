"""Keep a secret (an API key) out of every message a backend raises: servers echo it back
in 401 pages, error bodies and debug dumps, and our error line quotes what they sent."""
from __future__ import annotations

import json

MASK = "***"


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` replaced by ***; also its JSON-escaped form
    (a key holding '/' or '"' comes back as '\\/' or '\\"' inside a JSON error body).
    Redact the whole text before cutting it short: a cut can leave half a key behind."""
    if not secret:
        return text
    for form in sorted({secret, json.dumps(secret)[1:-1], secret.replace("/", "\\/")}, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text
