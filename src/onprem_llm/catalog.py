"""Hardware platforms, model presets, request shapes and API prices the planner knows.

Every figure is a default the CLI can override, and each carries its source (docs/planner.md
lists them). Hardware prices are rounded 2025 street prices and only a starting point: use your
quote. Compute figures are dense (no 2:4 sparsity), per GPU.
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
    hbm_tb_s: float  # HBM bandwidth per GPU, TB/s
    bf16_tflops: float  # dense, per GPU
    fp8_tflops: float
    fp4_tflops: float  # 0 where the GPU has no FP4 tensor cores (FP8 rate is used)
    nvlink_gb_s: float  # NVLink bandwidth per GPU, GB/s, both directions
    scale_out_gb_s: float  # network per GPU between nodes (pipeline stages), GB/s
    source: str

    def tflops(self, weight_format: str) -> float:
        """Tensor-core rate for the weights' format; weight-only int4 computes in BF16."""
        if weight_format in ("fp4", "nvfp4", "mxfp4") and self.fp4_tflops > 0:
            return self.fp4_tflops
        if weight_format in ("fp8", "float8", "fp8_e4m3", "int8", "w8a8", "fp4", "nvfp4", "mxfp4"):
            return self.fp8_tflops
        return self.bf16_tflops


PLATFORMS: dict[str, Platform] = {
    platform.key: platform
    for platform in (
        # HGX H200: 8 x 141 GB HBM3e at 4.8 TB/s, 989 BF16 / 1,979 FP8 dense TFLOPS, NVLink 4
        # 900 GB/s; DGX H200 is rated 10.2 kW. One 400 Gb/s NIC per GPU.
        Platform(
            "h200_hgx", "8x H200 HGX", 8, 141.0, 8, 1, "HGX server", 300_000.0, 10.2,
            4.8, 989.0, 1979.0, 0.0, 900.0, 50.0,
            "NVIDIA H200 Tensor Core GPU datasheet (2024); DGX H200 user guide",
        ),
        # GB200 NVL72: 18 compute trays of 4 GPUs (186 GB HBM3e at 8 TB/s each), one 72-GPU
        # NVLink 5 domain at 1.8 TB/s per GPU; 2.5 PF BF16 / 5 PF FP8 / 10 PF FP4 dense per GPU;
        # bought and powered as a rack (about 120 kW).
        Platform(
            "gb200_nvl72", "GB200 NVL72", 4, 186.0, 72, 18, "NVL72 rack", 3_000_000.0, 120.0,
            8.0, 2500.0, 5000.0, 10000.0, 1800.0, 100.0,
            "NVIDIA GB200 NVL72 product page and datasheet (2024-2025)",
        ),
        # HGX H100: 8 x 80 GB HBM3 at 3.35 TB/s, same tensor cores as H200; DGX H100 10.2 kW.
        Platform(
            "h100_hgx", "8x H100 HGX", 8, 80.0, 8, 1, "HGX server", 250_000.0, 10.2,
            3.35, 989.0, 1979.0, 0.0, 900.0, 50.0,
            "NVIDIA H100 Tensor Core GPU datasheet (2023); DGX H100 user guide",
        ),
        # HGX B200: 8 x 180 GB HBM3e at 8 TB/s (DGX B200: 1,440 GB, 64 TB/s), 2.25 PF BF16 /
        # 4.5 PF FP8 / 9 PF FP4 dense per GPU, NVLink 5 1.8 TB/s; DGX B200 about 14.3 kW.
        Platform(
            "b200_hgx", "8x B200 HGX", 8, 180.0, 8, 1, "HGX server", 450_000.0, 14.3,
            8.0, 2250.0, 4500.0, 9000.0, 1800.0, 50.0,
            "NVIDIA DGX B200 datasheet (2024); HGX B200 product page",
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class ModelPreset:
    """A model's published configuration (its config.json on Hugging Face).

    kv_bytes_per_token is for a 16-bit cache: 2 (K and V) x layers x KV heads x head size x 2
    bytes for GQA; for multi-head latent attention (DeepSeek) one 512 + 64 latent per layer,
    which every tensor-parallel rank holds whole (kv_heads 1).
    """

    key: str
    params_b: float
    kv_bytes_per_token: int
    active_params_b: float
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    context_length: int


MODELS: dict[str, ModelPreset] = {
    preset.key: preset
    for preset in (
        ModelPreset("llama-3.1-8b", 8, 2 * 32 * 8 * 128 * 2, 8, 32, 4096, 32, 8, 131072),
        ModelPreset("llama-3.1-70b", 70, 2 * 80 * 8 * 128 * 2, 70, 80, 8192, 64, 8, 131072),
        ModelPreset("llama-3.1-405b", 405, 2 * 126 * 8 * 128 * 2, 405, 126, 16384, 128, 8, 131072),
        # Llama 4: mixture of experts, 17B parameters active per token, 40 query heads.
        ModelPreset("llama-4-scout", 109, 2 * 48 * 8 * 128 * 2, 17, 48, 5120, 40, 8, 10485760),
        ModelPreset("llama-4-maverick", 400, 2 * 48 * 8 * 128 * 2, 17, 48, 5120, 40, 8, 1048576),
        # DeepSeek V3 and R1 share one architecture: 671B total, 37B active, MLA, 61 layers.
        ModelPreset("deepseek-v3", 671, (512 + 64) * 61 * 2, 37, 61, 7168, 128, 1, 163840),
        ModelPreset("deepseek-r1", 671, (512 + 64) * 61 * 2, 37, 61, 7168, 128, 1, 163840),
    )
}  # fmt: skip


@dataclass(frozen=True)
class RequestShape:
    """Typical prompt and completion tokens of one request."""

    key: str
    prompt_tokens: int
    completion_tokens: int
    note: str


REQUEST_SHAPES: dict[str, RequestShape] = {
    shape.key: shape
    for shape in (
        RequestShape("chat", 1000, 500, "assistant chat turn with some history"),
        RequestShape("rag", 4000, 400, "retrieval-augmented answer over a few documents"),
        RequestShape("summarise", 8000, 800, "summary of a long document"),
        RequestShape("code", 2000, 1000, "code completion and edits with file context"),
        RequestShape("reasoning", 1000, 4000, "reasoning model: long hidden chain of thought"),
    )
}
DEFAULT_REQUEST_SHAPE = "chat"


@dataclass(frozen=True)
class ApiPrice:
    """A cloud API's list price per million tokens, as published on the given date."""

    key: str
    label: str
    input_per_million: float
    output_per_million: float
    as_of: str
    source: str


API_PRICES: dict[str, ApiPrice] = {
    price.key: price
    for price in (
        ApiPrice(
            "gpt-5", "OpenAI GPT-5", 1.25, 10.0, "2025-08-07", "https://openai.com/api/pricing/"
        ),
        ApiPrice(
            "claude-sonnet-4.5", "Anthropic Claude Sonnet 4.5", 3.0, 15.0, "2025-09-29",
            "https://www.anthropic.com/pricing#api",
        ),
        # Prompts up to 200k tokens; longer prompts cost $2.50 / $15.
        ApiPrice(
            "gemini-2.5-pro", "Google Gemini 2.5 Pro", 1.25, 10.0, "2025-06-17",
            "https://ai.google.dev/gemini-api/docs/pricing",
        ),
    )
}  # fmt: skip
DEFAULT_API = "gpt-5"
