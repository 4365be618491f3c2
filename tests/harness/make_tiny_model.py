"""Make the tiny random Llama that the serving tests load into a real vLLM (no model hub here).

Hidden size 128 with 2 heads (head_dim 64: vLLM's CPU attention rejects 16), 2 layers, a
byte-level BPE tokenizer of about 512 tokens trained on a few sentences, and a simple chat
template. Weights are random but seeded, so every run writes the same files.
Run with the vLLM build venv's python (it has torch, transformers and tokenizers):
    .cache/vllm-build-venv/bin/python tests/harness/make_tiny_model.py [OUT_DIR]
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from pathlib import Path

SEED = 1234
VOCAB_SIZE = 512
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Large language models answer questions on premises.",
    "Hello, how are you today? I am fine, thank you.",
    "GPUs serve tokens; gateways check keys and limits.",
    "Data that is restricted never leaves the site.",
    "0123456789 + - * / = ( ) [ ] { } < > : ; , . ! ?",
]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<s>", "</s>", "<unk>", "<pad>"]


def make_tokenizer(out: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def make_model(out: Path, tokenizer) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)


def main(argv: list[str]) -> int:
    out = Path(
        argv[1] if len(argv) > 1 else Path(__file__).resolve().parents[2] / ".cache/tiny-model"
    )
    start = time.monotonic()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tokenizer = make_tokenizer(tmp)
    make_model(tmp, tokenizer)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    digest = hashlib.sha256()
    for path in sorted(out.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    size = sum(path.stat().st_size for path in out.iterdir())
    print(
        f"tiny model written to {out} in {time.monotonic() - start:.1f} s:"
        f" {size // 1024} KiB, vocab {len(tokenizer)}, content sha256 {digest.hexdigest()[:16]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
