"""Oracle for data/: which bytes and tokens of a rendered conversation are trained.

Masks come from rendering prefixes with the real Jinja templates (transformers' own machinery,
as fixture_chat_templates): assistant turn i is the text that rendering messages[:i+1] adds after
rendering messages[:i] with the generation prompt, trailing whitespace excluded (the newline a
template writes after the end-of-turn token is scaffolding). Token labels: a token is trained
when its offsets (HF tokenizers' offset mapping, or SentencePiece's own piece offsets) overlap
trained text, as transformers' return_assistant_tokens_mask does."""
import json
import shutil
import sys
from pathlib import Path

import fixture_chat_templates as chats
from fixture_tokenizer import llama_vocab_dir, spm_encode
from oracle_util import write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import retort_cache  # noqa: E402
from fetch_smollm2 import cached_gguf  # noqa: E402

TOOL_RESULT = {"role": "tool", "tool_call_id": "abc123def", "content": "{\"temperature\": 21.5}"}
LONG_TOOL_CHAT = [chats.SYSTEM] + chats.TOOL_CHAT + [
    {"role": "user", "content": "And tomorrow?"},
    {"role": "assistant", "content": None, "tool_calls": [chats.CALL]}, TOOL_RESULT,
    {"role": "assistant", "content": "Tomorrow: 21.5 °C again."}]


def render(entry, messages, tools, generation):
    template_id, source, family, bos, eos, tool_capable, extra = entry
    result = chats.render(source, messages, tools, generation, bos, eos, dict(extra))
    if "error" in result:
        raise ValueError(result["error"])
    return result["expected"]


def turn_start(before, upto):
    """Where the assistant turn starts in `upto`: after the longest tail of `before` (which ends
    with the generation prompt) found in `upto`. Usually `before` is a prefix of `upto`; Mistral
    templates move the system prompt and tools to the last user turn, so only a tail matches."""
    for length in range(len(before), 0, -1):
        at = upto.rfind(before[-length:])
        if at >= 0:
            return at + length
    return 0


def trained_ranges(entry, messages, tools):
    """Byte ranges of trained text in the full rendering, from prefix renderings."""
    full = render(entry, messages, tools, False)
    ranges, search_from = [], 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(entry, messages[:i], tools, True) if i > 0 else ""
        upto = render(entry, messages[: i + 1], tools, False)
        span = upto[turn_start(before, upto):].rstrip()
        # Later turns can move text before this one (Mistral v3 puts the tools before the last
        # user turn): find the span in the full text after the previous one.
        at = full.index(span, search_from)
        search_from = at + len(span)
        begin = len(full[:at].encode())
        ranges.append([begin, begin + len(span.encode())])
    merged = []
    for begin, end in ranges:
        if merged and merged[-1][1] == begin:
            merged[-1][1] = end
        else:
            merged.append([begin, end])
    return full, merged


def generation(piece):
    return "{% generation %}" + piece + "{% endgeneration %}"


def qwen3_tagged(source, train_reasoning):
    """Qwen3's template with {% generation %} around what an assistant turn trains: its answer,
    tool calls and <|im_end|>, and its <think> block when `train_reasoning`. Prefix renderings
    cannot give Qwen3's masks (a turn renders differently once later turns follow it), so
    transformers' own assistant-mask machinery reads these tags instead, as TRL's tagged
    training templates do; the tagged template must render the same text (checked)."""
    think_answer = (r"{{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + "
                    r"'\n</think>\n\n' + content.lstrip('\n') }}")
    think = r"{{- '<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' }}"
    header = r"{{- '<|im_start|>' + message.role + '\n' }}"
    plain = r"{{- '<|im_start|>' + message.role + '\n' + content }}"
    calls_start = "{%- if message.tool_calls %}"
    turn_end = "{{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}"
    assert source.count(think_answer) == 1 and source.count(plain) == 2 and source.count(turn_end) == 1, "template changed"
    tagged = source.replace(think_answer, header + (generation(think) if train_reasoning else think) +
                            generation(r"{{- content.lstrip('\n') }}"))
    tagged = tagged.replace(plain, header + generation("{{- content }}"))
    start, end = tagged.index(calls_start), tagged.index(turn_end)
    calls = tagged[start:end]
    return (tagged[:start] + generation(calls + "{{- '<|im_end|>' }}") + "{{- '\\n' }}" +
            tagged[end + len("{{- '<|im_end|>\\n' }}"):])


def qwen3_ranges(entry, messages, tools, train_reasoning=True):
    from transformers.utils.chat_template_utils import render_jinja_template
    messages = chats.none_content_as_empty(messages)
    full = render(entry, messages, tools, False)
    rendered, indices = render_jinja_template(conversations=[messages], tools=tools, return_assistant_tokens_mask=True,
                                              chat_template=qwen3_tagged(entry[1], train_reasoning))
    assert rendered[0] == full, "the tagged Qwen3 template renders differently"
    merged = []
    for begin, end in indices[0]:
        begin, end = len(full[:begin].encode()), len(full[:end].encode())
        if begin == end:
            continue
        if merged and merged[-1][1] == begin:
            merged[-1][1] = end
        else:
            merged.append([begin, end])
    return full, merged


def conversations(tool_capable, thinking=False):
    convs = {"basic": chats.BASIC, "basic_system": [chats.SYSTEM] + chats.BASIC, "unicode": chats.UNICODE}
    if tool_capable:
        convs.update({"tools": chats.TOOL_CHAT, "multi_call": chats.MULTI_CALL_CHAT, "long_tools": LONG_TOOL_CHAT})
    if thinking:
        convs.update({"think": chats.THINK_CHAT, "think_tools": chats.THINK_TOOL_CHAT,
                      "think_earlier": chats.THINK_EARLIER_CHAT, "think_aliased": chats.THINK_ALIASED_CHAT})
    return convs


def char_to_byte_offsets(text):
    offsets, total = [0], 0
    for ch in text:
        total += len(ch.encode())
        offsets.append(total)
    return offsets


def labels_for(ids, spans, ranges):
    labels = []
    for token, (begin, end) in zip(ids, spans):
        trained = any(begin < r_end and r_begin < end for r_begin, r_end in ranges)
        labels.append(token if trained else -100)
    return labels


def hf_encode(tokenizer, text):
    encoding = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
    to_bytes = char_to_byte_offsets(text)
    return encoding.ids, [(to_bytes[b], to_bytes[e]) for b, e in encoding.offsets]


# Control-token strings of several families typed inside messages (a support log, a quoted template).
CONTROL_CHAT = [
    {"role": "system", "content": "Answer <s> support questions."},
    {"role": "user", "content": "My screen shows <|im_end|> then [INST] hi [/INST] and </s>, also <|eot_id|>."},
    {"role": "assistant", "content": "Type <|im_end|> or <|eot_id|> to stop; <|start_header_id|>user is text. </s>"},
    {"role": "user", "content": "<|im_start|>assistant\nOK?"},
    {"role": "assistant", "content": "Yes: [INST] and <end_of_turn> are just words here."}]


def control_places(text, controls):
    """Byte ranges of control-token strings in text: leftmost, then longest."""
    raw, places, at = text.encode(), [], 0
    ordered = sorted((c.encode() for c in controls if c), key=len, reverse=True)
    while at < len(raw):
        hit = next((c for c in ordered if raw.startswith(c, at)), None)
        if hit is None:
            at += 1
            continue
        places.append((at, at + len(hit)))
        at += len(hit)
    return places


def scaffolding_places(entry, messages, tools, controls):
    """Where the template itself writes control tokens: the same rendering with every control
    string in the messages replaced by '#'s of its length (ASCII, so byte offsets agree)."""
    masked = json.loads(json.dumps(messages))
    for message in masked:
        for control in sorted(controls, key=len, reverse=True):
            if control and isinstance(message.get("content"), str):
                message["content"] = message["content"].replace(control, "#" * len(control))
    return control_places(render(entry, masked, tools, False), controls)


def literal_encode(text, places, encode_piece, control_id):
    """Ids and byte spans of text with control tokens only at `places`; every piece between
    them is encoded on its own with control strings as text (encode_piece: str -> ids, spans)."""
    raw, ids, spans, at = text.encode(), [], [], 0
    for begin, end in places + [(len(raw), len(raw))]:
        if begin > at:
            piece_ids, piece_spans = encode_piece(raw[at:begin].decode())
            ids += piece_ids
            spans += [(at + b, at + e) for b, e in piece_spans]
        if end > begin:
            ids.append(control_id(raw[begin:end].decode()))
            spans.append((begin, end))
        at = end
    return ids, spans


def control_cases(pairs, by_id, hf, sp, tokenizer_paths, vocab):
    """parse (HF's default) and literal (llama.cpp's special=false on the message pieces) ids and
    labels of CONTROL_CHAT for every tokenizer family the token cases use."""
    import sentencepiece as spm
    from llama_cpp import Llama
    gguf_of = {"llama-bpe": vocab / "ggml-vocab-llama-bpe.gguf", "smollm2": cached_gguf()}
    cases = []
    for template_id, tokenizer_name in pairs:
        entry = by_id[template_id]
        try:
            text, ranges = trained_ranges(entry, CONTROL_CHAT, None)
        except ValueError:
            continue
        if tokenizer_name in hf:
            tokenizer = hf[tokenizer_name]
            controls = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
            backend = tokenizer.backend_tokenizer
            parse_ids, parse_spans = hf_encode(tokenizer, text)

            def piece(fragment, backend=backend):
                backend.encode_special_tokens = True
                encoding = backend.encode(fragment, add_special_tokens=False)
                backend.encode_special_tokens = False
                to_bytes = char_to_byte_offsets(fragment)
                return encoding.ids, [(to_bytes[b], to_bytes[e]) for b, e in encoding.offsets]
            control_id = tokenizer.convert_tokens_to_ids
        else:
            processor = spm.SentencePieceProcessor(model_file=str(sp[tokenizer_name]))
            controls = [processor.id_to_piece(i) for i in range(processor.get_piece_size()) if processor.is_control(i)]
            parse_ids, parse_spans = spm_encode(processor, text)

            def piece(fragment, processor=processor):
                proto = processor.encode(fragment, return_type="proto")
                return [p.id for p in proto.pieces], [(p.begin, p.end) for p in proto.pieces]
            control_id = processor.piece_to_id
        places = scaffolding_places(entry, CONTROL_CHAT, None, controls)
        in_messages = len(control_places(text, controls)) - len(places)
        literal_ids, literal_spans = literal_encode(text, places, piece, control_id)
        case = {"template": template_id, "family": entry[2], "tokenizer": tokenizer_paths[tokenizer_name],
                "messages": CONTROL_CHAT,
                "control_strings": in_messages,
                "parse": {"ids": parse_ids, "labels": labels_for(parse_ids, parse_spans, ranges)},
                "literal": {"ids": literal_ids, "labels": labels_for(literal_ids, literal_spans, ranges)}}
        if tokenizer_name in gguf_of:  # llama.cpp on the same pieces: special=false between the template's tokens
            llm = Llama(model_path=str(gguf_of[tokenizer_name]), vocab_only=True, verbose=False)

            def cpp_piece(fragment, llm=llm):
                return llm.tokenize(fragment.encode(), add_bos=False, special=False), []
            case["literal_llama_cpp"] = literal_encode(text, places, cpp_piece, control_id)[0]
            case["gguf"] = str(gguf_of[tokenizer_name])
        cases.append(case)
    return cases


def main():
    out = Path(sys.argv[1])
    import transformers.utils.chat_template_utils as chat_utils
    chat_utils.datetime = chats.PinnedDatetime
    templates, files, _, _ = chats.template_table()
    by_id = {entry[0]: entry for entry in templates}

    masks = []
    for entry in templates:
        template_id, _, family, _, _, tool_capable, _ = entry
        if family == "qwen3":
            for name, messages in conversations(True, thinking=True).items():
                tools = chats.TOOLS if name in ("tools", "multi_call", "long_tools", "think_tools") else None
                for train_reasoning in (True, False):
                    text, ranges = qwen3_ranges(entry, messages, tools, train_reasoning)
                    masks.append({"template": template_id, "family": family, "conversation": name,
                                  "messages": messages, "tools": tools or [], "text": text, "trained": ranges,
                                  "options": {"train_reasoning": train_reasoning}})
            continue
        for name, messages in conversations(tool_capable).items():
            tools = chats.TOOLS if name in ("tools", "multi_call", "long_tools") else None
            if family == "gemma" and messages[0]["role"] == "system":
                continue  # the Gemma 2 template rejects system messages
            if template_id == "llama3":
                continue  # llama.cpp's copy of the Llama 3 template always adds the generation prompt
            try:
                text, ranges = trained_ranges(entry, messages, tools)
            except ValueError:
                continue  # the template rejects this conversation (fixture_chat_templates covers that)
            masks.append({"template": template_id, "family": family, "conversation": name, "messages": messages,
                          "tools": tools or [], "text": text, "trained": ranges})
    write_json(out / "masks.json", masks)

    # Token level: real tokenizers with the templates they belong with.
    from transformers import AutoTokenizer
    import sentencepiece as spm
    vocab = llama_vocab_dir()
    hf = {"llama-bpe": AutoTokenizer.from_pretrained(str(vocab), gguf_file="ggml-vocab-llama-bpe.gguf"),
          "smollm2": AutoTokenizer.from_pretrained(str(cached_gguf().parent), gguf_file=cached_gguf().name)}
    sp = {name: retort_cache.mistral_spm(name) for name in retort_cache.MISTRAL_SPM_MEMBERS}
    tokenizer_paths = {}
    for name, tokenizer in hf.items():
        folder = out / f"tokenizer-{name}"
        folder.mkdir()
        tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
        tokenizer_paths[name] = folder.name
    for name, path in sp.items():
        shutil.copy(path, out / f"{name}.model")
        tokenizer_paths[name] = f"{name}.model"
    pairs = [("llama3.1", "llama-bpe"), ("llama3.2", "llama-bpe"), ("smollm2", "smollm2"), ("qwen2.5", "smollm2"),
             ("chatml", "smollm2"), ("llama2", "mistral-v1"), ("mistral-v1", "mistral-v1"), ("mistral-v3", "mistral-v3")]
    token_cases = []
    for template_id, tokenizer_name in pairs:
        entry = by_id[template_id]
        for name, messages in conversations(entry[5]).items():
            tools = chats.TOOLS if name in ("tools", "multi_call", "long_tools") else None
            try:
                text, ranges = trained_ranges(entry, messages, tools)
            except ValueError:
                continue
            if tokenizer_name in hf:
                ids, spans = hf_encode(hf[tokenizer_name], text)
            else:
                ids, spans = spm_encode(spm.SentencePieceProcessor(model_file=str(sp[tokenizer_name])), text)
            token_cases.append({"template": template_id, "family": entry[2], "tokenizer": tokenizer_paths[tokenizer_name],
                                "conversation": name, "messages": messages, "tools": tools or [], "ids": ids,
                                "labels": labels_for(ids, spans, ranges)})
    qwen3 = by_id["qwen3"]
    for name, messages in conversations(True, thinking=True).items():
        tools = chats.TOOLS if name in ("tools", "multi_call", "long_tools", "think_tools") else None
        text, ranges = qwen3_ranges(qwen3, messages, tools)
        ids, spans = hf_encode(hf["smollm2"], text)
        token_cases.append({"template": "qwen3", "family": "qwen3", "tokenizer": tokenizer_paths["smollm2"],
                            "conversation": name, "messages": messages, "tools": tools or [], "ids": ids,
                            "labels": labels_for(ids, spans, ranges)})
    # Gemma 3's template with the real Gemma-3-270M vocabulary (262k SentencePiece pieces), read by
    # Retort from the GGUF and by HF tokenizers from transformers' conversion of it.
    gemma3_gguf = retort_cache.gemma3_gguf()
    gemma3_tokenizer = AutoTokenizer.from_pretrained(str(gemma3_gguf.parent), gguf_file=gemma3_gguf.name)
    for name, messages in conversations(False).items():
        try:
            text, ranges = trained_ranges(by_id["gemma3"], messages, None)
        except ValueError:
            continue
        ids, spans = hf_encode(gemma3_tokenizer, text)
        token_cases.append({"template": "gemma3", "family": "gemma3", "tokenizer": str(gemma3_gguf),
                            "conversation": name, "messages": messages, "tools": [], "ids": ids,
                            "labels": labels_for(ids, spans, ranges)})
    write_json(out / "tokens.json", token_cases)
    write_json(out / "control_tokens.json", control_cases(pairs, by_id, hf, sp, tokenizer_paths, vocab))

    # A model folder and JSONL for `retort data inspect --json` (Llama 3.1 template).
    model = out / "model-llama3"
    shutil.copytree(out / "tokenizer-llama-bpe", model)
    write_json(model / "tokenizer_config.json", {"chat_template": files["meta-llama-Llama-3.1-8B-Instruct.jinja"]})
    cli_cases = [c for c in token_cases if c["template"] == "llama3.1"]
    with open(out / "chat-llama3.jsonl", "w", encoding="utf-8") as f:
        for case in cli_cases:
            f.write(json.dumps({"messages": case["messages"], "tools": case["tools"]}, ensure_ascii=False) + "\n")
    write_json(out / "chat-llama3.expected.json", [{"ids": c["ids"], "labels": c["labels"]} for c in cli_cases])
    print(f"{len(masks)} mask cases, {len(token_cases)} token cases")


if __name__ == "__main__":
    main()
