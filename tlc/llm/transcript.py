"""The transcript: every exchange of a `tlc generate` run, one JSON object a line.

Secrets (the API key) are removed from everything written, whatever field they turn up in.
"""
from __future__ import annotations

import json
import time


class Transcript:
    def __init__(self, path: str | None, secrets=()):
        self._handle = open(path, "w", encoding="utf-8") if path else None
        self._secrets = [s for s in secrets if s and len(s) >= 4]
        self.events: list[dict] = []

    def write(self, event: str, **fields) -> None:
        record = {"time": round(time.time(), 3), "event": event, **fields}
        text = json.dumps(record, ensure_ascii=False)
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        record = json.loads(text)
        self.events.append(record)
        if self._handle:
            self._handle.write(text + "\n")
            self._handle.flush()

    def close(self) -> None:
        if self._handle:
            self._handle.close()
