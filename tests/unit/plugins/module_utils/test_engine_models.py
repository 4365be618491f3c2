"""Several models on one host (engine_models): each on GPUs of its own, consecutive ports, and
errors that name the entry and the key."""

from __future__ import annotations

import pytest
from ansible_collections.onprem.llm.plugins.module_utils import _engine_instances as engines

H200 = {
    "engine_type": "vllm",
    "engine_device": "gpu",
    "nvidia_driver_profile": "h200_hgx",
    "engine_base_port": 8000,
    "engine_reserved_ports": [9100, 9400],
    "engine_gpu_memory_utilization": 0.9,
}
LLAMA_70B = {"name": "llama-3.1-70b", "params_b": 70, "dtype": "bf16", "context_length": 8192}
LLAMA_8B = {"name": "llama-3.1-8b", "params_b": 8, "dtype": "bf16", "context_length": 8192}


def instances(models, **settings):
    return engines.host_instances("h200-1", {**H200, **settings, "engine_models": models})


def rejected(models, **settings) -> str:
    with pytest.raises(engines.EngineInputError) as error:
        instances(models, **settings)
    return str(error.value)


def test_two_models_share_a_host_on_disjoint_gpus_and_consecutive_ports() -> None:
    placed = instances(
        [
            {"model": LLAMA_70B, "gpus": [0, 1, 2, 3], "source": {"type": "none"}},
            {"model": LLAMA_8B, "gpus": [4, 5, 6, 7], "served_model_name": "small"},
        ]
    )
    summary = [(i["model"], i["gpus"], i["port"], i["unit"]) for i in placed]
    assert summary == [
        ("llama-3.1-70b", [0, 1], 8000, "onprem-llm-engine@0.service"),
        ("llama-3.1-70b", [2, 3], 8001, "onprem-llm-engine@1.service"),
        ("small", [4], 8002, "onprem-llm-engine@2.service"),
        ("small", [5], 8003, "onprem-llm-engine@3.service"),
        ("small", [6], 8004, "onprem-llm-engine@4.service"),
        ("small", [7], 8005, "onprem-llm-engine@5.service"),
    ]
    # Each instance knows its model's directory, backend and GPU share.
    assert {i["model_dir_name"] for i in placed} == {"llama-3.1-70b", "llama-3.1-8b"}
    assert {i["backend"] for i in placed} == {"model_llama-3.1-70b", "model_small"}
    assert placed[2]["cuda_visible_devices"] == "4"


def test_gpus_need_not_be_contiguous_and_keep_their_host_indices() -> None:
    placed = instances([{"model": LLAMA_8B, "gpus": [6, 1], "instances": 2}])
    assert [i["gpus"] for i in placed] == [[6], [1]]


def test_cpu_hosts_take_instances_per_model() -> None:
    placed = engines.host_instances(
        "cpu-1",
        {
            "engine_type": "vllm",
            "engine_device": "cpu",
            "engine_base_port": 8000,
            "engine_models": [
                {"model": {"name": "tiny-b", "context_length": 512}},
                {"model": {"name": "tiny-c", "context_length": 512}, "cpu_instances": 2},
            ],
        },
    )
    assert [(i["model"], i["port"]) for i in placed] == [
        ("tiny-b", 8000),
        ("tiny-c", 8001),
        ("tiny-c", 8002),
    ]


def test_the_single_model_settings_still_place_one_model_on_every_gpu() -> None:
    placed = engines.host_instances("h200-1", {**H200, "engine_model": LLAMA_8B})
    assert [i["gpus"] for i in placed] == [[g] for g in range(8)]
    assert placed[0]["model_dir_name"] == "llama-3.1-8b"


@pytest.mark.parametrize(
    ("models", "settings", "message"),
    [
        (
            [{"model": LLAMA_70B, "gpus": [0, 1, 2, 3]}, {"model": LLAMA_8B, "gpus": [3, 4]}],
            {},
            "engine_models[1].gpus: GPU 3 is also given to engine_models[0]",
        ),
        (
            [{"model": LLAMA_70B, "gpus": [0, 1, 2, 3]}, {"model": LLAMA_8B, "gpus": [7, 8, 9]}],
            {},
            "engine_models[1].gpus: GPU 8, 9 is not on this host (8 GPUs, 0-7)",
        ),
        ([{"model": LLAMA_8B, "gpus": [2, 2]}], {}, "engine_models[0].gpus: GPU 2 is listed twice"),
        ([{"model": LLAMA_8B}], {}, "engine_models[0].gpus: expected a list"),
        (
            [{"model": LLAMA_70B, "gpus": [0]}],
            {},
            "engine_models[0].model: llama-3.1-70b does not fit",
        ),
        (
            [{"model": LLAMA_8B, "gpus": [0]}, {"model": LLAMA_8B, "gpus": [1]}],
            {},
            "engine_models[1].served_model_name: 'llama-3.1-8b' is served by engine_models[0]",
        ),
        (
            [
                {"model": LLAMA_8B, "gpus": [0], "served_model_name": "a"},
                {"model": LLAMA_8B, "gpus": [1], "served_model_name": "b"},
            ],
            {},
            "engine_models[1].dir_name: model directory 'llama-3.1-8b' is used by engine_models[0]",
        ),
        (
            [{"model": LLAMA_8B, "gpus": [0], "tensor_parallel_size": 3}],
            {},
            "engine_models[0].tensor_parallel_size: must be a power of two",
        ),
        ([{"model": LLAMA_8B, "gpus": [0], "gpu": [1]}], {}, "engine_models[0]: unknown keys gpu"),
        (
            [{"model": {"params_b": 8}, "gpus": [0]}],
            {},
            "engine_models[0].model: expected a mapping",
        ),
        ([{"model": LLAMA_8B, "gpus": [0]}], {"engine_ports": [8000]}, "engine_ports: not used"),
    ],
)
def test_bad_model_lists_fail_naming_the_entry(models, settings, message) -> None:
    assert message in rejected(models, **settings)
