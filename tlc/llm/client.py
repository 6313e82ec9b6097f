"""A chat model behind any OpenAI-compatible endpoint, with bounded retries.

Connection errors, timeouts, 429s and 5xx answers are retried with exponential backoff (a
server's Retry-After is honoured up to a cap); other errors (a bad key, an unknown model) end
the run at once. The `openai` package is imported only when a client is made.
"""
from __future__ import annotations

import time
from dataclasses import dataclass


class LLMError(Exception):
    """The model could not be reached or refused the request; the message says why."""


@dataclass
class RetryPolicy:
    attempts: int = 4
    first_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0


class ChatModel:
    def __init__(self, model: str, base_url: str | None, api_key: str, timeout: float = 120.0,
                 retry: RetryPolicy | None = None, transcript=None, sleep=time.sleep):
        import openai

        self._openai = openai
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout,
                                     max_retries=0)
        self.model = model
        self.retry = retry or RetryPolicy()
        self.transcript = transcript
        self._sleep = sleep

    def complete(self, messages: list[dict]) -> str:
        """The text of the model's reply to a conversation."""
        openai = self._openai
        retried = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError,
                   openai.InternalServerError)
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = self._client.chat.completions.create(model=self.model,
                                                                messages=messages)
                return response.choices[0].message.content or ""
            except retried as error:
                if attempt == self.retry.attempts:
                    raise LLMError(f"{_describe(error)}; gave up after {attempt} attempts")
                delay = self._delay(error, attempt)
                if self.transcript:
                    self.transcript.write("retry", attempt=attempt, error=_describe(error),
                                          delay=delay)
                self._sleep(delay)
            except openai.APIStatusError as error:
                raise LLMError(_describe(error)) from None
            except (IndexError, AttributeError):
                raise LLMError("the endpoint's answer holds no chat message") from None
        raise LLMError("no attempt was made")

    def _delay(self, error, attempt: int) -> float:
        backoff = min(self.retry.max_delay, self.retry.first_delay * 2 ** (attempt - 1))
        response = getattr(error, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        try:
            return min(self.retry.max_retry_after, max(0.0, float(header)))
        except (TypeError, ValueError):
            return backoff


def _describe(error) -> str:
    status = getattr(error, "status_code", None)
    kind = type(error).__name__
    return f"{kind} (HTTP {status})" if status else kind
