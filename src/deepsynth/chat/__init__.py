"""Chat fine-tuning data: conversations in the OpenAI format (or ShareGPT and Alpaca,
converted), JSON Lines or JSON arrays, validated, rendered with a chat template, and labeled
on assistant tokens only."""
