"""Builds, trains and caches the toy models that tests, benchmarks and the demo run on.

Two families (`FAMILIES`), each with a byte-level BPE tokenizer holding the family's control tokens and
batchgen's own chat template in the family's format: `nemotron-h` (`toy:nemotron-h`), Nemotron Nano v2's
shape in miniature (Mamba2, attention and MLP layers), the first-class model; and `qwen3` (`toy:qwen3`),
Qwen3's plain-attention decoder in miniature with Qwen3's template (`<think>` tags, Hermes tool calls), the
one vLLM's CPU build caches prefixes for (it does not for hybrid models). Each is trained on the CPU on
`corpus.build_corpus()` so that greedy decoding follows the reasoning format (Nemotron-H about five
minutes, Qwen3 about one). A model is cached under a fingerprint of the sources that make it, so a change
to the corpus, its template or this file builds a new one.

    python -m batchgen.toy.build [nemotron-h|qwen3]   # prints the model directories, building them if needed
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batchgen.toy import corpus

HERE = Path(__file__).parent
VOCAB_SIZE = 1024
TRAIN_STEPS = 450
BATCH_SIZE = 16
SEED = 0


@dataclass(frozen=True)
class ToyFamily:
    """One toy model family: its chat template, tokens and architecture.

    `special`: control tokens (`skip_special_tokens` drops them), the first three pad, bos/unk and eos;
    `markers`: tokens that must survive decoding (the reasoning split, tool-call parsing), added as tokens
    that are not special; `call_format`: how the family writes a tool call (`corpus`); `end`: what ends an
    assistant turn after the reply; `opener_on`/`opener_off`: how the rendered generation prompt ends with
    reasoning on and off (a check that template and corpus agree)."""

    name: str
    template: Path
    special: tuple[str, ...]
    markers: tuple[str, ...]
    call_format: Callable[[str, dict], str]
    end: str
    opener_on: str
    opener_off: str
    config: Callable[[object], object]  # tokenizer -> transformers config
    model_class: str
    reply_prefix_on: str = ""  # what the model writes itself before its reasoning


def _shared_shape(tokenizer) -> dict:
    """What both toys share: width, attention heads (head_dim 64, the size the CPU attention backend
    supports), MLP, float32 weights and the tokenizer's ids."""
    return dict(vocab_size=len(tokenizer), hidden_size=128, num_attention_heads=2, num_key_value_heads=1, head_dim=64,
                intermediate_size=384, tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, dtype="float32")


def _nemotron_h_config(tokenizer):
    from transformers import NemotronHConfig

    return NemotronHConfig(
        **_shared_shape(tokenizer),
        layers_block_type=["mamba", "attention", "mamba", "mlp", "mamba", "mlp"],
        ssm_state_size=16, mamba_num_heads=4, mamba_head_dim=64, n_groups=1, expand=2, chunk_size=64,
        max_position_embeddings=4096, use_mamba_kernels=False, architectures=["NemotronHForCausalLM"],
    )


def _qwen3_config(tokenizer):
    from transformers import Qwen3Config

    # Plain attention only (no sliding window), so vLLM's CPU build caches prefixes for it.
    return Qwen3Config(**_shared_shape(tokenizer), num_hidden_layers=3, max_position_embeddings=8192,
                       architectures=["Qwen3ForCausalLM"])


FAMILIES = {
    # Nemotron Nano v2 in miniature (Mamba2, attention and MLP layers; attention head_dim 64, the size the
    # CPU attention backend supports) with the card's control tokens.
    "nemotron-h": ToyFamily(
        "nemotron-h", HERE / "chat_template.jinja",
        ("<pad>", "<s>", "<unk>", "<SPECIAL_10>", "<SPECIAL_11>", "<SPECIAL_12>"),
        ("<think>", "</think>", "<TOOLCALL>", "</TOOLCALL>", "<AVAILABLE_TOOLS>", "</AVAILABLE_TOOLS>",
         "<TOOL_RESPONSE>", "</TOOL_RESPONSE>"),
        corpus.nemotron_call, "\n<SPECIAL_12>", "<think>\n", "<think></think>", _nemotron_h_config,
        "NemotronHForCausalLM"),
    # Qwen3 in miniature (plain attention, so prefix caching runs on vLLM's CPU build) with Qwen3's tokens.
    "qwen3": ToyFamily(
        "qwen3", HERE / "qwen3_template.jinja",
        ("<|endoftext|>", "<|im_start|>", "<unk>", "<|im_end|>"),
        ("<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"),
        corpus.hermes_call, "<|im_end|>", "<|im_start|>assistant\n", "<think>\n\n</think>\n\n", _qwen3_config,
        "Qwen3ForCausalLM", reply_prefix_on="<think>\n"),
}


def fingerprint(family: str = "nemotron-h") -> str:
    digest = hashlib.sha256()
    for source in (Path(__file__), Path(corpus.__file__), FAMILIES[family].template):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def cache_root() -> Path:
    return Path(os.environ.get("BATCHGEN_CACHE", "~/.cache/batchgen")).expanduser()


def toy_model_dir(family: str = "nemotron-h") -> Path:
    return cache_root() / f"toy-{family}-{fingerprint(family)}"


def ensure_toy_model(family: str = "nemotron-h") -> Path:
    """The directory of the toy model of `family` (a key of `FAMILIES`), built first if this version of it
    is not cached yet."""
    target = toy_model_dir(family)
    if not (target / "config.json").exists():
        build(target, FAMILIES[family])
    return target


def _train_tokenizer(texts: list[str], family: ToyFamily):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(family.markers),
        special_tokens=list(family.special),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    pad, bos, unk, *others = family.special
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, bos_token=bos, unk_token=unk, eos_token=others[-1])
    fast.add_special_tokens({"additional_special_tokens": others[:-1]})
    fast.add_tokens(list(family.markers))
    fast.chat_template = family.template.read_text()
    return fast


def _encode_examples(tokenizer, examples: list[corpus.Example], family: ToyFamily) -> list[tuple[list[int], int]]:
    """Token ids of each full conversation and where the assistant's reply starts (loss is on the reply)."""
    encoded = []
    for ex in examples:
        prompt = tokenizer.apply_chat_template(
            ex.messages, tools=ex.tools, add_generation_prompt=True, tokenize=False,
            enable_thinking=ex.thinking,  # read by the qwen3 template; the nemotron-h one reads the flags
        )
        assert prompt.endswith(family.opener_on if ex.thinking else family.opener_off), "template and corpus disagree"
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        reply = (family.reply_prefix_on if ex.thinking else "") + corpus.assistant_reply(ex, family.end)
        reply_ids = tokenizer.encode(reply, add_special_tokens=False)
        encoded.append((prompt_ids + reply_ids, len(prompt_ids)))
    return encoded


def build(target: Path, family: ToyFamily) -> Path:
    import torch
    import transformers

    started = time.monotonic()
    torch.manual_seed(SEED)
    examples = corpus.build_corpus(SEED, family.call_format)
    texts = [json.dumps(ex.tools or "") + str(ex.messages) + corpus.assistant_reply(ex, family.end) for ex in examples]
    tokenizer = _train_tokenizer(texts, family)
    encoded = _encode_examples(tokenizer, examples, family)
    model = getattr(transformers, family.model_class)(family.config(tokenizer))
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
    for name in sys.argv[1:] or FAMILIES:
        print(ensure_toy_model(name))
