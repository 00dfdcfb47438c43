"""Issue 18 items 11 and 12 in a real browser (Debian's Chromium, a live server, runs of the
tiny models trained by real jobs): the playground (chat with a trained chat model; an OCR
run's summary beside its base model's, on the same page) and the run comparison (curves
overlaid, the configuration diff, Clone into the Train form)."""

from __future__ import annotations

import json

import pytest

from deepsynth.config.server import ServerConfig
from support.server import Client, running
from support.ui import SECONDS, tour, wait_status

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

MODEL_WORK = 120 * SECONDS  # a reply or two summaries: a model loaded and run on a busy CPU
CHAT_LINE = {"messages": [{"role": "user", "content": "Capital of France?"},
                          {"role": "assistant", "content": "Paris."}]}


def train(client: Client, base: str, body: dict) -> None:
    status, started = client.call("POST", "/api/model/train", body)
    assert status == 202, started
    wait_status(base, started["job_id"], timeout=300)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server with a small dataset, a tiny OCR run and a tiny chat run, each evaluated at
    every step (so both have every curve the comparison overlays)."""
    root = tmp_path_factory.mktemp("ui-playground") / "data"
    with running(ServerConfig(data_root=str(root), threads=16)) as (_, base):
        client = Client(base)
        status, made = client.call("POST", "/api/benchmark/create", {
            "preset": "scitldr", "name": "pg", "max_samples": 4, "page_size": "256x256",
            "font_size": 12, "margin": 8, "workers": 1})
        assert status == 202, made
        wait_status(base, made["job_id"], timeout=120)
        train(client, base, {"dataset": "pg", "preset": "quick_test", "max_steps": 2,
                             "learning_rate": 0.0005, "eval_steps": 1, "save_steps": 10,
                             "eval_samples": 1, "max_new_tokens": 4, "name": "ocr-a"})
        (root / "uploads").mkdir(parents=True, exist_ok=True)
        (root / "uploads" / "chats.jsonl").write_text(
            "".join(json.dumps(CHAT_LINE) + "\n" for _ in range(2)))
        train(client, base, {"trainer_type": "generic", "peft": "full", "max_steps": 2,
                             "batch_size": 2, "gradient_accumulation_steps": 1,
                             "mixed_precision": "no", "dataset": "uploads/chats.jsonl",
                             "eval_dataset": "uploads/chats.jsonl", "eval_steps": 1,
                             "max_new_tokens": 4, "name": "chatty"})
        yield base, root


def test_the_playground_chats_with_a_chat_model(server, page):
    """Item 11: a conversation with a trained chat model, sent whole each turn and rendered
    with its chat template; OCR runs are not offered to chat."""
    base, _ = server
    page.goto(base + "/playground")
    picker = page.get_by_label("Chat model")
    expect(picker.locator("option").first).to_have_text("chatty", timeout=30 * SECONDS)
    assert picker.locator("option").all_inner_texts() == ["chatty"]
    page.get_by_label("max new tokens").fill("4")
    page.get_by_label("Your message").fill("Capital of France?")
    page.get_by_role("button", name="Send").click()
    replies = page.locator('#conversation [data-role="assistant"]')
    expect(replies).to_have_count(1, timeout=MODEL_WORK)
    expect(replies.first).to_contain_text("chatty")
    first = replies.first.inner_text()
    page.get_by_label("Your message").fill("And of Spain?")
    page.get_by_role("button", name="Send").click()
    expect(replies).to_have_count(2, timeout=MODEL_WORK)
    expect(page.locator('#conversation [data-role="user"]')).to_have_count(2)
    # The second prompt holds the whole conversation: more prompt tokens than the first.
    tokens = [int(text.split(" prompt tokens")[0].split("· ")[-1])
              for text in (first, replies.nth(1).inner_text())]
    assert tokens[1] > tokens[0], tokens
    tour(page, "playground-chat")


def test_the_playground_summarizes_beside_the_base_model(server, page):
    """Item 11: the same page summarized by an OCR run and by the base model it was trained
    from: two columns, each with its model's name; a chat run is not offered (nor to
    compare with). Beside another run: tests/test_api_inputs.py (the same view)."""
    base, _ = server
    page.goto(base + "/playground")
    model = page.get_by_label("Model", exact=True)
    expect(model.locator("option").first).to_have_text("ocr-a", timeout=30 * SECONDS)
    assert model.locator("option").all_inner_texts() == ["ocr-a"]
    assert page.get_by_label("Compare with").locator("option").all_inner_texts() == [
        "base model"]
    page.get_by_label("Text to summarize").fill("The river city opened a new library.")
    page.get_by_role("button", name="Summarize both").click()
    columns = page.locator("#side-result .summary-column h3")
    expect(columns).to_have_text(["ocr-a", "base: tiny-deepseek-ocr-2"], timeout=MODEL_WORK)
    expect(page.locator("#side-page img")).to_have_count(1)
    tour(page, "playground-side-by-side")


def test_compare_runs_overlays_curves_diffs_configs_and_clones(server, page):
    """Item 12: two runs' loss, eval loss and ROUGE on one chart each with a legend, only the
    options that differ, and Clone opening the Train form filled with a run's options."""
    base, root = server
    page.goto(base + "/compare")
    page.get_by_label("ocr-a (ocr)").check()
    page.get_by_label("chatty (chat)").check()
    page.get_by_role("button", name="Compare").click()
    for chart in ("#cmp-loss", "#cmp-eval_loss", "#cmp-rouge1", "#cmp-rougeL"):
        expect(page.locator(f"{chart} .legend li")).to_have_text(["chatty", "ocr-a"],
                                                                  timeout=30 * SECONDS)
        expect(page.locator(f"{chart} path[data-series]")).to_have_count(2)
    strokes = page.locator("#cmp-loss path[data-series]").evaluate_all(
        "paths => paths.map(p => p.style.stroke)")
    assert len(set(strokes)) == 2, strokes
    diff = page.locator("#diff-table tr[data-key]")
    expect(diff.first).to_be_visible()
    keys = diff.evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert {"learning_rate", "trainer_type", "model", "out"} <= set(keys), keys
    assert "batch_size" not in keys and "max_steps" not in keys, keys  # the same in both
    expect(page.locator('#diff-table tr[data-key="learning_rate"] td').nth(2)).to_have_text(
        "0.0005")
    tour(page, "compare")
    page.locator('[data-clone="ocr-a"]').click()
    expect(page.locator("#clone-notice")).to_contain_text("Cloned from ocr-a",
                                                          timeout=30 * SECONDS)
    expect(page.get_by_label("Name", exact=True)).to_have_value("ocr-a-clone")
    expect(page.get_by_label("Learning rate", exact=True)).to_have_value("0.0005")
    expect(page.get_by_label("max steps")).to_have_value("2")
    expect(page.get_by_label("Dataset", exact=True)).to_have_value("pg")
    command = page.locator("#cli-equivalent")
    expect(command).to_contain_text("--preset quick_test")
    expect(command).to_contain_text("--learning-rate 0.0005")
    expect(command).to_contain_text("--out data/models/ocr-a-clone")
    recorded = (root / "models" / "ocr-a" / "command.txt").read_text()
    for flag in ("--eval-steps 1", "--eval-samples 1", "--max-new-tokens 4", "--max-steps 2"):
        assert flag in recorded
        expect(command).to_contain_text(flag)
