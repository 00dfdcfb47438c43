"""DeepSynth: summarization corpora to rendered page images, and DeepSeek-OCR fine-tuning."""

__version__ = "0.1.0"
