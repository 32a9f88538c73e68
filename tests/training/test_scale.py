"""Issue 20 on CPU: QLoRA and sharding as spec options, the memory estimator's decisions on known shapes (before
queueing and on the worker), the generated FSDP / multi-node accelerate configs (read back with accelerate's own
loader), and a QLoRA plan that cannot run here failing with its reason."""

import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from tests.conftest import login
from training.jobs.launch import Cluster, accelerate_config, runner_command
from training.jobs.memory import DoesNotFit, ModelShape, choose, describe, plan_job, read_shape
from training.jobs.spec import PRESETS, JobSpec, spec_from_preset
from training.jobs.supervisor import job_command, job_supervise
from training.models import TrainingJob
from training.services.jobs import job_create

pytestmark = pytest.mark.django_db

# Shapes from the models' config.json files (vocab sizes as published).
LLAMA_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False}  # fmt: skip
LLAMA_70B = {"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64,
             "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False}  # fmt: skip
SMOLLM2_135M = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True}  # fmt: skip


def plan(config: dict, *, lora=True, quantization="auto", sharding="auto", gib=80.0, gpus=1, method="dpo",
         max_length=1024, lora_r=16):  # fmt: skip
    return choose(ModelShape.from_config(config), method=method, lora=lora, quantization=quantization,
                  sharding=sharding, checkpointing="auto", max_length=max_length, lora_r=lora_r, gpus=gpus,
                  have_gib=gib)  # fmt: skip


def test_parameter_counts_match_the_published_sizes():
    assert ModelShape.from_config(LLAMA_8B).params / 1e9 == pytest.approx(8.03, abs=0.01)
    assert ModelShape.from_config(LLAMA_70B).params / 1e9 == pytest.approx(70.55, abs=0.05)
    assert ModelShape.from_config(SMOLLM2_135M).params / 1e6 == pytest.approx(134.5, abs=0.5)


def test_the_estimator_picks_the_cheapest_strategy_that_fits():
    assert plan(LLAMA_8B, gib=80).strategy == "lora"  # bf16 LoRA on an 80 GB card
    small = plan(LLAMA_8B, gib=16)  # 16 GB: the bf16 weights alone are 15 GiB -> QLoRA
    assert (small.strategy, small.checkpointing, small.fits) == ("qlora", True, True)
    assert small.parts["weights"] < 6 < small.need_gib < 16 * 0.9
    assert plan(LLAMA_8B, lora=False, gib=80).strategy == "full"
    sharded = plan(LLAMA_8B, lora=False, gib=40, gpus=4)  # 8B full fine-tuning on 40 GB cards: sharded over 4
    assert (sharded.strategy, sharded.gpus) == ("fsdp", 4) and sharded.need_gib < 36
    with pytest.raises(DoesNotFit, match="FSDP needs ≈ 9\\d.\\d GiB per GPU over 8 GPUs"):
        plan(LLAMA_70B, lora=False, gib=80, gpus=8)  # 70B: weights, gradients, Adam and the reference > 8 x 80 GB
    assert plan(LLAMA_70B, lora=False, gib=80, gpus=16).strategy == "fsdp"  # two nodes of eight
    assert plan(LLAMA_70B, gib=80).strategy == "qlora"  # QLoRA's point: 70B LoRA on one 80 GB GPU
    assert plan(SMOLLM2_135M, gib=8).strategy == "lora"


def test_the_estimator_refuses_with_the_numbers():
    with pytest.raises(DoesNotFit) as caught:
        plan(LLAMA_70B, lora=False, gib=80, gpus=1)
    message = str(caught.value)
    assert "70.55 B parameters" in message and "80 GiB" in message and "72.0 GiB usable" in message
    assert "full fine-tuning on one GPU needs ≈" in message and "LoRA" in message  # what to try instead
    with pytest.raises(DoesNotFit, match=r"LoRA adapter, base not quantized needs ≈ \d+(\.\d)? GiB.*nf4"):
        plan(LLAMA_8B, quantization="none", gib=16)
    with pytest.raises(DoesNotFit, match="QLoRA"):
        plan(LLAMA_70B, quantization="nf4", gib=24)
    # auto never picks QLoRA where the worker cannot run it (no bitsandbytes)
    with pytest.raises(DoesNotFit):
        choose(ModelShape.from_config(LLAMA_8B), method="dpo", lora=True, quantization="auto", sharding="auto",
               checkpointing="auto", max_length=1024, lora_r=16, have_gib=16, quantization_available=False)  # fmt: skip


def test_the_plan_reads_as_one_line():
    line = describe(plan(LLAMA_8B, gib=16).as_dict())
    assert line.startswith("QLoRA: 4-bit NF4 base") and "activation checkpointing" in line and "of 16 GiB" in line
    unknown = plan_job(JobSpec(base_model="x/y"), None, gpus=1, have_gib=None)
    assert not unknown["checked"] and "once a worker loads" in describe(unknown)


def test_qlora_and_sharding_spec_options_and_presets():
    qlora = spec_from_preset("dpo-qlora", {"base_model": "x/y"})
    assert (qlora.quantization, qlora.lora, qlora.lora_r, qlora.lora_alpha) == ("nf4", True, 64, 128)
    assert {PRESETS["dpo-lora-r64"]["settings"]["lora_r"], PRESETS["dpo-lora-r128"]["settings"]["lora_r"]} == {64, 128}
    with pytest.raises(ValueError, match="quantization: QLoRA trains a LoRA adapter"):
        JobSpec.from_dict({"base_model": "x/y", "lora": False, "quantization": "nf4"})
    with pytest.raises(ValueError, match="quantization: QLoRA computes in bf16"):
        JobSpec.from_dict({"base_model": "x/y", "quantization": "nf4", "precision": "fp16"})
    with pytest.raises(ValueError, match="sharding: sharding is for full fine-tuning"):
        JobSpec.from_dict({"base_model": "x/y", "sharding": "fsdp"})
    with pytest.raises(ValueError, match="sharding: must be one of"):
        JobSpec.from_dict({"base_model": "x/y", "lora": False, "sharding": "zero9"})
    assert JobSpec.from_dict({"base_model": "x/y", "lora": False, "sharding": "fsdp"}).sharding == "fsdp"


def test_fsdp_and_multi_node_configs_are_what_accelerate_reads(tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    one = tmp_path / "fsdp.json"
    one.write_text(accelerate_config(8, "bf16", strategy="fsdp"))
    config = load_config_from_file(str(one))
    assert (config.distributed_type, config.num_processes, config.num_machines) == ("FSDP", 8, 1)
    assert config.fsdp_config["fsdp_version"] == 2 and config.fsdp_config["fsdp_reshard_after_forward"] is True
    assert config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    cluster = Cluster(gpus=8, machines=2, rank=1, main_address="10.0.0.5", main_port=29512)
    command = runner_command(9, tmp_path, gpus=8, precision="bf16", strategy="fsdp", cluster=cluster)
    node = load_config_from_file(command[command.index("--config_file") + 1])
    assert (node.num_processes, node.num_machines, node.machine_rank) == (16, 2, 1)
    assert (node.main_process_ip, node.main_process_port, node.distributed_type) == ("10.0.0.5", 29512, "FSDP")
    assert command[-3:] == ["-m", "training.runner", "9"] and (tmp_path / "accelerate-node1.json").is_file()
    # one GPU but two nodes: still distributed (data parallel over the nodes)
    assert "accelerate.commands.launch" in runner_command(
        9, tmp_path, gpus=1, precision="bf16", cluster=Cluster(gpus=1, machines=2, main_address="h")
    )


def _config_dir(tmp_path, config: dict):
    path = tmp_path / "shape"
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_a_job_that_cannot_fit_is_refused_before_queueing(export, admin, tmp_path, settings):
    folder = _config_dir(tmp_path, LLAMA_70B)
    assert read_shape(str(folder)) == ModelShape.from_config(LLAMA_70B)
    settings.TRAINING_GPU_MEMORY_GIB, settings.TRAINING_GPUS = 80, 1
    with pytest.raises(ValidationError, match="does not fit.*80 GiB"):
        job_create(export=export, user=admin, settings_={"base_model": str(folder), "lora": False})
    assert not TrainingJob.objects.exists()
    job = job_create(export=export, user=admin, settings_={"base_model": str(folder)})  # LoRA: QLoRA fits
    assert (job.memory_plan["strategy"], job.memory_plan["checked"]) == ("qlora", True)
    page = login(admin).get(reverse("training:job_detail", args=[job.public_id]))
    assert b'id="memory-plan"' in page.content and b"QLoRA: 4-bit NF4 base" in page.content
    settings.TRAINING_GPU_MEMORY_GIB = 0  # unknown GPU size: queued, checked on the worker
    unchecked = job_create(export=export, user=admin, settings_={"base_model": str(folder), "lora": False})
    assert unchecked.memory_plan["checked"] is False


def test_the_worker_fails_a_job_that_does_not_fit_its_gpus_without_starting_it(export, admin, tmp_path, settings,
                                                                                monkeypatch):  # fmt: skip
    folder = _config_dir(tmp_path, LLAMA_70B)
    job = job_create(export=export, user=admin, settings_={"base_model": str(folder), "lora": False})
    settings.TRAINING_GPU_MEMORY_GIB = 40  # the worker's cap (no nvidia-smi here)
    settings.TRAINING_ROOT = tmp_path / "training"
    started = []
    monkeypatch.setattr("training.jobs.supervisor._start", lambda *a: started.append(a))
    job_supervise(job.pk)
    job.refresh_from_db()
    assert job.state == "failed" and "does not fit" in job.error and "40 GiB" in job.error and not started


def test_a_sharded_plan_launches_fsdp(export, admin, tmp_path, settings):
    folder = _config_dir(tmp_path, LLAMA_8B)
    job = job_create(export=export, user=admin, settings_={"base_model": str(folder), "lora": False})
    cluster = Cluster(gpus=4)
    the_plan = plan_job(JobSpec.from_dict(job.spec), read_shape(str(folder)), gpus=4, have_gib=40)
    assert the_plan["strategy"] == "fsdp"  # 8B full fine-tuning does not fit one 40 GB card, does over four
    command = job_command(job, tmp_path, gpus=4, plan=the_plan, cluster=cluster)
    assert json.loads((tmp_path / "accelerate.json").read_text())["distributed_type"] == "FSDP"
    assert "accelerate.commands.launch" in command


def test_qlora_without_a_gpu_fails_with_its_reason(tmp_path):
    pytest.importorskip("torch")
    from training.runner.trl_run import QuantizationUnavailable, load_model

    with pytest.raises(QuantizationUnavailable, match="QLoRA .* needs a CUDA GPU"):
        load_model(str(tmp_path), "bf16", "cpu", quantized=True)


def test_a_multi_node_worker_sends_each_other_node_its_part(export, admin, tmp_path, settings, monkeypatch):
    folder = _config_dir(tmp_path, LLAMA_8B)
    job = job_create(export=export, user=admin, settings_={"base_model": str(folder), "lora": False})
    settings.TRAINING_NUM_MACHINES, settings.TRAINING_MAIN_ADDRESS, settings.TRAINING_GPU_MEMORY_GIB = 3, "h0", 40
    settings.TRAINING_ROOT = tmp_path / "training"
    sent, started = [], []
    monkeypatch.setattr("training.jobs.supervisor.current_app.send_task", lambda name, **kw: sent.append((name, kw)))
    monkeypatch.setattr("training.jobs.supervisor._start", lambda command, *a: started.append(command) or _Done())
    monkeypatch.setattr("training.jobs.supervisor.MONITOR_INTERVAL_S", 0)
    job_supervise(job.pk)
    assert [(n, kw["queue"], kw["args"][1]) for n, kw in sent] == [
        ("training.tasks.job_join_task", "gpu-node1", 1),
        ("training.tasks.job_join_task", "gpu-node2", 2),
    ]
    assert sent[0][1]["args"][2]["strategy"] == "fsdp"  # 8B full fine-tuning over 3 nodes of one 40 GB GPU
    assert "accelerate.commands.launch" in started[0]
    config = json.loads(Path(started[0][started[0].index("--config_file") + 1]).read_text())
    assert (config["num_machines"], config["machine_rank"], config["main_process_ip"]) == (3, 0, "h0")
    assert config["distributed_type"] == "FSDP"


class _Done:
    pid = 0

    def poll(self):
        return 0

    def wait(self, timeout=None):
        return 0
