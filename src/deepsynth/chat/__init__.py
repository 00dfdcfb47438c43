"""Chat fine-tuning data: OpenAI-style conversations in JSONL, validated, rendered with a chat
template, and labeled on assistant tokens only."""
