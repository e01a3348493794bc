"""Tiny random models for fast tests: 2 layers, 4 heads, d_model 64, fixed seed, byte-level tokenizer.

They are real ``transformers`` models (GPT-2, BERT, Llama with grouped-query attention), so every code
path that runs on an embedded model also runs on them in milliseconds.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    BertConfig,
    GPT2Config,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

SEED = 0
N_LAYERS = 2
N_HEADS = 4
D_MODEL = 64
MAX_POSITIONS = 128
# 256 byte symbols plus the specials below.
SPECIALS = ["<pad>", "<unk>", "<bos>"]
VOCAB_SIZE = 256 + len(SPECIALS)


def tiny_config(arch: str):
    """The config of tiny model ``arch`` in {"gpt2", "bert", "llama"}."""
    common = dict(vocab_size=VOCAB_SIZE, pad_token_id=256, bos_token_id=258, eos_token_id=258)
    if arch == "gpt2":
        return GPT2Config(
            n_layer=N_LAYERS, n_head=N_HEADS, n_embd=D_MODEL, n_positions=MAX_POSITIONS, **common
        )
    if arch == "bert":
        return BertConfig(
            num_hidden_layers=N_LAYERS,
            num_attention_heads=N_HEADS,
            hidden_size=D_MODEL,
            intermediate_size=4 * D_MODEL,
            max_position_embeddings=MAX_POSITIONS,
            **common,
        )
    if arch == "llama":
        return LlamaConfig(
            num_hidden_layers=N_LAYERS,
            num_attention_heads=N_HEADS,
            num_key_value_heads=2,  # grouped-query attention, as in SmolLM2
            hidden_size=D_MODEL,
            intermediate_size=2 * D_MODEL,
            max_position_embeddings=MAX_POSITIONS,
            **common,
        )
    raise ValueError(f"Unknown tiny architecture '{arch}'; choose gpt2, bert or llama.")


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (one token per UTF-8 byte, GPT-2's printable byte alphabet), built offline."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    for special in SPECIALS:
        vocab[special] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        model_max_length=MAX_POSITIONS,
    )


def build_tiny_model(arch: str) -> torch.nn.Module:
    """Random weights from a fixed seed, without touching the global RNG state of the caller."""
    config = tiny_config(arch)
    config._attn_implementation = "eager"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        if arch == "bert":
            model = AutoModel.from_config(config, attn_implementation="eager")
        else:
            model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    return model.eval()
