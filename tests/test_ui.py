"""The web UI in a real browser: Debian's Chromium driven by Playwright against a live
server (real waitress, real jobs, tiny model, 256x256 pages). Assertions are on what the
pages show. A failing test leaves a screenshot in ``test-artifacts/``. With
``DEEPSYNTH_SCREENSHOTS=DIR`` the tour screenshots for the README are written to DIR.
The second pass of issue 18 is in tests/test_ui_second_pass.py."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import pytest

from deepsynth.config.server import ServerConfig
from support.server import TOKEN, running
from support.ui import SECONDS, api_get, job_status, tour
from web_ui.auth import cookie_name

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui") / "data"
    with running(ServerConfig(data_root=str(root), threads=16)) as (app, base):
        yield base, root


def test_generate_the_builtin_corpus_from_the_benchmark_tab(server, page):
    base, root = server
    page.goto(base + "/")
    builtin = page.locator('[data-preset="scitldr"]')
    playwright_api.expect(builtin).to_have_attribute("aria-pressed", "true")
    page.get_by_label("name").fill("ui-demo")
    page.get_by_label("max samples").fill("24")
    page.get_by_text("Render options").click()
    page.get_by_label("page size").fill("256x256")
    page.get_by_label("font size").fill("12")
    page.get_by_label("margin").fill("8")
    playwright_api.expect(page.locator("#cli-equivalent")).to_contain_text("--page-size 256x256")
    tour(page, "benchmark")
    page.get_by_role("button", name="Generate dataset").click()
    job = page.locator("#generate-job .badge")
    playwright_api.expect(job).to_have_text("completed", timeout=120 * SECONDS)
    thumbnail = page.locator("#generated-thumbnail img")
    playwright_api.expect(thumbnail).to_be_visible()
    assert thumbnail.evaluate("img => img.complete && img.naturalWidth") == 256
    playwright_api.expect(page.locator('[data-dataset="ui-demo"]')).to_contain_text("train: 24")
    assert (root / "datasets" / "ui-demo" / "deepsynth-manifest.json").exists()


def test_out_of_range_expert_dropout_is_refused_in_the_form(server, page):
    base, _ = server
    before = api_get(base, "/api/jobs?kind=train")["total"]
    page.goto(base + "/train")
    page.get_by_text("Advanced: MoE regularization").click()
    rate = page.get_by_label("expert dropout rate")
    rate.fill("1.5")
    message = page.locator("#t-expert_dropout_rate-error")
    playwright_api.expect(message).to_have_text(re.compile("between 0 and 1"))
    playwright_api.expect(rate).to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="Start training").click()
    playwright_api.expect(page.locator(".toast.error")).to_contain_text("Fix the highlighted")
    assert api_get(base, "/api/jobs?kind=train")["total"] == before
    # What the browser lets through, the API still checks: its 400 lands next to the field.
    rate.fill("0.1")
    playwright_api.expect(message).to_have_text("")
    page.get_by_role("button", name="Start training").click()
    # ...in the form's words: the field's label, not its API name (issue 18 item 9).
    playwright_api.expect(message).to_contain_text("“LoRA preset”", timeout=10 * SECONDS)
    assert api_get(base, "/api/jobs?kind=train")["total"] == before


def loss_points(page) -> int:
    return int(page.locator("#loss-chart").get_attribute("data-points") or 0)


@pytest.mark.timeout(900)
def test_train_watch_pause_resume_and_reload_in_the_monitor(server, page):
    base, root = server
    page.goto(base + "/train")
    page.get_by_label("Dataset", exact=True).select_option("ui-demo")
    page.locator('[data-preset="quick_test"]').click()
    page.get_by_label("Name", exact=True).fill("ui-model")
    # About 10 steps/s on two idle cores: 360 steps train for well over 30 s.
    page.get_by_label("max steps").fill("360")
    page.get_by_label("eval steps").fill("120")
    page.get_by_label("save steps").fill("120")
    page.get_by_label("peft").select_option("full")
    playwright_api.expect(page.locator("#cli-equivalent")).to_contain_text("--preset quick_test")
    tour(page, "train")
    page.get_by_role("button", name="Start training").click()
    page.locator("#monitor-link").click()
    job_id = re.search(r"job=([\w-]+)", page.url).group(1)
    playwright_api.expect(page.locator("#detail-title .badge")).to_have_text("running")
    # The first steps wait for the model to load and the data to open: tens of seconds on a
    # loaded machine, beyond the page's default timeout.
    page.wait_for_function("() => +document.querySelector('#loss-chart')?.dataset.points > 3",
                           timeout=120 * SECONDS)
    card = page.locator(f'.job[data-job="{job_id}"]')
    status = job_status(base, job_id)
    assert status == "running", f"the job was {status} before Pause could be clicked"
    card.get_by_role("button", name="pause").click()
    playwright_api.expect(card.locator(".badge")).to_have_text("paused", timeout=60 * SECONDS)
    playwright_api.expect(page.locator("#detail-title .badge")).to_have_text("paused")
    assert list((root / "models" / "ui-model" / "checkpoints").glob("step-*"))
    paused_points = loss_points(page)
    card.get_by_role("button", name="resume").click()
    playwright_api.expect(page.locator("#detail-title .badge")).to_have_text("running")
    # The Models page lists the resumed run as training, not as its paused summary's
    # "stopped" (issue 18 item 10).
    models_page = page.context.new_page()
    models_page.goto(base + "/models")
    playwright_api.expect(models_page.locator('tr[data-model="ui-model"] td').nth(1)).to_have_text(
        "training")
    models_page.close()
    page.wait_for_function(
        f"() => +document.querySelector('#loss-chart')?.dataset.points > {paused_points + 3}")
    tour(page, "monitor")
    # Opened with no job named, the monitor shows the running one.
    page.goto(base + "/monitor")
    playwright_api.expect(page.locator("#detail-title")).to_contain_text("ui-model")
    playwright_api.expect(page.locator("#detail-title .badge")).to_have_text("running")
    assert f"job={job_id}" in page.url
    # Reload mid-training: the chart shows the history so far, and the job runs on.
    before_reload = loss_points(page)
    page.reload()
    page.wait_for_function(
        f"() => +document.querySelector('#loss-chart')?.dataset.points >= {before_reload}")
    assert job_status(base, job_id) in ("running", "completed")
    playwright_api.expect(page.locator("#detail-title .badge")).to_have_text(
        "completed", timeout=600 * SECONDS)
    playwright_api.expect(page.locator('[data-metric="ROUGE-1"]')).to_be_visible()
    playwright_api.expect(page.locator('[data-metric="steps"]')).to_have_text("360")
    playwright_api.expect(page.locator("#samples table").first).to_be_visible()
    assert page.locator("#samples tr").count() >= 4  # header + best predictions
    assert int(page.locator("#rouge-chart").get_attribute("data-points")) >= 3
    assert page.locator("#expert-chart rect").count() > 0
    # The log tells the run's story: steps, evaluations, checkpoints, the pause, the end.
    log_tail = page.locator("#log-tail")
    playwright_api.expect(log_tail).to_contain_text("training completed at step 360 of 360")
    for line in ("step 360/360 · loss", "evaluation at step 360: eval_loss",
                 "checkpoint saved: step-000360", "train job completed"):
        playwright_api.expect(log_tail).to_contain_text(line)
    log_lines = api_get(base, f"/api/jobs/{job_id}/logs?tail=1000")["lines"]
    assert any("pause requested" in line for line in log_lines), log_lines
    assert any("train job paused" in line for line in log_lines), log_lines
    # Completed: no stale percentage, rate or ETA from its last report.
    playwright_api.expect(card.locator(".progress-line")).to_have_text("done")
    tour(page, "monitor-completed")


def test_models_page_summarizes_and_shows_the_page(server, page):
    base, _ = server
    page.goto(base + "/models")
    playwright_api.expect(page.locator('tr[data-model="ui-model"]')).to_contain_text("ready")
    page.get_by_label("Text to summarize").fill("A short document about rendering pages.")
    page.get_by_role("button", name="Summarize").click()
    playwright_api.expect(page.locator("#summary-text")).to_be_visible(timeout=60 * SECONDS)
    image = page.locator(".page-preview img").first
    playwright_api.expect(image).to_be_visible()
    assert image.evaluate("img => img.naturalWidth") == 256
    tour(page, "models")


def test_custom_dataset_preview_and_render_stats(server, page):
    base, root = server
    upload = root / "uploads"
    upload.mkdir(parents=True, exist_ok=True)
    (upload / "mine.jsonl").write_text("".join(json.dumps(
        {"body": f"Document {i}: café, Привет, 中文 text.", "tldr": f"Summary {i}."}) + "\n"
        for i in range(5)), encoding="utf-8")
    page.goto(base + "/custom")
    page.get_by_label("Source", exact=False).first.fill("uploads/mine.jsonl")
    page.get_by_role("button", name="Preview source").click()
    playwright_api.expect(page.locator("#detected-columns")).to_contain_text("body, tldr")
    page.get_by_label("text field").select_option("body")
    page.get_by_label("summary field").select_option("tldr")
    playwright_api.expect(page.locator('[data-stat="pages"]')).to_have_text("1")
    playwright_api.expect(page.locator('[data-stat="missing glyphs"]')).to_have_text(
        re.compile(r"^\d+"))
    playwright_api.expect(page.locator('[data-stat="vision tokens per page"]')).to_have_text(
        "DeepSeek-OCR-2: 257 global, 833 crops; DeepSeek-OCR v1: 273 global, 693 crops; "
        "Unlimited-OCR: 273 global, 693 crops")
    playwright_api.expect(page.locator('[data-stat="warnings"]')).to_have_text("none")
    page.get_by_label("font size").fill("200")
    playwright_api.expect(page.locator("#c-font_size-error")).to_contain_text("between 6 and 96")
    page.get_by_label("font size").fill("12")
    page.get_by_label("page size").fill("256x256")
    page.get_by_label("Name", exact=True).fill("mine")
    tour(page, "custom")
    page.get_by_role("button", name="Generate dataset").click()
    playwright_api.expect(page.locator("#custom-job .badge")).to_have_text(
        "completed", timeout=120 * SECONDS)
    playwright_api.expect(page.locator("#custom-job img")).to_be_visible()


def test_the_train_page_offers_the_image_mode(server, page):
    base, _ = server
    page.goto(base + "/train")
    mode = page.get_by_label("Image mode", exact=True)
    # expect() waits for the options the schema fills in (a plain read can run before them)
    playwright_api.expect(mode.locator("option")).to_have_text(["global", "crops"])
    playwright_api.expect(mode).to_have_value("global")
    playwright_api.expect(page.locator("#t-image_mode-hint")).to_contain_text(
        "one of global, crops")
    mode.select_option("crops")
    playwright_api.expect(page.locator("#cli-equivalent")).to_contain_text("--image-mode crops")
    playwright_api.expect(page.locator("#curl-equivalent")).to_contain_text(
        '"image_mode":"crops"')


CHAT_LINES = [
    {"messages": [{"role": "developer", "content": "Answer briefly."},
                  {"role": "user", "content": "Capital of France?"},
                  {"role": "assistant", "content": "Paris.", "reasoning": "Easy."}]},
    {"messages": [{"role": "user", "content": "Hi"}]},  # no assistant turn
]


def test_generic_trainer_validates_chat_and_previews_labels(server, page):
    base, root = server
    (root / "uploads").mkdir(parents=True, exist_ok=True)
    (root / "uploads" / "chat.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in CHAT_LINES) + "not json\n")
    before = api_get(base, "/api/jobs?kind=train")["total"]
    page.goto(base + "/train")
    page.locator('[data-trainer="generic"]').click()
    playwright_api.expect(page.locator("#t-model")).to_contain_text("tiny-chat-lm")
    playwright_api.expect(page.locator("#moe-section")).to_be_hidden()
    page.get_by_label("Chat file").fill("uploads/chat.jsonl")
    page.get_by_role("button", name="Validate").click()
    playwright_api.expect(page.locator("#chat-verdict")).to_contain_text(  # builds tiny-chat-lm
        "2 problems on 2 lines", timeout=120 * SECONDS)
    problems = page.locator("#chat-problems")
    playwright_api.expect(problems).to_contain_text("line 2 · messages")
    playwright_api.expect(problems).to_contain_text("no_assistant")
    playwright_api.expect(problems).to_contain_text("line 3 · $")
    page.get_by_role("button", name="Preview labels").click()
    marked = page.locator("#chat-preview mark")
    playwright_api.expect(marked.first).to_be_visible(timeout=30 * SECONDS)
    trained = "".join(marked.all_inner_texts())
    assert "Paris." in trained and "Easy." in trained
    assert "Capital of France?" not in trained and "Answer briefly." not in trained
    tour(page, "chat")
    # A file with errors is refused by the API; its message lands next to the chat file.
    page.get_by_label("max steps").fill("2")
    page.get_by_role("button", name="Start training").click()
    # In the form's words (issue 18 item 9): its label and its button, not API names.
    source_error = page.locator("#t-chat_source-error")
    playwright_api.expect(source_error).to_contain_text("set “Skip invalid lines”")
    playwright_api.expect(source_error).to_contain_text("press Validate to list them")
    assert "skip_invalid_lines" not in source_error.inner_text()
    assert "/api/" not in source_error.inner_text()
    assert api_get(base, "/api/jobs?kind=train")["total"] == before
    # A good file validated next shows no error of the previous one.
    (root / "uploads" / "good-chat.jsonl").write_text(json.dumps(CHAT_LINES[0]) + "\n")
    page.get_by_label("Chat file").fill("uploads/good-chat.jsonl")
    page.get_by_role("button", name="Validate").click()
    playwright_api.expect(page.locator("#chat-verdict")).to_contain_text("Valid: 1 of 1")
    playwright_api.expect(source_error).to_have_text("")
    playwright_api.expect(page.get_by_label("Chat file")).to_have_attribute(
        "aria-invalid", "false")


SHAREGPT = [{"conversations": [{"from": "human", "value": f"What is {i} plus {i}?"},
                               {"from": "gpt", "value": f"{2 * i}."}]} for i in range(2)] + [
    {"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "beep"}]}]


def test_chat_formats_are_named_with_their_conversion_report(server, page):
    base, root = server
    (root / "uploads").mkdir(parents=True, exist_ok=True)
    (root / "uploads" / "share.json").write_text(json.dumps(SHAREGPT, indent=2))
    # Custom Dataset: the file is seen as conversations, for the Generic trainer.
    page.goto(base + "/custom")
    page.get_by_label("Source", exact=False).first.fill("uploads/share.json")
    page.get_by_role("button", name="Preview source").click()
    detected = page.locator("#chat-detected")
    playwright_api.expect(detected).to_contain_text(
        "ShareGPT (conversations with from/value) in a JSON array")
    playwright_api.expect(detected).to_contain_text("2 convert, 1 refused (unknown_from 1)")
    playwright_api.expect(detected.get_by_role("link", name="Train › Generic")).to_be_visible()
    # Generic trainer: the format, the conversion report, the refused record's field.
    page.goto(base + "/train")
    page.locator('[data-trainer="generic"]').click()
    page.get_by_label("Chat file").fill("uploads/share.json")
    page.get_by_role("button", name="Validate").click()
    playwright_api.expect(page.locator("#chat-format")).to_have_text(  # builds tiny-chat-lm
        "Format: ShareGPT (conversations with from/value) in a JSON array",
        timeout=120 * SECONDS)
    playwright_api.expect(page.locator("#chat-verdict")).to_contain_text("1 of 3 records refused")
    conversion = page.locator("#chat-conversion")
    playwright_api.expect(conversion).to_contain_text(
        "3 records read, 2 converted, 1 refused (unknown_from 1)")
    playwright_api.expect(conversion).to_contain_text(
        "deepsynth convert-chat uploads/share.json uploads/share.jsonl")
    playwright_api.expect(page.locator("#chat-problems")).to_contain_text(
        "conversations[1].from")


def test_login_page_comes_first_when_a_token_is_required(browser, tmp_path):
    config = ServerConfig(data_root=str(tmp_path / "d"), api_token=TOKEN)
    with running(config) as (app, base):
        context = browser.new_context()
        page = context.new_page()
        page.goto(base + "/train")
        assert page.url.startswith(base + "/login")
        page.get_by_label("API token").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        playwright_api.expect(page.locator("#token-error")).to_contain_text("wrong token")
        page.get_by_label("API token").fill(TOKEN)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(base + "/train")
        playwright_api.expect(page.locator("#t-model")).to_contain_text("tiny-deepseek-ocr-2")
        context.close()


def session_cookie(base: str) -> str:
    return cookie_name(base.rsplit(":", 1)[1])


def session_status(base: str, session: str) -> int:
    """What the API answers a request that carries only this session cookie."""
    request = urllib.request.Request(base + "/api/jobs",
                                     headers={"Cookie": f"{session_cookie(base)}={session}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_log_out_ends_the_session_and_shows_the_login_page(browser, tmp_path):
    config = ServerConfig(data_root=str(tmp_path / "d"), api_token=TOKEN)
    with running(config) as (app, base):
        context = browser.new_context()
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(base + "/monitor")
        page.get_by_label("API token").fill(TOKEN)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(base + "/monitor")
        api_status = "() => fetch('/api/jobs').then(response => response.status)"
        assert page.evaluate(api_status) == 200
        [session] = [c["value"] for c in context.cookies()
                     if c["name"] == session_cookie(base)]
        assert session_status(base, session) == 200
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(re.compile(re.escape(base) + r"/login$"))
        playwright_api.expect(page.get_by_label("API token")).to_be_visible()
        playwright_api.expect(page.get_by_role("button", name="Log out")).to_have_count(0)
        assert page.evaluate(api_status) == 401
        assert session_status(base, session) == 401  # ended on the server, not only dropped
        page.goto(base + "/train")
        assert page.url.startswith(base + "/login")
        context.close()
        assert not errors, errors


def test_without_a_token_there_is_no_log_out_button(server, page):
    base, _ = server
    page.goto(base + "/monitor")
    playwright_api.expect(page.get_by_role("link", name="Monitor Jobs")).to_be_visible()
    playwright_api.expect(page.get_by_role("button", name="Log out")).to_have_count(0)


def test_a_cpu_service_points_to_the_gpu_service_for_training(browser, tmp_path):
    config = ServerConfig(data_root=str(tmp_path / "d"), role="cpu",
                          gpu_service_url="http://127.0.0.1:5999")
    with running(config) as (app, base):
        context = browser.new_context()
        page = context.new_page()
        page.goto(base + "/train")
        link = page.locator("#elsewhere-link")
        playwright_api.expect(link).to_have_attribute("href", "http://127.0.0.1:5999/train")
        playwright_api.expect(page.locator("#service-notice")).to_contain_text("cpu service")
        # The header sends training and models straight to the gpu service (issue 18 item 7).
        nav = page.get_by_role("navigation", name="Pages")
        playwright_api.expect(nav.get_by_role("link", name="Train Model")).to_have_attribute(
            "href", "http://127.0.0.1:5999/train")
        playwright_api.expect(nav.get_by_role("link", name="Models")).to_have_attribute(
            "href", "http://127.0.0.1:5999/models")
        playwright_api.expect(nav.get_by_role("link", name="Custom Dataset")).to_have_attribute(
            "href", "/custom")
        playwright_api.expect(nav.get_by_role("link", name="Monitor Jobs")).to_have_attribute(
            "href", "/monitor")
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(base + "/")
        playwright_api.expect(page.locator('[data-preset="scitldr"]')).to_be_visible()
        time.sleep(0.5)
        assert requests and all(url.startswith(base) or url.startswith("data:")
                                for url in requests), requests
        context.close()


def log_in(page, base: str) -> None:
    page.goto(base + "/monitor")
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/monitor")


def test_two_services_on_one_host_keep_their_own_sessions(browser, tmp_path):
    """Cookies ignore ports: under one cookie name, logging into the gpu service replaced
    the cpu service's session (issue 18 item 1)."""
    cpu = ServerConfig(data_root=str(tmp_path / "d"), role="cpu", api_token=TOKEN)
    gpu = ServerConfig(data_root=str(tmp_path / "d"), role="gpu", api_token=TOKEN)
    with running(cpu) as (_, cpu_base), running(gpu) as (_, gpu_base):
        context = browser.new_context()
        page = context.new_page()
        log_in(page, cpu_base)
        log_in(page, gpu_base)
        api_status = "() => fetch('/api/jobs').then(response => response.status)"
        assert page.evaluate(api_status) == 200
        page.goto(cpu_base + "/monitor")
        assert page.url == cpu_base + "/monitor", "the cpu service's session was lost"
        assert page.evaluate(api_status) == 200
        # Logging out of one service leaves the other's session alone.
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(re.compile(re.escape(cpu_base) + r"/login$"))
        page.goto(gpu_base + "/monitor")
        assert page.url == gpu_base + "/monitor"
        assert page.evaluate(api_status) == 200
        context.close()


def test_a_generation_with_qa_shows_its_worst_pages_as_thumbnails(server, page):
    """Benchmark tab: variety and qa_sample from the form (POST /api/benchmark/create); the
    job's QA report (also in the manifest) shown as thumbnails with their CER and script."""
    base, root = server
    page.goto(base + "/")
    playwright_api.expect(page.locator('[data-preset="scitldr"]')).to_have_attribute(
        "aria-pressed", "true")
    page.get_by_label("name").fill("ui-qa")
    page.get_by_label("max samples").fill("2")
    page.get_by_label("qa sample").fill("2")
    page.get_by_text("Render options").click()
    page.get_by_label("page size").fill("256x256")
    page.get_by_text("Rendering variety").click()
    page.get_by_label("fonts to vary").fill("DejaVuSans, DejaVuSerif")
    page.get_by_label("smallest text px").fill("10")
    page.get_by_label("largest text px").fill("13")
    playwright_api.expect(page.locator("#cli-equivalent")).to_contain_text(
        "--vary-font DejaVuSans --vary-font DejaVuSerif")
    page.get_by_role("button", name="Generate dataset").click()
    playwright_api.expect(page.locator("#generate-job .badge")).to_have_text(
        "completed", timeout=120 * SECONDS)
    report = json.loads((root / "datasets" / "ui-qa" / "deepsynth-manifest.json")
                        .read_text())["qa"]
    assert report["sample"] == 2 and report["worst"]
    figures = page.locator("#qa-report figure")
    playwright_api.expect(figures).to_have_count(len(report["worst"]))
    playwright_api.expect(page.locator("#qa-report h3")).to_contain_text("over 2 of")
    worst = report["worst"][0]
    caption = figures.first.locator("figcaption")
    playwright_api.expect(caption).to_contain_text(f"CER {100 * worst['cer']:.1f}%")
    playwright_api.expect(caption).to_contain_text(worst["script"])
    image = figures.first.locator("img")
    playwright_api.expect(image).to_have_attribute(
        "src", re.compile(rf"/api/datasets/ui-qa/samples/{worst['row']}/pages/{worst['page']}"
                          rf"\.png\?split={worst['split']}$"))
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=image.element_handle())
    assert image.evaluate("img => img.naturalWidth") == 256
