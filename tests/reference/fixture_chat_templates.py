"""Oracle for tokenizer/chat_template.*: real chat templates (llama.cpp's models/templates/*.jinja
and tests/test-chat-template.cpp from the llama-cpp-python sdist, cached in ~/.cache/retort;
SmolLM2's GGUF) rendered with transformers' own Jinja machinery (render_jinja_template:
trim_blocks, lstrip_blocks, raise_exception, tojson, strftime_now pinned to 07 Mar 2025).
A conversation a template rejects is recorded with its error. Gemma's system-prompt folding,
which the Gemma 2 template rejects, is taken from llama.cpp's built-in renderer instead."""
import copy
import ctypes
import datetime as real_datetime
import json
import sys
from pathlib import Path

from oracle_util import write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from retort_cache import (TEMPLATE_FILES, gemma3_chat_template, llama_cpp_templates,  # noqa: E402
                          smollm2_gguf as cached_gguf)
# Entries of test-chat-template.cpp, by the start of their .name.
CPP_TEMPLATES = {"mistral_v1": "mistralai/Mistral-7B-Instruct-v0.2 (mistralai 'v1' template",
                 "mistral_v3": "Mistral-Large-Instruct-2407 (mistralai 'v3' template",
                 "llama3": "Llama-3", "chatml": "teknium/OpenHermes-2.5-Mistral-7B",
                 "llama2_vigogne": "bofenghuang/vigogne-2-70b-chat", "gemma_7b": "google/gemma-7b-it"}
# The official meta-llama/Llama-2-7b-chat-hf tokenizer_config.json chat_template (the sdist has
# only variants of it); checked character for character against public copies of the
# meta-llama/Llama-2-13b-chat-hf template, which is the same.
LLAMA2_TEMPLATE = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
PINNED_DATE = "07 Mar 2025"


def sdist_members() -> dict:
    """The template files and test-chat-template.cpp, extracted once into the cache."""
    folder = llama_cpp_templates()
    return {path.name: path.read_text(encoding="utf-8") for path in folder.iterdir() if not path.name.startswith(".")}


def cpp_template(cpp_source: str, name_prefix: str) -> str:
    start = cpp_source.index(f'/* .name= */ "{name_prefix}')
    line = cpp_source[start:].split("\n")[1].strip()
    assert line.startswith("/* .template_str= */"), line
    return json.loads(line[len("/* .template_str= */"):].strip().rstrip(","))


def smollm2_template() -> str:
    from gguf import GGUFReader
    path = cached_gguf()
    field = GGUFReader(str(path)).fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8"), str(path)


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. Zürich"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "description": "Current time", "parameters": {
        "type": "object", "properties": {"zone": {"type": "string"}, "precision": {"type": "integer", "default": 1},
                                          "ratio": {"type": "number", "default": 0.5}}}}}]
SYSTEM = {"role": "system", "content": "  You are a concise assistant.\n"}
BASIC = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"},
         {"role": "user", "content": "Who are you"}, {"role": "assistant", "content": "   I am an assistant   "},
         {"role": "user", "content": "Another question"}]
UNICODE = [{"role": "user", "content": "\u3000Grüße aus Zürich — 世界 🌍 \"quotes\" \\ back\tslash\n"},
           {"role": "assistant", "content": "Ça va ! Привет, 你好 ✓\u00a0"}]
CALL = {"type": "function", "id": "abc123def",
        "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}
CALL2 = {"type": "function", "id": "xyz987uvw", "function": {"name": "get_time", "arguments": {"zone": "CET"}}}
TOOL_CHAT = [{"role": "user", "content": "What's the weather in Zürich?"},
             {"role": "assistant", "content": None, "tool_calls": [CALL]},
             {"role": "tool", "tool_call_id": "abc123def", "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"},
             {"role": "assistant", "content": "It is 21.5 °C and clear in Zürich."}]
MULTI_CALL_CHAT = [{"role": "user", "content": "Weather and time in Zürich?"},
                   {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL, CALL2]},
                   {"role": "tool", "tool_call_id": "abc123def", "content": "sunny"},
                   {"role": "tool", "tool_call_id": "xyz987uvw", "content": "14:02"},
                   {"role": "assistant", "content": "Sunny, and it is 14:02."},
                   {"role": "user", "content": "Thanks!"}]


# Qwen3 reasoning: as reasoning_content, inside the content, across a multi-step tool call (all
# after the last real query keep their <think> blocks), and in an earlier turn (dropped).
THINK_CHAT = [{"role": "user", "content": "What is 17 * 3?"},
              {"role": "assistant", "reasoning_content": "\n17 * 3 = 51.\n", "content": "\n\n51"},
              {"role": "user", "content": "And plus 9?"},
              {"role": "assistant", "content": "<think>\n51 + 9 = 60\n</think>\n\n60"}]
THINK_TOOL_CHAT = [SYSTEM, {"role": "user", "content": "Weather in Zürich?"},
                   {"role": "assistant", "reasoning_content": "I should call the tool.", "content": "",
                    "tool_calls": [CALL]},
                   {"role": "tool", "tool_call_id": "abc123def", "content": "sunny"},
                   {"role": "assistant", "content": "<think>It says sunny.</think>Sunny in Zürich."}]
THINK_EARLIER_CHAT = THINK_CHAT[:2] + [{"role": "user", "content": "Thanks"},
                                       {"role": "assistant", "content": "You're welcome."}]
# Reasoning under the other names transformers reads as reasoning_content.
THINK_ALIASED_CHAT = [THINK_CHAT[0], {"role": "assistant", "reasoning": "17 * 3 = 51.", "content": "51"},
                      THINK_CHAT[2], {"role": "assistant", "thinking": "51 + 9 = 60", "content": "60"}]


def none_content_as_empty(messages):
    """Qwen3's template fails on content null (`'</think>' in None`); Retort renders null as "",
    so the oracle renders the chat with "" there (OpenAI-style tool-call turns carry null)."""
    return [dict(m, content="") if "content" in m and m["content"] is None else m for m in messages]


def with_string_arguments(messages):
    """The same chat with tool-call arguments as JSON strings (what OpenAI-style APIs send)."""
    result = copy.deepcopy(messages)
    for message in result:
        for call in message.get("tool_calls") or []:
            call["function"]["arguments"] = json.dumps(call["function"]["arguments"], ensure_ascii=False)
    return result


def conversations(tool_capable: bool, thinking: bool = False, empty_system: bool = False):
    convs = {"basic": BASIC, "basic_system": [SYSTEM] + BASIC, "unicode": UNICODE,
             "unicode_system": [SYSTEM] + UNICODE, "single_user": BASIC[:1], "system_only_user": [SYSTEM] + BASIC[:1],
             "bad_alternation": [BASIC[0], BASIC[0]]}
    if empty_system:  # Gemma 3 writes the system prompt as given, even an empty one
        convs["empty_system"] = [{"role": "system", "content": ""}] + BASIC
    if tool_capable:
        convs.update({"tools": TOOL_CHAT, "tools_system": [SYSTEM] + TOOL_CHAT, "multi_call": MULTI_CALL_CHAT})
    if thinking:
        convs.update({"think": THINK_CHAT, "think_tools": THINK_TOOL_CHAT, "think_earlier": THINK_EARLIER_CHAT,
                      "think_aliased": THINK_ALIASED_CHAT})
    return convs


def render(template, messages, tools, add_generation_prompt, bos, eos, extra):
    from transformers.utils.chat_template_utils import render_jinja_template
    from jinja2.exceptions import TemplateError
    try:
        rendered, _ = render_jinja_template(conversations=[messages], tools=tools, chat_template=template,
                                            add_generation_prompt=add_generation_prompt, bos_token=bos,
                                            eos_token=eos, **extra)
        return {"expected": rendered[0]}
    except TemplateError as error:
        return {"error": str(error)}


def llama_cpp_gemma(messages, add_generation_prompt):
    """llama.cpp's built-in Gemma rendering (it folds the system prompt into the first user turn)."""
    import llama_cpp
    chat = (llama_cpp.llama_chat_message * len(messages))(
        *[llama_cpp.llama_chat_message(role=m["role"].encode(), content=m["content"].encode()) for m in messages])
    buffer = ctypes.create_string_buffer(1 << 16)
    n = llama_cpp.llama_chat_apply_template(b"gemma", chat, len(messages), add_generation_prompt, buffer, len(buffer))
    assert 0 < n < len(buffer)
    return "<bos>" + buffer.raw[:n].decode("utf-8")


class PinnedDatetime(real_datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2025, 3, 7, 12, 0, 0)


def template_table():
    """(template id, source, family name Retort must recognise, bos, eos, tool_capable, extra kwargs)"""
    files = sdist_members()
    cpp = files["test-chat-template.cpp"]
    smollm2, smollm2_gguf = smollm2_template()
    templates = [
        ("llama3.1", files["meta-llama-Llama-3.1-8B-Instruct.jinja"], "llama3.1", "<|begin_of_text|>", "<|eot_id|>", True, {}),
        ("llama3.3", files["meta-llama-Llama-3.3-70B-Instruct.jinja"], "llama3.1", "<|begin_of_text|>", "<|eot_id|>", True, {}),
        ("llama3.2", files["meta-llama-Llama-3.2-3B-Instruct.jinja"], "llama3.2", "<|begin_of_text|>", "<|eot_id|>", True, {}),
        ("llama3", cpp_template(cpp, CPP_TEMPLATES["llama3"]), "llama3", "<|begin_of_text|>", "<|eot_id|>", False, {}),
        ("qwen2.5", files["Qwen-Qwen2.5-7B-Instruct.jinja"], "qwen2.5", "", "<|im_end|>", True, {}),
        ("qwen3", files["Qwen-Qwen3-0.6B.jinja"], "qwen3", "", "<|im_end|>", True, {}),
        ("smollm2", smollm2, "smollm2", "", "<|im_end|>", False, {}),
        ("chatml", cpp_template(cpp, CPP_TEMPLATES["chatml"]), "chatml", "", "<|im_end|>", False, {}),
        ("mistral-nemo", files["mistralai-Mistral-Nemo-Instruct-2407.jinja"], "mistral-v3-tekken", "<s>", "</s>", True, {}),
        ("mistral-v3", cpp_template(cpp, CPP_TEMPLATES["mistral_v3"]), "mistral-v3", "<s>", "</s>", True, {}),
        ("mistral-v1", cpp_template(cpp, CPP_TEMPLATES["mistral_v1"]), "mistral-v1", "<s>", "</s>", False, {}),
        ("llama2", LLAMA2_TEMPLATE, "llama2", "<s>", "</s>", False, {}),
        ("gemma2", files["google-gemma-2-2b-it.jinja"], "gemma", "<bos>", "<eos>", False, {}),
        ("gemma3", gemma3_chat_template().read_text(encoding="utf-8"), "gemma3", "<bos>", "<eos>", False, {}),
    ]
    return templates, files, cpp, smollm2_gguf


def main():
    out = Path(sys.argv[1])
    import transformers.utils.chat_template_utils as chat_utils
    chat_utils.datetime = PinnedDatetime  # strftime_now() reads the module's datetime

    templates, files, cpp, smollm2_gguf = template_table()
    smollm2 = next(entry[1] for entry in templates if entry[0] == "smollm2")
    cases, recognition = [], []
    for template_id, source, family, bos, eos, tool_capable, extra in templates:
        recognition.append({"id": template_id, "source": source, "family": family})
        for conv_name, messages in conversations(tool_capable, family == "qwen3", family == "gemma3").items():
            for generation in (False, True):
                runs = [("", {})]
                if family == "qwen3" and generation:
                    runs.append(("+no_thinking", {"enable_thinking": False}))
                if tool_capable and "tools" in conv_name or conv_name == "multi_call":
                    runs = [("", {"tools": TOOLS})]
                    if family in ("llama3.1", "llama3.2"):
                        runs.append(("+tools_in_system", {"tools": TOOLS, "tools_in_user_message": False}))
                for suffix, kwargs in runs:
                    kwargs = dict(kwargs)
                    tools = kwargs.pop("tools", None)
                    case = {"template": template_id, "family": family, "conversation": conv_name + suffix,
                            "messages": messages, "tools": tools or [], "add_generation_prompt": generation,
                            "options": kwargs}
                    if template_id == "llama3" and not generation:
                        continue  # llama.cpp's copy of the Llama 3 template always adds the prompt
                    if family == "gemma" and conv_name == "unicode_system":
                        continue  # llama.cpp trims ASCII whitespace only; the Jinja trim is Python's
                    oracle_input = none_content_as_empty(messages) if family == "qwen3" else messages
                    result = render(source, oracle_input, tools, generation, bos, eos, kwargs)
                    if family == "gemma" and messages[0]["role"] == "system":
                        # The Gemma 2 template rejects a system message; Retort folds it into the
                        # first user turn as llama.cpp does.
                        result = {"expected": llama_cpp_gemma(messages, generation), "oracle": "llama.cpp"}
                    case.update(result)
                    cases.append(case)
                    if tools and "expected" in result:
                        # The same chat with arguments as JSON strings must render identically.
                        cases.append(dict(case, conversation=case["conversation"] + "+string_arguments",
                                          messages=with_string_arguments(messages)))
    # Llama 3.1 built-in tools: <|python_tag|> calls and <|eom_id|>.
    builtin_chat = [{"role": "user", "content": "Search the news"},
                    {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                        "name": "brave_search", "arguments": {"query": "news today"}}}]},
                    {"role": "tool", "content": "No news."}, {"role": "assistant", "content": "Nothing new."}]
    for generation in (False, True):
        kwargs = {"builtin_tools": ["brave_search", "code_interpreter", "wolfram_alpha"]}
        case = {"template": "llama3.1", "family": "llama3.1", "conversation": "builtin_tools", "messages": builtin_chat,
                "tools": [], "add_generation_prompt": generation, "options": kwargs}
        case.update(render(templates[0][1], builtin_chat, None, generation, "<|begin_of_text|>", "<|eot_id|>", kwargs))
        cases.append(case)
    for name in TEMPLATE_FILES[6:]:  # not rendered by Retort: recognition must refuse them
        if name == "Qwen-Qwen3-0.6B.jinja":
            continue  # rendered (in the table above)
        recognition.append({"id": name, "source": files[name], "family": None})
    recognition.append({"id": "llama2_vigogne", "source": cpp_template(cpp, CPP_TEMPLATES["llama2_vigogne"]),
                        "family": None})
    recognition.append({"id": "gemma_7b", "source": cpp_template(cpp, CPP_TEMPLATES["gemma_7b"]), "family": "gemma"})

    write_json(out / "cases.json", {"pinned_date": PINNED_DATE, "cases": cases})
    write_json(out / "recognition.json", recognition)
    # Stored templates for load_chat_template_source.
    (out / "model_dir").mkdir()
    write_json(out / "model_dir" / "tokenizer_config.json",
               {"chat_template": [{"name": "default", "template": files["Qwen-Qwen2.5-7B-Instruct.jinja"]},
                                  {"name": "tool_use", "template": LLAMA2_TEMPLATE}]})
    (out / "jinja_dir").mkdir()
    (out / "jinja_dir" / "chat_template.jinja").write_text(files["google-gemma-2-2b-it.jinja"], encoding="utf-8")
    write_json(out / "sources.json", {"smollm2_gguf": smollm2_gguf, "smollm2_template": smollm2,
                                      "qwen25_template": files["Qwen-Qwen2.5-7B-Instruct.jinja"],
                                      "llama2_template": LLAMA2_TEMPLATE,
                                      "gemma3_template": str(gemma3_chat_template())})
    errors = sum("error" in case for case in cases)
    print(f"{len(cases)} cases ({errors} rejected by their template), {len(recognition)} recognition sources")


if __name__ == "__main__":
    main()
