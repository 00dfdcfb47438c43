"""From a conversation to a training example: the text a chat template renders, and labels on
the assistant's tokens only (content, reasoning, tool calls).

Two templates: the model's own (its tokenizer's ``chat_template``, tools passed to it), or the
built-in ChatML-style one below when the tokenizer has none (or on request)::

    <|im_start|>tools\\n[...tool schemas as JSON...]<|im_end|>\\n      (when the line has tools)
    <|im_start|>{role}\\n{content}<|im_end|>\\n                          system, developer, user
    <|im_start|>assistant\\n<think>\\n{reasoning}\\n</think>\\n{content}
    <tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>\\n<|im_end|>\\n
    <|im_start|>tool\\n{content}<|im_end|>\\n

The trained span of an assistant turn runs from its first token after ``assistant\\n`` through
its ``<|im_end|>``, so the model learns to stop; a turn with ``weight`` 0 is rendered and not
trained. With the model's own template, each assistant
turn's span is found by rendering the conversation up to that turn (with the generation
prompt) and through it; a template that re-renders earlier turns differently is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from deepsynth.errors import ConfigRefused, DeepSynthError

IGNORE = -100
START, END = "<|im_start|>", "<|im_end|>"
CHAT_SPECIAL_TOKENS = (START, END, "<think>", "</think>", "<tool_call>", "</tool_call>")
# Token counts of texts longer than this many characters (or 16 x max_length, if more) are
# estimated from their start when that start alone is longer than max_length: tokenizing a
# 3 MB line takes seconds and hundreds of MB, to learn only that it will be cut.
COUNT_CHARS = 1 << 16


@dataclass
class TokenCount:
    tokens: int
    estimated: bool = False  # scaled from the tokens of the text's first characters


@dataclass
class EncodedChat:
    input_ids: list[int]
    labels: list[int]
    text: str
    spans: list[tuple[int, int]]  # character spans of the trained text
    truncated: bool

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def _arguments(call: dict) -> dict:
    try:
        return json.loads(call["function"]["arguments"])
    except (KeyError, TypeError, ValueError):
        return {}


def builtin_assistant(message: dict, reasoning: bool) -> str:
    parts = []
    if reasoning and message.get("reasoning"):
        parts.append(f"<think>\n{message['reasoning']}\n</think>\n")
    parts.append(message.get("content") or "")
    for call in message.get("tool_calls") or []:
        payload = {"name": call["function"]["name"], "arguments": _arguments(call)}
        parts.append(f"<tool_call>\n{json.dumps(payload, ensure_ascii=False)}\n</tool_call>\n")
    return "".join(parts)


class ChatEncoder:
    """Renders and labels conversations; plain parameters, any tokenizer.

    ``template``: ``auto`` (the model's if its tokenizer has one, else built-in), ``model`` or
    ``builtin``. ``reasoning``: ``render`` or ``drop``. ``train_on``: ``all_assistant`` or
    ``last_assistant``.
    """

    def __init__(self, tokenizer, template: str = "auto", reasoning: str = "render",
                 train_on: str = "all_assistant", max_length: int = 2048):
        has_own = bool(getattr(tokenizer, "chat_template", None))
        if template == "model" and not has_own:
            raise ConfigRefused("chat_template", "the model's tokenizer has no chat template",
                                "auto or builtin")
        self.tokenizer = tokenizer
        self.use_model_template = template == "model" or (template == "auto" and has_own)
        self.reasoning, self.train_on, self.max_length = reasoning, train_on, max_length
        source = tokenizer.chat_template if has_own and isinstance(
            tokenizer.chat_template, str) else ""
        self.template_has_developer = "developer" in source
        self.template_has_reasoning = "reasoning_content" in source

    # Rendering.
    def render(self, conversation: dict) -> tuple[str, list[tuple[int, int]]]:
        """The text and the character spans of every assistant turn, in order."""
        if self.use_model_template:
            return self._render_with_model(conversation)
        return self._render_builtin(conversation)

    def _render_builtin(self, conversation: dict) -> tuple[str, list[tuple[int, int]]]:
        text, spans = "", []
        if conversation.get("tools"):
            text += f"{START}tools\n{json.dumps(conversation['tools'], ensure_ascii=False)}{END}\n"
        for message in conversation["messages"]:
            role = message["role"]
            text += f"{START}{role}\n"
            if role == "assistant":
                start = len(text)
                text += builtin_assistant(message, self.reasoning == "render") + END
                spans.append((start, len(text)))
                text += "\n"
            else:
                text += f"{message.get('content') or ''}{END}\n"
        return text, spans

    def builtin_prompt(self, conversation: dict) -> str:
        text, _ = self._render_builtin(conversation)
        return text + f"{START}assistant\n"

    def _model_messages(self, messages: list[dict]) -> list[dict]:
        """Our format as chat templates expect it: developer on the system turn where the
        template has no developer role, reasoning as ``reasoning_content`` or a think block,
        tool-call arguments as objects."""
        converted = []
        for message in messages:
            message = dict(message)
            if message["role"] == "developer" and not self.template_has_developer:
                message["role"] = "system"
            if message["role"] == "assistant":
                reasoning = message.pop("reasoning", None)
                if reasoning and self.reasoning == "render":
                    if self.template_has_reasoning:
                        message["reasoning_content"] = reasoning
                    else:
                        message["content"] = f"<think>\n{reasoning}\n</think>\n" + (
                            message.get("content") or "")
                if message.get("tool_calls"):
                    message["tool_calls"] = [
                        {**call, "function": {"name": call["function"]["name"],
                                              "arguments": _arguments(call)}}
                        for call in message["tool_calls"]]
            converted.append(message)
        return converted

    def _apply(self, messages: list[dict], tools, generation_prompt: bool) -> str:
        try:
            return self.tokenizer.apply_chat_template(
                messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt)
        except Exception as exc:  # a Jinja error in the model's template
            raise DeepSynthError(f"the model's chat template failed: {type(exc).__name__}: "
                                 f"{exc}; use chat_template builtin") from None

    def _opening(self, tools) -> str:
        """What the template puts before a first assistant turn (tools, the turn header):
        the text before a sentinel rendered as that turn's content."""
        sentinel = "\u2063DEEPSYNTH-OPENING\u2063"
        probe = self._apply([{"role": "assistant", "content": sentinel}], tools, False)
        return probe[:probe.find(sentinel)] if sentinel in probe else ""

    def _render_with_model(self, conversation: dict) -> tuple[str, list[tuple[int, int]]]:
        messages = self._model_messages(conversation["messages"])
        tools = conversation.get("tools") or None
        full = self._apply(messages, tools, False)
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self._apply(messages[:i], tools, True) if i else self._opening(tools)
            through = self._apply(messages[:i + 1], tools, False)
            if not (through.startswith(before) and full.startswith(through)):
                raise DeepSynthError(
                    "the model's chat template renders earlier turns differently as the "
                    "conversation grows, so assistant tokens cannot be located; use "
                    "chat_template builtin")
            spans.append((len(before), len(through)))
        return full, spans

    def prompt_text(self, conversation: dict) -> tuple[str, str]:
        """What generation starts from (every turn before the last assistant turn, with the
        generation prompt) and the reference (that turn's content)."""
        messages = conversation["messages"]
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        head = {**conversation, "messages": messages[:last]}
        return self.generation_prompt(head), messages[last].get("content") or ""

    def generation_prompt(self, conversation: dict) -> str:
        """The conversation so far, then the start of the assistant's next turn: what a
        reply is generated from (the model's template with its generation prompt, or the
        built-in one)."""
        if self.use_model_template:
            return self._apply(self._model_messages(conversation["messages"]),
                               conversation.get("tools") or None, True)
        return self.builtin_prompt(conversation)

    # Tokens and labels.
    def _tokenize(self, text: str):
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(encoded["input_ids"]), list(encoded["offset_mapping"])
        bos = self.tokenizer.bos_token_id
        if not self.use_model_template and bos is not None:
            ids, offsets = [bos] + ids, [(0, 0)] + offsets
        return ids, offsets

    def trained_spans(self, conversation: dict, spans: list[tuple[int, int]]) -> list:
        """The spans labeled: the last one or all (``train_on``), less those of weight 0."""
        weights = [m.get("weight", 1) for m in conversation["messages"]
                   if m["role"] == "assistant"]
        weighted = list(zip(spans, weights, strict=True))
        if self.train_on == "last_assistant":
            weighted = weighted[-1:]
        return [span for span, weight in weighted if weight]

    def encode(self, conversation: dict) -> EncodedChat:
        text, spans = self.render(conversation)
        spans = self.trained_spans(conversation, spans)
        ids, offsets = self._tokenize(text)
        labels = [IGNORE] * len(ids)
        for index, (start, end) in enumerate(offsets):
            if end > start and any(a <= start < b for a, b in spans):
                labels[index] = ids[index]
        truncated = len(ids) > self.max_length
        return EncodedChat(ids[:self.max_length], labels[:self.max_length], text, spans,
                           truncated)

    def count_tokens(self, conversation: dict) -> int:
        return len(self._tokenize(self.render(conversation)[0])[0])

    def _lengths(self, texts: list[str]) -> list[int]:
        """Token counts of texts, in one batch (the Rust tokenizer's threads, no offsets)."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        extra = 1 if not self.use_model_template and self.tokenizer.bos_token_id is not None \
            else 0  # the BOS _tokenize puts first
        if backend is not None:
            encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
            return [len(e) + extra for e in encode(texts, add_special_tokens=False)]
        return [len(ids) + extra for ids in self.tokenizer(
            texts, add_special_tokens=False)["input_ids"]]

    def record_fits(self, size: int, messages: int) -> bool:
        """Whether a conversation whose JSON text has ``size`` UTF-8 bytes surely renders
        within ``max_length`` tokens with the built-in template: its text is what the JSON
        holds (escapes only shrink), tool schemas and calls re-encoded (at most twice
        their JSON), and headers. False for a model's template, which may add anything."""
        if self.use_model_template:
            return False
        return 2 * size + 40 * messages + 64 <= self.max_length - 4 * messages - 8

    def surely_fits(self, text: str, messages: int) -> bool:
        """Whether ``text`` is within ``max_length`` tokens without tokenizing it: a byte-level
        BPE or a SentencePiece tokenizer with byte fallback gives at most one token per UTF-8
        byte, plus one per piece between special tokens (a prefix space), plus a BOS."""
        spare = self.max_length - 4 * messages - 8
        return 4 * len(text) <= spare or len(text.encode("utf-8")) <= spare

    def count_texts(self, texts: list[str]) -> list[TokenCount]:
        """Token counts of rendered texts. A very long text whose start is already over
        ``max_length`` is counted by that start and scaled (marked estimated): training
        cuts it anyway, and tokenizing megabytes costs seconds and hundreds of MB."""
        cap = max(COUNT_CHARS, 16 * self.max_length)
        out = []
        for text, tokens in zip(texts, self._lengths([t[:cap] for t in texts]) if texts
                                else [], strict=True):
            if len(text) <= cap:
                out.append(TokenCount(tokens))
            elif tokens > self.max_length:
                out.append(TokenCount(round(tokens * len(text) / cap), estimated=True))
            else:  # long, yet its start is short in tokens: count it all
                out.append(TokenCount(self._lengths([text])[0]))
        return out

    def prompt_ids(self, conversation: dict) -> list[int]:
        return self._tokenize(self.prompt_text(conversation)[0])[0]


def label_preview(encoder: ChatEncoder, conversation: dict) -> dict:
    """The rendered text cut into segments, each marked trained or not, by token."""
    encoded = encoder.encode(conversation)
    _, offsets = encoder._tokenize(encoded.text)
    segments: list[dict] = []
    shown = 0  # byte-level tokens of one character share its offsets: show it once
    for index, (start, end) in enumerate(offsets[:len(encoded.labels)]):
        piece = encoded.text[max(start, shown):end]
        shown = max(shown, end)
        if not piece:
            continue
        trained = encoded.labels[index] != IGNORE
        if segments and segments[-1]["trained"] == trained:
            segments[-1]["text"] += piece
        else:
            segments.append({"text": piece, "trained": trained})
    return {"segments": segments, "tokens": len(encoded.input_ids),
            "trained_tokens": encoded.trained_tokens, "truncated": encoded.truncated,
            "template": "model" if encoder.use_model_template else "builtin"}


def marked_text(preview: dict) -> str:
    """Plain-text form of a preview: trained text between ⟦ and ⟧."""
    return "".join(f"⟦{s['text']}⟧" if s["trained"] else s["text"]
                   for s in preview["segments"])
