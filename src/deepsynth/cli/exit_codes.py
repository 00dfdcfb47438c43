"""Exit codes of the ``deepsynth`` command (documented in docs/datasets.md)."""

OK = 0
UPLOAD_FAILED = 1  # the work is done and kept locally; only a Hub upload needs a retry
USER_ERROR = 2  # bad input: the message says what was wrong and what is allowed
STOPPED = 130  # stopped on request; re-running the same command resumes
