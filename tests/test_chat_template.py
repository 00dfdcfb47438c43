# ruff: noqa: F811
"""From conversation to training example: labels exactly on assistant tokens with the
built-in template and with a model's own Jinja template, templates that are refused,
truncation."""

from __future__ import annotations

import copy
import itertools

import pytest

from deepsynth.chat.data import load_chat
from deepsynth.chat.template import IGNORE, ChatEncoder, label_preview, marked_text
from deepsynth.chat.stream import validate_chat
from deepsynth.errors import ConfigError, DeepSynthError

# Fixtures are imported from chat_samples and requested by name (hence F401/F811 below).
from chat_samples import (  # noqa: F401
    ANSWER, FULL, FULL_TURN_1, FULL_TURN_1_NO_REASONING, FULL_TURN_2, MULTI, NOT_TRAINED,
    PLAIN, USER, WEATHER_TOOL, call, dumps, encoder, qa, root, tokenizer, write_lines,
)


# ================================================================= 2. labels


def label_runs(encoded, tokenizer) -> list[tuple[bool, str]]:
    """The token sequence cut into maximal trained / untrained runs, each decoded."""
    runs = []
    for trained, group in itertools.groupby(zip(encoded.input_ids, encoded.labels,
                                                strict=True),
                                            key=lambda pair: pair[1] != IGNORE):
        ids = [token for token, _ in group]
        runs.append((trained, tokenizer.decode(ids, skip_special_tokens=False,
                                               clean_up_tokenization_spaces=False)))
    return runs


def trained_texts(encoded, tokenizer) -> list[str]:
    return [text for trained, text in label_runs(encoded, tokenizer) if trained]


def check_labels_are_ids(encoded) -> None:
    assert len(encoded.labels) == len(encoded.input_ids)
    assert all(label in (IGNORE, token)
               for token, label in zip(encoded.input_ids, encoded.labels, strict=True))


def test_builtin_template_labels_exactly_the_assistant_turns(tokenizer, encoder):
    encoded = encoder.encode(FULL)
    check_labels_are_ids(encoded)
    assert not encoded.truncated
    assert tokenizer.decode(encoded.input_ids, skip_special_tokens=False,
                            clean_up_tokenization_spaces=False) == "<|bos|>" + encoded.text
    assert encoded.input_ids[0] == tokenizer.bos_token_id and encoded.labels[0] == IGNORE
    # Every trained token is assistant text, and all the assistant text (reasoning, tool
    # call, structured content, and the <|im_end|> that ends the turn) is trained.
    assert trained_texts(encoded, tokenizer) == [FULL_TURN_1, FULL_TURN_2]
    untrained = "".join(text for trained, text in label_runs(encoded, tokenizer)
                        if not trained)
    for text in NOT_TRAINED:
        assert text in untrained
    for header in ("tools", "system", "developer", "user", "tool", "assistant"):
        assert f"<|im_start|>{header}\n" in untrained
    assert encoded.trained_tokens == sum(label != IGNORE for label in encoded.labels)
    # <|im_end|> is trained where it closes an assistant turn, only there.
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ends = [i for i, token in enumerate(encoded.input_ids) if token == end]
    assert len(ends) == 7
    assert [encoded.labels[i] != IGNORE for i in ends] == [False] * 4 + [True, False, True]
    assert [encoded.text[a:b] for a, b in encoded.spans] == [FULL_TURN_1, FULL_TURN_2]


def test_last_assistant_and_dropped_reasoning(tokenizer):
    last = ChatEncoder(tokenizer, train_on="last_assistant").encode(FULL)
    check_labels_are_ids(last)
    assert trained_texts(last, tokenizer) == [FULL_TURN_2]
    assert last.input_ids == ChatEncoder(tokenizer).encode(FULL).input_ids

    dropped = ChatEncoder(tokenizer, reasoning="drop").encode(FULL)
    assert "<think>" not in dropped.text and "I need the current weather" not in dropped.text
    assert trained_texts(dropped, tokenizer) == [FULL_TURN_1_NO_REASONING, FULL_TURN_2]

    multi = ChatEncoder(tokenizer).encode(MULTI)
    assert trained_texts(multi, tokenizer) == [
        "Checking both.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
        "\"Oslo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
        "{\"city\": \"Rome\"}}\n</tool_call>\n<|im_end|>",
        "<think>\n24 is more than 9.\n</think>\nRome is warmer.<|im_end|>"]


def test_a_conversation_may_start_with_the_assistant(tokenizer, encoder):
    opening = {"tools": [WEATHER_TOOL], "messages": [
        {"role": "assistant", "content": "Hi there"}, USER, ANSWER]}
    assert validate_chat([dumps(opening)]).ok
    assert trained_texts(encoder.encode(opening), tokenizer) == [
        "Hi there<|im_end|>", "Hi, how can I help?<|im_end|>"]


def test_label_preview_marks_the_trained_text(tokenizer, encoder):
    preview = label_preview(encoder, FULL)
    text = encoder.render(FULL)[0]
    expected = text.replace(FULL_TURN_1, f"⟦{FULL_TURN_1}⟧").replace(FULL_TURN_2,
                                                                     f"⟦{FULL_TURN_2}⟧")
    assert marked_text(preview) == expected
    assert "".join(s["text"] for s in preview["segments"]) == text
    encoded = encoder.encode(FULL)
    assert preview["tokens"] == len(encoded.input_ids)
    assert preview["trained_tokens"] == encoded.trained_tokens
    assert (preview["truncated"], preview["template"]) == (False, "builtin")


def test_prompt_text_is_everything_before_the_last_assistant_turn(tokenizer, encoder):
    prompt, reference = encoder.prompt_text(FULL)
    text = encoder.render(FULL)[0]
    assert reference == FULL["messages"][-1]["content"]
    assert prompt == text[:text.index(FULL_TURN_2)]
    assert prompt.endswith("<|im_start|>assistant\n")
    assert encoder.prompt_ids(FULL)[0] == tokenizer.bos_token_id


# A ChatML template of our own in the style of Qwen's: roles, content, tool calls (arguments
# as objects), reasoning_content, the tools block and the generation prompt.
CHATML = (
    "{%- if tools %}{{ '<|im_start|>tools\\n' + (tools | tojson) + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' }}"
    "{%- if m.role == 'assistant' %}"
    "{%- if m.reasoning_content %}"
    "{{ '<think>\\n' + m.reasoning_content + '\\n</think>\\n' }}{%- endif %}"
    "{{- m.content or '' }}"
    "{%- for c in m.tool_calls or [] %}{{ '<tool_call>\\n' + ({'name': c.function.name, "
    "'arguments': c.function.arguments} | tojson) + '\\n</tool_call>\\n' }}{%- endfor %}"
    "{%- else %}{{ m.content }}{%- endif %}{{ '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}")
# The same without reasoning_content: the encoder then puts a think block in the content.
CHATML_NO_REASONING = CHATML.replace(
    "{%- if m.reasoning_content %}"
    "{{ '<think>\\n' + m.reasoning_content + '\\n</think>\\n' }}{%- endif %}", "")
# Not prefix-stable: only the last message is rendered.
LAST_ONLY = ("{{ '<|im_start|>' + messages[-1].role + '\\n' + (messages[-1].content or '') "
             "+ '<|im_end|>\\n' }}"
             "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}")
# Not prefix-stable: reasoning is kept on the last message only (as some models do).
LATEST_REASONING_ONLY = CHATML.replace("{%- if m.reasoning_content %}",
                                       "{%- if m.reasoning_content and loop.last %}")
BROKEN = "{{ messages[0].content | no_such_filter }}"


def with_template(tokenizer, template: str):
    copied = copy.deepcopy(tokenizer)
    copied.chat_template = template
    return copied


def test_the_models_own_template_labels_exactly_the_assistant_turns(tokenizer):
    templated = with_template(tokenizer, CHATML)
    assert not tokenizer.chat_template  # the shared tokenizer is untouched
    encoder = ChatEncoder(templated)  # auto: the model's template
    encoded = encoder.encode(FULL)
    check_labels_are_ids(encoded)
    assert encoder.use_model_template
    # The template has no developer role: the developer turn becomes a system turn.
    assert "<|im_start|>system\nReply with JSON matching the schema.<|im_end|>" in encoded.text
    assert "developer" not in encoded.text
    assert encoded.input_ids[0] != tokenizer.bos_token_id  # the template decides, not us
    assert tokenizer.decode(encoded.input_ids, skip_special_tokens=False) == encoded.text
    # The turn as the template renders it after the generation prompt: through its newline.
    assert trained_texts(encoded, tokenizer) == [FULL_TURN_1 + "\n", FULL_TURN_2 + "\n"]
    assert marked_text(label_preview(encoder, FULL)) == encoded.text.replace(
        FULL_TURN_1 + "\n", f"⟦{FULL_TURN_1}\n⟧").replace(FULL_TURN_2 + "\n",
                                                          f"⟦{FULL_TURN_2}\n⟧")
    assert label_preview(encoder, FULL)["template"] == "model"

    last = ChatEncoder(templated, train_on="last_assistant").encode(FULL)
    assert trained_texts(last, tokenizer) == [FULL_TURN_2 + "\n"]
    dropped = ChatEncoder(templated, reasoning="drop").encode(FULL)
    assert trained_texts(dropped, tokenizer) == [FULL_TURN_1_NO_REASONING + "\n",
                                                 FULL_TURN_2 + "\n"]
    # A template without reasoning_content gets the reasoning as a think block in content.
    plain = ChatEncoder(with_template(tokenizer, CHATML_NO_REASONING)).encode(FULL)
    assert (plain.text, plain.labels) == (encoded.text, encoded.labels)

    prompt, reference = encoder.prompt_text(FULL)
    assert prompt == encoded.text[:encoded.text.index(FULL_TURN_2)]
    assert reference == FULL["messages"][-1]["content"]

    # "builtin" ignores the model's template.
    builtin = ChatEncoder(templated, template="builtin").encode(FULL)
    assert builtin.input_ids == ChatEncoder(tokenizer).encode(FULL).input_ids


def test_a_model_template_opening_with_the_assistant_trains_only_that_turn(tokenizer):
    opening = {"tools": [WEATHER_TOOL], "messages": [
        {"role": "assistant", "content": "Hi there"}, USER, ANSWER]}
    encoded = ChatEncoder(with_template(tokenizer, CHATML)).encode(opening)
    trained = trained_texts(encoded, tokenizer)
    assert trained == ["Hi there<|im_end|>\n", "Hi, how can I help?<|im_end|>\n"]


@pytest.mark.parametrize("template", [LAST_ONLY, LATEST_REASONING_ONLY, BROKEN],
                         ids=["last-message-only", "latest-reasoning-only", "jinja-error"])
def test_a_template_that_is_not_prefix_stable_is_refused(tokenizer, template):
    encoder = ChatEncoder(with_template(tokenizer, template), template="model")
    with pytest.raises(DeepSynthError, match="chat_template builtin"):
        encoder.encode(FULL)
    # The built-in template still works on the same tokenizer.
    fallback = ChatEncoder(with_template(tokenizer, template), template="builtin")
    assert trained_texts(fallback.encode(FULL), tokenizer) == [FULL_TURN_1, FULL_TURN_2]


def test_template_model_needs_a_template(tokenizer):
    with pytest.raises(ConfigError) as caught:
        ChatEncoder(tokenizer, template="model")
    assert caught.value.field == "chat_template"


# =============================================================== 3. truncation


def test_max_length_cuts_the_tokens_and_labels(tokenizer):
    whole = ChatEncoder(tokenizer).encode(FULL)
    cut_at = len(whole.input_ids) - 5
    cut = ChatEncoder(tokenizer, max_length=cut_at).encode(FULL)
    assert cut.truncated and not whole.truncated
    assert cut.input_ids == whole.input_ids[:cut_at] and cut.labels == whole.labels[:cut_at]
    assert 0 < cut.trained_tokens < whole.trained_tokens
    preview = label_preview(ChatEncoder(tokenizer, max_length=cut_at), FULL)
    assert preview["truncated"] and preview["tokens"] == cut_at
    assert "<|im_end|>" not in marked_text(preview).rsplit("⟦", 1)[1]  # the end is cut off


def test_a_conversation_cut_before_its_assistant_is_counted_not_trained(tmp_path, tokenizer):
    long = {"messages": [{"role": "user", "content": "tell me about the river " * 20},
                         {"role": "assistant", "content": "It is long."}]}
    encoder = ChatEncoder(tokenizer, max_length=48)
    assert encoder.count_tokens(long) > 60 and encoder.encode(long).trained_tokens == 0
    assert encoder.encode(PLAIN).trained_tokens > 0
    path = write_lines(tmp_path / "chat.jsonl", [PLAIN, long, qa(1)])
    examples, report, untrained = load_chat(path, encoder, skip_invalid=False)
    assert untrained == 1 and report.valid_rows == 3
    assert [item["id"] for item in examples] == ["line-1", "line-3"]
    assert all(any(label != IGNORE for label in item["labels"]) for item in examples)
    assert all(len(item["input_ids"]) <= 48 for item in examples)

    only_long = write_lines(tmp_path / "long.jsonl", [long])
    with pytest.raises(DeepSynthError, match="no conversation to train on"):
        load_chat(only_long, encoder, skip_invalid=False)


