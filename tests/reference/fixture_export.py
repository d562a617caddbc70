"""Oracle inputs for export/: tiny Llama-3-style, Qwen2-style and Qwen3-style models made with transformers,
with real vocabularies (llama.cpp's ggml-vocab-llama-bpe / -qwen2, through transformers' GGUF
tokenizer conversion, patched to what the original tokenizer.json files hold: Llama 3 adds BOS
and ignores merges for whole-word hits; Qwen2 normalises to NFC) and their chat templates, plus
PEFT LoRA and DoRA adapters made with peft. The checks themselves run against our exports at
test time (check_export_*.py)."""
import json
import shutil
import sys
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import (AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

import fixture_chat_templates as chats
import retort_cache  # on sys.path through fixture_chat_templates
from fixture_tokenizer import llama_vocab_dir
from oracle_util import randomize_, write_json

SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5)

# Held-out text for perplexity and a tokenization probe with digits, accents, CJK and specials.
HELD_OUT = ("The lighthouse keeper wrote every evening in a small notebook: the weather, the ships that "
            "passed, and the colour of the sea at dusk. In 1893 a storm kept him awake for three nights; "
            "he counted 47 waves an hour and noted that the lamp never failed. Years later his granddaughter "
            "found the notebook, read it aloud to her children, and they laughed at how carefully he had "
            "measured things that nobody else would ever ask about.")
PROBE = "Hello world! 12345 café naïve 東京 <|im_end|> tabs\tand  spaces\n\nnew lines 3.14159"


def save_tokenizer(gguf_name: str, folder: Path, patch) -> None:
    if gguf_name.endswith(".model"):  # a SentencePiece file as it is
        shutil.copy(gguf_name, folder / "tokenizer.model")
        return
    tokenizer = AutoTokenizer.from_pretrained(str(llama_vocab_dir()), gguf_file=gguf_name)
    tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    data = json.loads((folder / "tokenizer.json").read_text())
    patch(data)
    (folder / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))


def llama3_tokenizer(data) -> None:
    data["model"]["ignore_merges"] = True
    # transformers' GGUF conversion appends an <|endoftext|> Llama 3 does not have.
    data["added_tokens"] = [token for token in data["added_tokens"] if token["id"] < 128256]
    bos = "<|begin_of_text|>"
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {bos: {"id": bos, "ids": [128000], "tokens": [bos]}}}


def qwen2_tokenizer(data) -> None:
    data["normalizer"] = {"type": "NFC"}


def sharpen_(model, factor: float) -> None:
    """Scales the output projection so next-token choices have clear margins: greedy runs then
    agree across float32, F16 and llama.cpp's kernels instead of flipping on near-ties."""
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(factor)


def build(out: Path, name: str, cls, config, vocab_gguf: str, patch, template: str, tokens: dict, seed: int,
          sharpen: float):
    folder = out / name
    folder.mkdir()
    torch.manual_seed(seed)
    model = cls(config).float().eval()
    randomize_(model, seed)
    sharpen_(model, sharpen)
    model.save_pretrained(folder, safe_serialization=True)
    save_tokenizer(vocab_gguf, folder, patch)
    write_json(folder / "tokenizer_config.json", dict(tokens, chat_template=template,
                                                       tokenizer_class="PreTrainedTokenizerFast"))
    return model


def adapter(out: Path, base, name: str, use_dora: bool, seed: int) -> None:
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                            "up_proj", "down_proj"],
                        use_dora=use_dora, use_rslora=not use_dora, task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, param in model.named_parameters():
            if "lora_" in key:
                param.copy_(0.3 * torch.randn(param.shape, generator=generator))
    model.save_pretrained(out / name)
    model.unload()


def main():
    out = Path(sys.argv[1])
    templates, files, _, _ = chats.template_table()
    by_id = {entry[0]: entry[1] for entry in templates}
    llama = build(out, "llama3", LlamaForCausalLM,
                  LlamaConfig(**SMALL, vocab_size=128256, bos_token_id=128000, eos_token_id=[128001, 128009],
                              rope_theta=500000.0,
                              rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
                  "ggml-vocab-llama-bpe.gguf", llama3_tokenizer, by_id["llama3.1"],
                  {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}, seed=11, sharpen=2.0)
    build(out, "qwen2", Qwen2ForCausalLM,
          Qwen2Config(**dict(SMALL, num_key_value_heads=1), vocab_size=151936, tie_word_embeddings=True,
                      eos_token_id=151645, pad_token_id=151643),
          "ggml-vocab-qwen2.gguf", qwen2_tokenizer, by_id["qwen2.5"],
          {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, seed=12,
          sharpen=0.25)  # tied: the N(0, 1) embedding is the output projection, already sharp
    # Qwen3: q/k norms, a head_dim apart from hidden/heads, an untied head.
    build(out, "qwen3", Qwen3ForCausalLM,
          Qwen3Config(**SMALL, head_dim=24, vocab_size=151936, tie_word_embeddings=False, rope_theta=1000000.0,
                      eos_token_id=151645, pad_token_id=151643),
          "ggml-vocab-qwen2.gguf", qwen2_tokenizer, by_id["qwen2.5"],
          {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, seed=16, sharpen=2.0)
    # Gemma 3 (local then global layer, tied) on the same vocabulary and template: the exports and
    # the distillation tests need a tokenizer, not Gemma's own. query_pre_attn_scalar = head_dim, the
    # value llama.cpp derives (the model parity fixtures cover other values).
    gemma3 = build(out, "gemma3", Gemma3ForCausalLM,
          Gemma3TextConfig(**SMALL, head_dim=16, query_pre_attn_scalar=16, vocab_size=151936, sliding_window=4,
                           layer_types=["sliding_attention", "full_attention"], bos_token_id=None,
                           eos_token_id=151645, pad_token_id=151643),
          "ggml-vocab-qwen2.gguf", qwen2_tokenizer, by_id["qwen2.5"],
          {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, seed=17, sharpen=0.25)
    # Llama 2 / Mistral v0.1 style: a SentencePiece tokenizer.model and no tokenizer.json.
    spm_model = retort_cache.mistral_spm("mistral-v1")
    build(out, "llama2", LlamaForCausalLM,
          LlamaConfig(**SMALL, vocab_size=32000, bos_token_id=1, eos_token_id=2, rope_theta=10000.0),
          str(spm_model), None, by_id["mistral-v1"],
          {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "legacy": True, "add_bos_token": True}, seed=15, sharpen=2.0)
    (out / "llama2" / "tokenizer_config.json").write_text(
        (out / "llama2" / "tokenizer_config.json").read_text().replace("PreTrainedTokenizerFast", "LlamaTokenizer"))
    adapter(out, llama, "llama3-lora", use_dora=False, seed=13)
    adapter(out, gemma3, "gemma3-lora", use_dora=False, seed=18)
    llama = LlamaForCausalLM.from_pretrained(out / "llama3").eval()
    adapter(out, llama, "llama3-dora", use_dora=True, seed=14)
    write_json(out / "texts.json", {"held_out": HELD_OUT, "probe": PROBE,
                                    "messages": [{"role": "system", "content": "You answer briefly."},
                                                 {"role": "user", "content": "Where is the lighthouse?"}]})


if __name__ == "__main__":
    main()
