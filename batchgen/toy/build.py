"""Builds, trains and caches the toy `NemotronHForCausalLM` that tests and the demo run on.

It has Nemotron Nano v2's shape in miniature (Mamba2, attention and MLP layers; attention head_dim 64, the
size the CPU attention backend supports), a byte-level BPE tokenizer with the card's control tokens, and
batchgen's own chat template. It is trained on the CPU in about a minute on `corpus.build_corpus()` so that
greedy decoding follows the reasoning format. The result is cached under a fingerprint of the sources that
make it, so a change to the corpus, template or this file builds a new one.

    python -m batchgen.toy.build            # prints the model directory, building it if needed
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from batchgen.toy import corpus

HERE = Path(__file__).parent
TEMPLATE = HERE / "chat_template.jinja"
SPECIAL_TOKENS = ["<pad>", "<s>", "<unk>", "<SPECIAL_10>", "<SPECIAL_11>", "<SPECIAL_12>"]
# Markers that must survive decoding (reasoning split, tool-call parsing), so they are added tokens that
# are not "special": `skip_special_tokens` drops only the control tokens above.
MARKER_TOKENS = [
    "<think>", "</think>", "<TOOLCALL>", "</TOOLCALL>", "<AVAILABLE_TOOLS>", "</AVAILABLE_TOOLS>",
    "<TOOL_RESPONSE>", "</TOOL_RESPONSE>",
]
VOCAB_SIZE = 1024
TRAIN_STEPS = 450
BATCH_SIZE = 16
SEED = 0


def fingerprint() -> str:
    digest = hashlib.sha256()
    for source in (Path(__file__), Path(corpus.__file__), TEMPLATE):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def cache_root() -> Path:
    return Path(os.environ.get("BATCHGEN_CACHE", "~/.cache/batchgen")).expanduser()


def toy_model_dir() -> Path:
    return cache_root() / f"toy-nemotron-h-{fingerprint()}"


def ensure_toy_model() -> Path:
    """The toy model's directory, built first if this version of it is not cached yet."""
    target = toy_model_dir()
    if not (target / "config.json").exists():
        build(target)
    return target


def _train_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(MARKER_TOKENS),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", unk_token="<unk>", eos_token="<SPECIAL_12>",
    )
    fast.add_special_tokens({"additional_special_tokens": ["<SPECIAL_10>", "<SPECIAL_11>"]})
    fast.add_tokens(MARKER_TOKENS)
    fast.chat_template = TEMPLATE.read_text()
    return fast


def _encode_examples(tokenizer, examples: list[corpus.Example]) -> list[tuple[list[int], int]]:
    """Token ids of each full conversation and where the assistant's reply starts (loss is on the reply)."""
    encoded = []
    for ex in examples:
        prompt = tokenizer.apply_chat_template(
            ex.messages, tools=ex.tools, add_generation_prompt=True, tokenize=False
        )
        assert prompt.endswith("<think>\n" if ex.thinking else "<think></think>"), "template and corpus disagree"
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        reply_ids = tokenizer.encode(corpus.assistant_reply(ex), add_special_tokens=False)
        encoded.append((prompt_ids + reply_ids, len(prompt_ids)))
    return encoded


def _model_config(tokenizer):
    from transformers import NemotronHConfig

    return NemotronHConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        layers_block_type=["mamba", "attention", "mamba", "mlp", "mamba", "mlp"],
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        intermediate_size=384,
        ssm_state_size=16,
        mamba_num_heads=4,
        mamba_head_dim=64,
        n_groups=1,
        expand=2,
        chunk_size=64,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        use_mamba_kernels=False,
        dtype="float32",
        architectures=["NemotronHForCausalLM"],
    )


def build(target: Path) -> Path:
    import torch
    from transformers import NemotronHForCausalLM

    started = time.monotonic()
    torch.manual_seed(SEED)
    examples = corpus.build_corpus(SEED)
    texts = [json.dumps(ex.tools or "") + str(ex.messages) + corpus.assistant_reply(ex) for ex in examples]
    tokenizer = _train_tokenizer(texts)
    encoded = _encode_examples(tokenizer, examples)
    model = NemotronHForCausalLM(_model_config(tokenizer))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=TRAIN_STEPS, pct_start=0.1)
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for step in range(TRAIN_STEPS):
        batch = [encoded[i] for i in torch.randint(len(encoded), (BATCH_SIZE,), generator=generator).tolist()]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        for row, (ids, reply_start) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, reply_start : len(ids)] = torch.tensor(ids[reply_start:])
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        if step % 50 == 0 or step == TRAIN_STEPS - 1:
            print(f"toy model: step {step} loss {loss.item():.4f}", file=sys.stderr, flush=True)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    # Written last: a directory is a built model only once it is complete (config.json marks it).
    staging.rename(target) if not target.exists() else None
    print(f"toy model: built {target} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return target


if __name__ == "__main__":
    print(ensure_toy_model())
