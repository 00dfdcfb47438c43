"""Model calls a request waits for (summaries, chat replies): one worker thread, since each
loads a model and fills the CPU, and a time limit past which the answer is a 504 (the call
finishes in the background; the next request waits behind it)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, TimeoutError

from flask import jsonify

TIMEOUT_SECONDS = 120
_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-call")


class TookTooLong(Exception):
    pass


def bounded(function, *args, **kwargs):
    """``function(*args, **kwargs)`` on the model worker; TookTooLong past the limit."""
    future = _worker.submit(function, *args, **kwargs)
    try:
        return future.result(timeout=TIMEOUT_SECONDS)
    except TimeoutError:
        raise TookTooLong from None


def too_slow(what: str):
    return jsonify(error=f"{what} took longer than {TIMEOUT_SECONDS} s"), 504
