"""Hardware platforms and model presets the planner knows, with the sources of their numbers.

Every figure is a default the CLI can override. Prices are rounded public list prices of 2025
and only a starting point: use your quote.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Platform:
    """A GPU platform; a system is what is bought and powered as one unit."""

    key: str
    label: str
    gpus_per_node: int
    gpu_memory_gb: float  # NVIDIA's quoted capacity per GPU
    nvlink_domain_gpus: int
    nodes_per_system: int
    system_label: str
    capex_per_system: float  # USD
    power_kw_per_system: float  # at full load


PLATFORMS: dict[str, Platform] = {
    platform.key: platform
    for platform in (
        # HGX H200: 8 x 141 GB HBM3e on NVSwitch; DGX H200 is rated 10.2 kW.
        Platform("h200_hgx", "8x H200 HGX", 8, 141.0, 8, 1, "HGX server", 300_000.0, 10.2),
        # GB200 NVL72: 18 compute trays of 4 GPUs (186 GB each), one 72-GPU NVLink domain,
        # bought and powered as a rack (about 120 kW).
        Platform("gb200_nvl72", "GB200 NVL72", 4, 186.0, 72, 18, "NVL72 rack", 3_000_000.0, 120.0),
        # HGX H100: 8 x 80 GB HBM3 on NVSwitch; DGX H100 is rated 10.2 kW.
        Platform("h100_hgx", "8x H100 HGX", 8, 80.0, 8, 1, "HGX server", 250_000.0, 10.2),
    )
}


@dataclass(frozen=True)
class ModelPreset:
    """Total parameters and KV cache bytes per token (2 x layers x KV heads x head size x 2
    bytes for a 16-bit cache) from each model's published configuration."""

    key: str
    params_b: float
    kv_bytes_per_token: int


MODELS: dict[str, ModelPreset] = {
    preset.key: preset
    for preset in (
        ModelPreset("llama-3.1-8b", 8, 2 * 32 * 8 * 128 * 2),  # 32 layers, 8 KV heads
        ModelPreset("llama-3.1-70b", 70, 2 * 80 * 8 * 128 * 2),  # 80 layers
        ModelPreset("llama-3.1-405b", 405, 2 * 126 * 8 * 128 * 2),  # 126 layers
        ModelPreset("llama-4-scout", 109, 2 * 48 * 8 * 128 * 2),  # MoE 17B active, 48 layers
        ModelPreset("llama-4-maverick", 400, 2 * 48 * 8 * 128 * 2),  # MoE 17B active
        # Multi-head latent attention: one 512 + 64 latent per layer, 61 layers.
        ModelPreset("deepseek-v3", 671, (512 + 64) * 61 * 2),
    )
}
