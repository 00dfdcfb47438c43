"""DeepSeek-OCR v1 through the project's loop: a tiny checkpoint in v1's own layout
(``support/v1_checkpoint.py``) trains a few steps (LoRA on the MoE experts and router, and
full fine-tuning), saves, reloads to identical outputs and summarizes; the ``deepseek-ocr``
preset loads it as a Hub download; a v1 folder with missing weights and a folder of an
unknown family get one clear error naming the model (CLI ``error:`` line, REST 400 with
``field``), never a traceback.

The Hugging Face Hub is the only test double: the preset's download is replaced by the tiny
v1 folder placed in a Hub cache (``HF_HUB_CACHE`` with ``HF_HUB_OFFLINE=1``), which
transformers reads through the same calls as a real download.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file, save_file
from support.server import Client, running, wait_job
from support.v1_checkpoint import write_v1_checkpoint
from transformers import AutoTokenizer, set_seed

from deepsynth.config.server import ServerConfig
from deepsynth.config.training import training_config
from deepsynth.models import tiny
from deepsynth.models.model_info import MODEL_INFO_NAME
from deepsynth.models.registry import load_model
from deepsynth.training import setup
from deepsynth.training.data import Collator, PageDataset, load_split, pixel_values
from deepsynth.training.loop import train
from deepsynth.training.pages import PageFormat
from deepsynth.workspace import Workspace

SHARD = "model-00001-of-000001.safetensors"


@pytest.fixture(scope="module")
def v1_folder(root, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("v1") / "tiny-deepseek-ocr-v1"
    tokenizer = AutoTokenizer.from_pretrained(tiny.ensure_tokenizer(Workspace(root).cache))
    write_v1_checkpoint(folder, tokenizer)
    return folder


@pytest.fixture(scope="module")
def dataset(root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("datasets") / "scitldr"
    done = run_cli("generate", "--source", "builtin:scitldr", "--out", str(out),
                   "--max-samples", "8", "--page-size", "256x256", "--font-size", "12",
                   "--margin", "8", env={"DEEPSYNTH_DATA_ROOT": str(root)})
    assert done.returncode == 0, done.stderr
    return out


def config(dataset: Path, out: Path, model: str, steps: int, **options):
    return training_config({"dataset": str(dataset), "out": str(out), "model": model,
                            "preset": "quick_test", "max_steps": steps, "eval_steps": steps,
                            "save_steps": steps, "eval_samples": 2, "max_new_tokens": 4,
                            **options})


def example_batch(loaded, dataset: Path) -> dict:
    """Two real rendered pages and their sequences, as the loop's collator builds them."""
    from deepsynth.training.data import ExampleEncoder

    encoder = ExampleEncoder(loaded.tokenizer, loaded.image_token_id,
                             loaded.image_tokens_per_page, "Summarize:", 64)
    rows = PageDataset(load_split(str(dataset), "train", 4), encoder,
                       PageFormat(loaded.family, loaded.image_size))
    batch = Collator(loaded.tokenizer.pad_token_id)([rows[0], rows[1]])
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
            "pixel_values": pixel_values(batch["pages"], torch.float32)}


@torch.no_grad()
def logits_of(model, batch: dict) -> torch.Tensor:
    model.eval()
    return model(**batch).logits


def rebuilt_from_checkpoint(run_config, result, root: Path, steps: int):
    """The model as the loop builds it, with the last checkpoint's trained tensors."""
    set_seed(run_config.schedule.seed)
    model = setup.make_trainable(setup.load_base_model(run_config, root), run_config, steps)
    saved = load_file(str(result.run_dir / "checkpoints" / f"step-{steps:06d}" /
                          "trainable.safetensors"))
    parameters = dict(model.named_parameters())
    assert set(saved) == {n for n, p in parameters.items() if p.requires_grad}
    with torch.no_grad():
        for name, tensor in saved.items():
            parameters[name].copy_(tensor)
    return model


# ------------------------------------------------------------------ training and reload


# Full fine-tuning also runs the MoE regularizers that need v1's routers and experts found.
MOE = {"expert_dropout_rate": 0.1, "gate_dropout_rate": 0.1, "aux_loss_coef": 0.01}


@pytest.mark.parametrize("peft,lora_preset,steps,moe", [("lora", "high_capacity_moe", 2, {}),
                                                        ("full", "standard", 1, MOE)])
def test_a_v1_checkpoint_trains_saves_and_reloads_to_identical_outputs(
        v1_folder, dataset, root, tmp_path, peft, lora_preset, steps, moe):
    run_config = config(dataset, tmp_path / "run", str(v1_folder), steps, peft=peft,
                        lora_preset=lora_preset, **moe)
    result = train(run_config, root=root, echo=lambda *_: None)
    assert (result.status, result.step) == ("completed", steps)
    info = json.loads((result.final_model / MODEL_INFO_NAME).read_text())
    assert info["family"] == "deepseek_ocr" and info["image_size"] == 256
    rows = {line[:16].strip(): line[16:].split() for line in
            (result.run_dir / "parameters.txt").read_text().splitlines()[1:]}
    for component in ("sam encoder", "vision encoder", "projector", "view separator"):
        assert rows[component][-1] == "frozen", component  # v1's vision side, by prefix
    if peft == "full":  # saved natively, with v1's weight names written back
        saved = json.loads((result.final_model / "config.json").read_text())
        assert saved["model_type"] == "unlimited_ocr"
        assert set(saved["text_config"]["layer_types"]) == {"full_attention"}
        names = set(load_file(str(result.final_model / "model.safetensors")))
        assert "model.view_seperator" in names and "model.sam_model.pos_embed" in names

    base = load_model(str(v1_folder), root=root)
    batch = example_batch(base, dataset)
    first = load_model(str(result.final_model), root=root)
    second = load_model(str(result.final_model), root=root)
    assert first.family == "deepseek_ocr" and first.image_tokens_per_page == 21
    reloaded = logits_of(first.model, batch)
    assert torch.equal(reloaded, logits_of(second.model, batch))
    assert (reloaded - logits_of(base.model, batch)).abs().max() > 1e-4  # it trained
    trained = rebuilt_from_checkpoint(run_config, result, root, steps)
    assert torch.allclose(logits_of(trained, batch), reloaded, rtol=1e-5, atol=1e-6)
    if peft == "lora":
        weights = load_file(str(result.final_model / "adapter_weights.safetensors"))
        assert any(".mlp.experts.lora_B" in k for k in weights)  # the experts' adapters
        assert any(".mlp.gate.lora_A" in k for k in weights)  # and the router's

        document = tmp_path / "document.txt"
        document.write_text("The harbour council met to discuss the railway budget. " * 4)
        summarized = run_cli("summarize", "--model", str(result.final_model), "--text-file",
                             str(document), "--max-new-tokens", "4",
                             env={"DEEPSYNTH_DATA_ROOT": str(root)})
        assert summarized.returncode == 0, summarized.stderr
        assert "Traceback" not in summarized.stderr
        report = json.loads(summarized.stdout)
        assert isinstance(report["summary"], str) and report["pages"] >= 1


def hub_cache_with(folder: Path, cache: Path, repo: str) -> dict:
    """The Hub double: ``folder`` as the cached snapshot of ``repo`` (the layout
    huggingface_hub reads offline: refs/main naming a snapshot folder)."""
    revision = "0" * 40
    base = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, base / "snapshots" / revision)
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(revision)
    return {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}


def test_the_deepseek_ocr_preset_loads_and_trains_without_remote_code(
        v1_folder, dataset, root, tmp_path):
    env = {"DEEPSYNTH_DATA_ROOT": str(root),
           **hub_cache_with(v1_folder, tmp_path / "hub", "deepseek-ai/DeepSeek-OCR")}
    out = tmp_path / "run"
    done = run_cli("train", "--dataset", str(dataset), "--out", str(out), "--model",
                   "deepseek-ocr", "--preset", "quick_test", "--max-steps", "1",
                   "--eval-steps", "1", "--eval-samples", "1", "--max-new-tokens", "2",
                   env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "remote code" not in done.stderr and "Traceback" not in done.stderr
    info = json.loads((out / "final" / MODEL_INFO_NAME).read_text())
    assert (info["base_model"], info["family"]) == ("deepseek-ocr", "deepseek_ocr")


# ------------------------------------------------------------------------------ errors


def without_experts(v1_folder: Path, out: Path) -> Path:
    shutil.copytree(v1_folder, out)
    weights = load_file(str(out / SHARD))
    kept = {k: v for k, v in weights.items() if ".mlp.experts." not in k}
    save_file(kept, str(out / SHARD), metadata={"format": "pt"})
    index = json.loads((out / "model.safetensors.index.json").read_text())
    index["weight_map"] = {k: SHARD for k in kept}
    (out / "model.safetensors.index.json").write_text(json.dumps(index))
    return out


def deepseek_vl2(out: Path) -> Path:
    """DeepSeek-VL2's folder: v1's model_type, but not DeepSeek-OCR (another model)."""
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({
        "model_type": "deepseek_vl_v2", "architectures": ["DeepseekVLV2ForCausalLM"],
        "vision_config": {"model_name": "siglip_so400m_patch14_384"}}))
    return out


def without_weights(v1_folder: Path, out: Path) -> Path:
    return Path(shutil.copytree(v1_folder, out, ignore=shutil.ignore_patterns("*.safetensors*")))


def causal_lm(v1_folder: Path, out: Path) -> Path:
    """The tiny chat model's folder, without DeepSynth's metadata: a plain qwen2 folder."""
    from deepsynth.models.tiny_chat import ensure_tiny_chat_model

    built = ensure_tiny_chat_model(Workspace().cache)  # the module's data root (env)
    shutil.copytree(built, out, ignore=shutil.ignore_patterns(MODEL_INFO_NAME))
    return out


# The tiny model has one MoE layer: its two fused expert tensors are missing.
MISSING = "lacks 2 of the model's weights"
BROKEN = {"missing weights": (without_experts, MISSING),
          "no weights file": (without_weights, "cannot load model"),
          "unknown family": (lambda v1, out: deepseek_vl2(out),
                             "is a 'deepseek_vl_v2' model, of no family DeepSynth trains"),
          "a causal LM": (causal_lm, "is a causal LM; the OCR trainers read page images")}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_or_foreign_folder_is_one_error_line_naming_the_model(
        v1_folder, dataset, root, tmp_path, case):
    make, message = BROKEN[case]
    folder = make(v1_folder, tmp_path / "broken-model")
    done = run_cli("train", "--dataset", str(dataset), "--out", str(tmp_path / "run"),
                   "--model", str(folder), "--max-steps", "1",
                   env={"DEEPSYNTH_DATA_ROOT": str(root)})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and message in last and str(folder) in last, last


def test_the_api_answers_4xx_naming_the_model_field(v1_folder, dataset, root):
    """A summary loads the model (400 from the load); a training request is refused as it is
    submitted when the folder's config.json is of no OCR family (422, nothing queued), and
    its job fails naming the model when its weights are missing (read when it starts)."""
    workspace = Workspace(root)
    without_experts(v1_folder, workspace.models / "v1-broken" / "final")
    deepseek_vl2(workspace.models / "vl2" / "final")
    shutil.copytree(dataset, workspace.datasets / "ds")
    with running(ServerConfig(data_root=str(root), threads=2)) as (_, base):
        client = Client(base)
        status, answer = client.call("POST", "/api/model/train", {
            "name": "from-vl2", "dataset": "ds", "model": "vl2", "max_steps": 1})
        assert status == 422 and answer["field"] == "model", answer
        assert "of no family DeepSynth trains" in answer["error"]
        status, accepted = client.call("POST", "/api/model/train", {
            "name": "from-broken", "dataset": "ds", "model": "v1-broken", "max_steps": 1})
        assert status == 202, accepted
        job = wait_job(client, accepted["job_id"])
        assert job["status"] == "failed" and MISSING in job["error"], job
        assert "Traceback" not in job["error"]
        for name, message in (("v1-broken", MISSING),
                              ("vl2", "of no family DeepSynth trains")):
            status, answer = client.call("POST", "/api/summarize",
                                         {"model": name, "text": "A short document."})
            assert status == 400 and answer["field"] == "model", answer
            assert message in answer["error"] and "Traceback" not in answer["error"]
            assert str(root) not in answer["error"]  # paths are shown relative



def test_real_pages_reach_the_model_with_v1s_token_count(v1_folder, dataset, root):
    loaded = load_model(str(v1_folder), root=root)
    batch = example_batch(loaded, dataset)
    pages = batch["pixel_values"].shape[0]
    assert pages > 2  # rows of several pages
    assert int((batch["input_ids"] == loaded.image_token_id).sum()) == 21 * pages
    assert torch.isfinite(logits_of(loaded.model, batch)).all()  # features and tokens agree
