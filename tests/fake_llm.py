"""A local OpenAI-compatible chat endpoint that replays scripted answers, for tests.

Each request to /v1/chat/completions takes the next step of the script: a reply text, an HTTP
status (a 429 with Retry-After, say), a delay before replying, or a body that is not JSON.
Every request body is kept, so tests can read what tlc sent.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeLLM:
    def __init__(self, script):
        self.script = list(script)
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the name http.server calls)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with fake._lock:
                    fake.requests.append(json.loads(body))
                    step = fake.script.pop(0) if fake.script else {"status": 500}
                fake.respond(self, step)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def respond(self, handler, step) -> None:
        time.sleep(step.get("delay", 0))
        status = step.get("status", 200)
        if "raw" in step:
            payload = step["raw"].encode()
        elif status == 200:
            payload = json.dumps({
                "id": "chatcmpl-test", "object": "chat.completion", "created": 0,
                "model": "fake", "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                           "total_tokens": 2},
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": step["reply"]}}],
            }).encode()
        else:
            payload = json.dumps({"error": {"message": "scripted", "type": "test"}}).encode()
        try:
            handler.send_response(status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(payload)))
            for key, value in step.get("headers", {}).items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting, as a timeout test intends

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def user_messages(self, index: int) -> str:
        """The last user message of the index-th request."""
        messages = self.requests[index]["messages"]
        return [m["content"] for m in messages if m["role"] == "user"][-1]
