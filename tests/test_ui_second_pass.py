"""Issue 18's second pass in a real browser (Debian's Chromium, a live server, real jobs):
fields guessed from an upload, splits, queue places and a confirmed cancel, the monitor's
counts and phone layout, taken names, a reloaded Benchmark page, presets against the LoRA
recommendation, chat runs kept out of OCR views, and the resource view."""

from __future__ import annotations

import json
import re

import pytest

from deepsynth.config.server import ServerConfig
from support.server import Client, running
from support.ui import SECONDS, api_get, job_status, wait_status

playwright_api = pytest.importorskip("playwright.sync_api")

CHAT_LINE = {"messages": [{"role": "user", "content": "Capital of France?"},
                          {"role": "assistant", "content": "Paris."}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui2") / "data"
    with running(ServerConfig(data_root=str(root), threads=16)) as (_, base):
        yield base, root


def upload_file(page, name: str, data: bytes) -> None:
    page.locator("#c-file").set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}])


def test_an_uploaded_file_gets_its_fields_and_format_and_generate_waits_for_them(server, page):
    """Issue 18 item 2 (and issue 15's format line): the pickers showed "— detect —", Generate
    stayed enabled, and the job failed with "text_field is required"."""
    base, _ = server
    page.goto(base + "/custom")
    lines = "".join(json.dumps({"doc_id": f"d{i}", "body": f"Body {i}.", "abstract": f"A {i}."})
                    + "\n" for i in range(3))
    upload_file(page, "papers.json", b"\xef\xbb\xbf" + lines.encode())
    playwright_api.expect(page.locator("#source-format")).to_have_text(
        "Format: JSON Lines in a .json file, UTF-8 byte-order mark dropped")
    playwright_api.expect(page.get_by_label("text field")).to_have_value("body")
    playwright_api.expect(page.get_by_label("summary field")).to_have_value("abstract")
    playwright_api.expect(page.get_by_label("id field")).to_have_value("doc_id")
    generate = page.get_by_role("button", name="Generate dataset")
    playwright_api.expect(generate).to_be_enabled()
    # Columns with no telling names: nothing is guessed, and Generate says what it needs.
    upload_file(page, "odd.csv", b"left,right\none,two\n")
    playwright_api.expect(page.locator("#source-format")).to_have_text("Format: CSV")
    playwright_api.expect(page.get_by_label("text field")).to_have_value("")
    playwright_api.expect(generate).to_be_disabled()
    missing = page.locator("#mapping-missing")
    playwright_api.expect(missing).to_contain_text("text field")
    playwright_api.expect(missing).to_contain_text("summary field")
    page.get_by_label("text field").select_option("left")
    playwright_api.expect(missing).not_to_contain_text("text field")
    playwright_api.expect(generate).to_be_disabled()
    page.get_by_label("summary field").select_option("right")
    playwright_api.expect(missing).to_have_text("")
    playwright_api.expect(generate).to_be_enabled()


def test_generate_waits_for_a_split(server, page):
    """With every split unchecked it generated all of them (issue 18 item 3)."""
    base, _ = server
    page.goto(base + "/")
    generate = page.get_by_role("button", name="Generate dataset")
    playwright_api.expect(generate).to_be_enabled()
    boxes = page.locator('#splits input[name="split"]')
    playwright_api.expect(boxes.first).to_be_visible()  # the preset's splits have arrived
    for box in boxes.all():
        box.uncheck()
    playwright_api.expect(generate).to_be_disabled()
    playwright_api.expect(page.locator("#splits-missing")).to_have_text(
        "Check at least one split to generate.")
    page.get_by_label("validation").check()
    playwright_api.expect(generate).to_be_enabled()
    playwright_api.expect(page.locator("#splits-missing")).to_have_text("")
    playwright_api.expect(page.locator("#cli-equivalent")).to_contain_text("--split validation")


def test_queued_jobs_show_their_place_and_cancel_asks_first(browser, tmp_path):
    """Issue 18 item 4: a queued job's toast said "started", a resumed job showed "queued"
    with no place, and Cancel (final) sat next to Pause with no confirmation."""
    config = ServerConfig(data_root=str(tmp_path / "d"), generate_capacity=0)  # jobs only queue
    with running(config) as (_, base):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(base + "/")
        page.get_by_label("name").fill("q1")
        page.get_by_label("max samples").fill("4")
        page.get_by_role("button", name="Generate dataset").click()
        playwright_api.expect(page.locator(".toast").first).to_contain_text(
            re.compile(r"Generation job \S+ is queued \(1st in the queue\)"))
        status, second = Client(base).call("POST", "/api/benchmark/create",
                                           {"preset": "scitldr", "name": "q2", "max_samples": 4})
        assert status == 202 and second["job"]["queue"] == {"position": 2, "waiting_for": []}
        page.goto(base + "/monitor")
        first = page.locator(".job", has_text="q1")
        later = page.locator(".job", has_text="q2")
        playwright_api.expect(first).to_contain_text("1st in the queue")
        playwright_api.expect(later).to_contain_text("2nd in the queue")
        first.get_by_role("button", name="pause").click()
        playwright_api.expect(first.locator(".badge")).to_have_text("paused")
        playwright_api.expect(later).to_contain_text("1st in the queue")
        first.get_by_role("button", name="resume").click()
        playwright_api.expect(page.locator(".toast", has_text="Resumed")).to_contain_text(
            "1st in the queue")
        playwright_api.expect(later).to_contain_text("2nd in the queue")
        # Cancel is apart from pause, and asks before it does what cannot be undone.
        cancel = later.get_by_role("button", name="cancel")
        assert cancel.evaluate("b => b.parentElement.className") == "final-actions"
        asked: list[str] = []

        def answer(dialog, accept: bool):
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()
        page.once("dialog", lambda dialog: answer(dialog, False))
        cancel.click()
        playwright_api.expect(later.locator(".badge")).to_have_text("queued")
        assert "cannot be resumed" in asked[0]
        page.once("dialog", lambda dialog: answer(dialog, True))
        later.get_by_role("button", name="cancel").click()
        playwright_api.expect(later.locator(".badge")).to_have_text("cancelled")
        assert job_status(base, second["job_id"]) == "cancelled"
        context.close()


def test_a_finished_generation_shows_its_counts_and_phone_brings_the_detail(server, browser):
    """Issue 18 item 5: a generation job's counts (empty rows dropped, missing glyphs) never
    appeared; a completed job showed stale progress; on a phone choosing a job left its
    detail out of view."""
    base, root = server
    (root / "uploads").mkdir(parents=True, exist_ok=True)
    rows = [{"body": f"Document {i} text.", "abstract": f"S {i}."} for i in range(4)]
    rows.append({"body": "   ", "abstract": "an empty document"})
    (root / "uploads" / "with-empty.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows))
    client = Client(base)
    status, started = client.call("POST", "/api/dataset/generate", {
        "source": "uploads/with-empty.jsonl", "name": "counted", "text_field": "body",
        "summary_field": "abstract", "page_size": "256x256", "font_size": 12, "margin": 8})
    assert status == 202, started
    wait_status(base, started["job_id"], timeout=120)
    context = browser.new_context(viewport={"width": 390, "height": 800})
    phone = context.new_page()
    phone.goto(base + "/monitor")
    job_id = started["job_id"]
    card = phone.locator(f'.job[data-job="{job_id}"]')
    playwright_api.expect(card.locator(".progress-line")).to_have_text("done")
    card.get_by_role("button", name=re.compile("show ")).click()
    counts = phone.locator("#generation-counts")
    playwright_api.expect(counts.locator('[data-count="empty"]')).to_have_text("1")
    playwright_api.expect(counts.locator('[data-count="written"]')).to_have_text("4")
    playwright_api.expect(counts).to_contain_text("empty rows dropped")
    playwright_api.expect(counts).to_contain_text("missing glyphs")
    playwright_api.expect(phone.locator("#detail-title")).to_be_in_viewport()
    context.close()


def test_the_monitor_opens_on_the_running_job(server, page):
    """Issue 18 item 5: it opened with no job selected even while one ran."""
    from conftest import articles

    base, root = server
    (root / "uploads").mkdir(parents=True, exist_ok=True)
    (root / "uploads" / "long.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in articles(1500, words=40)))
    client = Client(base)
    status, started = client.call("POST", "/api/dataset/generate", {
        "source": "uploads/long.jsonl", "text_field": "article", "summary_field": "highlights",
        "name": "long", "page_size": "tiny", "workers": 1, "shard_size": 5})
    assert status == 202, started
    wait_status(base, started["job_id"], "running", timeout=60)
    try:
        page.goto(base + "/monitor")
        playwright_api.expect(page.locator("#detail-title")).to_contain_text("generate · long")
        assert f"job={started['job_id']}" in page.url
    finally:
        client.call("POST", f"/api/jobs/{started['job_id']}/cancel")
        wait_status(base, started["job_id"], "cancelled", timeout=120)


def test_a_taken_dataset_name_is_refused_in_the_form(server, page):
    """Issue 18 item 6: a reused name was accepted, then the job failed naming a server
    path and CLI flags the form does not have."""
    base, _ = server
    client = Client(base)
    status, made = client.call("POST", "/api/benchmark/create", {
        "preset": "scitldr", "name": "reused", "max_samples": 4, "page_size": "256x256",
        "font_size": 12, "margin": 8})
    assert status == 202, made
    wait_status(base, made["job_id"], timeout=120)
    before = api_get(base, "/api/jobs?kind=generate")["total"]
    page.goto(base + "/")
    page.get_by_label("name").fill("reused")
    page.get_by_label("max samples").fill("5")
    page.get_by_text("Render options").click()
    page.get_by_label("page size").fill("256x256")
    page.get_by_role("button", name="Generate dataset").click()
    message = page.locator("#g-name-error")
    playwright_api.expect(message).to_contain_text("'reused' is taken")
    playwright_api.expect(message).to_contain_text("set overwrite to replace it")
    assert "--" not in message.inner_text() and "/datasets" not in message.inner_text()
    assert api_get(base, "/api/jobs?kind=generate")["total"] == before
    page.get_by_label("overwrite").check()
    playwright_api.expect(page.locator("#cli-equivalent")).to_contain_text("--overwrite")
    page.get_by_role("button", name="Generate dataset").click()
    playwright_api.expect(page.locator("#generate-job .badge")).to_have_text(
        "completed", timeout=120 * SECONDS)
    playwright_api.expect(page.locator('[data-dataset="reused"]')).to_contain_text("train: 5")


def test_reloading_the_benchmark_page_keeps_following_its_job(browser, tmp_path):
    config = ServerConfig(data_root=str(tmp_path / "d"), generate_capacity=0)  # jobs only queue
    with running(config) as (_, base):
        context = browser.new_context()
        page = context.new_page()
        page.goto(base + "/")
        page.get_by_label("name").fill("kept")
        page.get_by_role("button", name="Generate dataset").click()
        job = page.locator("#generate-job .job-summary")
        playwright_api.expect(job).to_contain_text("generate · kept")
        page.reload()
        playwright_api.expect(job).to_contain_text("generate · kept")
        playwright_api.expect(job.locator(".badge")).to_have_text("queued")
        playwright_api.expect(page.get_by_role("button", name="Generate dataset")).to_be_disabled()
        context.close()


def ready_dataset(base: str, name: str, rows: int = 4) -> None:
    """A small generated dataset on the server (made once per server)."""
    if any(d["name"] == name for d in api_get(base, "/api/datasets")["datasets"]):
        return
    status, made = Client(base).call("POST", "/api/benchmark/create", {
        "preset": "scitldr", "name": name, "max_samples": rows, "page_size": "256x256",
        "font_size": 12, "margin": 8})
    assert status == 202, made
    wait_status(base, made["job_id"], timeout=120)


def test_presets_and_the_lora_recommendation_agree_in_the_form(server, page):
    """Issue 18 item 8: after cpu_demo then Apply, max_steps 300 stayed while the estimate
    counted epochs, --preset cpu_demo stayed in the command, LoRA r/alpha/dropout stayed
    blank and the LoRA preset picker stayed active with peft full."""
    base, _ = server
    ready_dataset(base, "small-4")
    page.goto(base + "/train")
    page.get_by_label("Dataset", exact=True).select_option("small-4")
    page.locator('[data-preset="cpu_demo"]').click()
    playwright_api.expect(page.get_by_label("max steps")).to_have_value("300")
    playwright_api.expect(page.locator("#cli-equivalent")).to_contain_text("--preset cpu_demo")
    # cpu_demo trains in full: the LoRA fields do not apply.
    playwright_api.expect(page.get_by_label("peft")).to_have_value("full")
    playwright_api.expect(page.get_by_label("lora preset")).to_be_disabled()
    playwright_api.expect(page.get_by_label("LoRA r", exact=True)).to_be_disabled()
    playwright_api.expect(page.locator("#t-lora_r-hint")).to_have_text("not used with peft full")
    page.get_by_role("button", name="Apply recommended LoRA preset").click()
    advice = page.locator("#recommendation")
    playwright_api.expect(advice).to_contain_text("tiny_data for 4 samples")
    playwright_api.expect(advice).to_contain_text("max_steps 300 → unset")
    playwright_api.expect(advice).to_contain_text("learning_rate 0.002 → 0.0001")
    playwright_api.expect(page.get_by_label("max steps")).to_have_value("")
    playwright_api.expect(page.locator("#cli-equivalent")).not_to_contain_text("--preset")
    playwright_api.expect(page.locator('[data-preset="cpu_demo"]')).to_have_attribute(
        "aria-pressed", "false")
    # What the LoRA preset sets is shown, from the API's preset table.
    presets = api_get(base, "/api/lora/presets")["presets"]
    rank = page.get_by_label("LoRA r", exact=True)
    playwright_api.expect(rank).to_be_enabled()
    playwright_api.expect(rank).to_have_attribute("placeholder", str(presets["tiny_data"]["r"]))
    playwright_api.expect(page.locator("#t-lora_alpha-hint")).to_have_text(
        f"tiny_data sets {presets['tiny_data']['alpha']}")
    playwright_api.expect(page.get_by_label("lora dropout")).to_have_attribute(
        "placeholder", str(presets["tiny_data"]["dropout"]))
    # Clearing a field a preset set drops the preset (the server would refill it).
    page.locator('[data-preset="quick_test"]').click()
    playwright_api.expect(page.locator("#cli-equivalent")).to_contain_text("--preset quick_test")
    page.get_by_label("max steps").fill("")
    playwright_api.expect(page.locator("#cli-equivalent")).not_to_contain_text("--preset")
    # More options: in sections; the chat fields only for the Generic trainer.
    page.get_by_text("More options").click()
    playwright_api.expect(page.get_by_role("heading", name="Optimizer")).to_be_visible()
    playwright_api.expect(page.get_by_label("chat template")).to_be_hidden()
    page.locator('[data-trainer="generic"]').click()
    playwright_api.expect(page.get_by_label("chat template")).to_be_visible()


def test_chat_runs_stay_out_of_summaries_and_ocr_panels(server, page):
    """Issue 18 item 10: chat models were offered to Summarize (an error toast), chat runs
    showed empty ROUGE and expert-load panels, and empty text got "text give either text
    or image"."""
    base, root = server
    (root / "uploads").mkdir(parents=True, exist_ok=True)
    (root / "uploads" / "two-chats.jsonl").write_text(
        "".join(json.dumps(CHAT_LINE) + "\n" for _ in range(2)))
    client = Client(base)
    status, started = client.call("POST", "/api/model/train", {
        "trainer_type": "generic", "peft": "full", "max_steps": 2, "batch_size": 2,
        "gradient_accumulation_steps": 1, "mixed_precision": "no",
        "dataset": "uploads/two-chats.jsonl", "name": "chatty"})
    assert status == 202, started
    wait_status(base, started["job_id"], timeout=300)
    page.goto(base + f"/monitor?job={started['job_id']}")
    playwright_api.expect(page.locator("#detail-title .badge")).to_have_text("completed")
    playwright_api.expect(page.locator("#loss-chart")).to_be_visible()
    playwright_api.expect(page.locator("#rouge-chart")).to_be_hidden()
    playwright_api.expect(page.locator("#expert-chart")).to_be_hidden()
    page.goto(base + "/models")
    playwright_api.expect(page.locator('tr[data-model="chatty"]')).to_contain_text("ready")
    picker = page.get_by_label("Model").locator("option")
    playwright_api.expect(picker.first).to_be_attached()  # the listing has filled it in
    options = picker.all_inner_texts()
    assert "chatty" not in options, options
    # On a phone the models table stacks: no sideways scroll, each cell named (issue 18 item 16).
    page.set_viewport_size({"width": 390, "height": 844})
    row = page.locator('tr[data-model="chatty"]')
    playwright_api.expect(row.locator("td").first).to_have_css("display", "grid")
    assert page.evaluate("() => document.scrollingElement.scrollWidth <= innerWidth")
    assert row.locator("td").nth(1).get_attribute("data-label") == "Status"
    status, refused = client.call("POST", "/api/summarize", {"model": "chatty", "text": ""})
    assert status == 422 and refused["field"] == "text", refused
    assert refused["error"] == ("text is empty: give a text to summarize, or a page image "
                                "(image, a base64 PNG)"), refused


def test_the_monitor_shows_what_the_service_uses(server, page):
    """Issue 18 item 14 (resource view). Tested without CUDA: the GPU line says there is
    none; with nvidia-smi each GPU gets a line (tests/test_machine.py parses its output)."""
    base, _ = server
    page.goto(base + "/monitor")
    resources = page.locator("#resources")
    playwright_api.expect(resources.locator('[data-resource="service CPU"]')).to_contain_text(
        re.compile(r"^\d+% of one core · machine \d+% of \d+ cores$"))
    playwright_api.expect(resources.locator('[data-resource="service memory"]')).to_have_text(
        re.compile(r"^\d+\.\d GiB · machine \d+\.\d GiB of \d+\.\d GiB used$"))
    if not api_get(base, "/api/resources")["gpus"]:
        playwright_api.expect(resources.locator('[data-resource="GPU"]')).to_have_text(
            "no NVIDIA GPU (CUDA) on this machine")
