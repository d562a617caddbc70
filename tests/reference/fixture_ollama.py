"""Oracle for export/ollama_template.*: builds tests/reference/ollama/ (Go's own text/template
driven with Ollama's template data model) into OUT/ollama_render, and renders conversations with
the real Jinja chat templates (transformers' render_jinja_template; the templates of
fixture_chat_templates.py) into OUT/cases.json, for the C++ tests to compare the Go renderings
of Retort's Modelfile templates with.

Each case is a conversation as an Ollama user sends it (OpenAI style) and what the Jinja template
renders for it, minus the BOS llama.cpp adds: with the generation prompt when it ends on a user or
tool message, without when it ends on the assistant's. Where Ollama's data model cannot carry what
the Jinja template reads (see docs/export.md), `expected` is the Jinja rendering of the data as
Ollama holds it and `jinja_as_given` the rendering of the data as given."""
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from fixture_chat_templates import llama_cpp_gemma, none_content_as_empty, template_table
from oracle_util import write_json

GO_SOURCES = Path(__file__).resolve().parent / "ollama"
# run_fixture.py reruns a fixture when its script changes, not when files beside it do: the Go
# sources are pinned here, so changing them means changing this script too.
GO_SOURCES_SHA256 = "adb87144c7c54c895378dbd6cb99f8a6c92027cf46e4230acf29eeae629657d2"
ROOT = Path(__file__).resolve().parents[2]
DATE = "26 Jul 2024"  # the Llama 3.x templates' own fallback, which Retort's Ollama template prints

# The official Qwen/Qwen2-7B-Instruct chat template (tokenizer_config.json); the llama.cpp sources
# fixture_chat_templates.py reads have no Qwen2 template.
QWEN2_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                  "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
                  "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
SYSTEM = {"role": "system", "content": "You are a concise assistant."}
TURNS = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"},
         {"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am an assistant."},
         {"role": "user", "content": "Another question"}, {"role": "assistant", "content": "Ask away."}]
UNICODE = [{"role": "user", "content": "Grüße aus Zürich — 世界 🌍 \"quotes\" \\ back\tslash\nnew line"},
           {"role": "assistant", "content": "Ça va ! Привет, 你好 ✓"}]
# Tools as Ollama holds them: its fields only, properties and arguments in name order.
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. Zürich"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "description": "Current time", "parameters": {
        "type": "object", "properties": {"precision": {"type": ["integer", "null"], "description": "Digits"},
                                          "zone": {"type": "string"}}}}}]
CALL = {"type": "function", "id": "abc123def",
        "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}
CALL2 = {"type": "function", "id": "xyz987uvw", "function": {"name": "get_time", "arguments": {"precision": 2, "zone": "CET"}}}
TOOL_CHAT = [{"role": "user", "content": "What's the weather in Zürich?"},
             {"role": "assistant", "content": None, "tool_calls": [CALL]},
             {"role": "tool", "tool_call_id": "abc123def", "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"},
             {"role": "assistant", "content": "It is 21.5 °C and clear in Zürich."},
             {"role": "user", "content": "Thanks. And the time?"},
             {"role": "assistant", "content": None, "tool_calls": [{**CALL2, "function": {
                 "name": "get_time", "arguments": json.dumps(CALL2["function"]["arguments"])}}]},  # OpenAI's string form
             {"role": "tool", "tool_call_id": "xyz987uvw", "content": "14:02"},
             {"role": "assistant", "content": "It is 14:02."}]
MULTI_CALL_CHAT = [{"role": "user", "content": "Weather and time in Zürich?"},
                   {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL, CALL2]},
                   {"role": "tool", "tool_call_id": "abc123def", "content": "sunny"},
                   {"role": "tool", "tool_call_id": "xyz987uvw", "content": "14:02"},
                   {"role": "assistant", "content": "Sunny, and it is 14:02."}]
THINK_CHAT = [{"role": "user", "content": "What is 17 * 3?"},
              {"role": "assistant", "reasoning_content": "17 * 3 = 51.", "content": "51"},
              {"role": "user", "content": "And plus 9?"},
              {"role": "assistant", "reasoning_content": "51 + 9 = 60.", "content": "60"}]
THINK_TOOL_CHAT = [{"role": "user", "content": "Weather in Zürich?"},
                   {"role": "assistant", "reasoning_content": "I should call the tool.", "content": "",
                    "tool_calls": [CALL]},
                   {"role": "tool", "tool_call_id": "abc123def", "content": "sunny"},
                   {"role": "assistant", "reasoning_content": "It says sunny.", "content": "Sunny in Zürich."}]


def ollama_tool(tool: dict) -> dict:
    """A tool as Ollama's template data holds it (template/template.go templateTool): its own fields
    only, properties sorted by name, each property's fields in api.ToolProperty's order."""
    function, parameters = tool["function"], tool["function"].get("parameters", {})
    held = {"name": function["name"]}
    if function.get("description"):
        held["description"] = function["description"]
    params = {"type": parameters.get("type", ""), "properties": {
        name: {key: prop[key] for key in ("anyOf", "type", "items", "description", "enum", "properties", "required")
               if prop.get(key)}
        for name, prop in sorted(parameters.get("properties", {}).items())}}
    if parameters.get("required"):
        params["required"] = parameters["required"]
    held["parameters"] = params
    return {"type": tool["type"], "function": held}


def ollama_messages(messages: list) -> list:
    """Tool-call arguments as Ollama's template data holds them: a map, so in name order."""
    result = copy.deepcopy(messages)
    for message in result:
        for call in message.get("tool_calls") or []:
            arguments = call["function"]["arguments"]
            if isinstance(arguments, str):
                arguments = json.loads(arguments)
            call["function"]["arguments"] = dict(sorted(arguments.items()))
    return result


def jinja(source, messages, tools, bos, eos, generation, extra):
    from jinja2.exceptions import TemplateError
    from transformers.utils.chat_template_utils import render_jinja_template
    try:
        rendered, _ = render_jinja_template(conversations=[messages], tools=tools, chat_template=source,
                                            add_generation_prompt=generation, bos_token=bos, eos_token=eos, **extra)
    except TemplateError as error:
        return None, str(error)
    text = rendered[0]
    return (text[len(bos):] if bos and text.startswith(bos) else text), None


def conversations(tool_capable: bool, thinking: bool) -> dict:
    convs = {"turns": TURNS, "system_turns": [SYSTEM] + TURNS, "unicode": UNICODE, "system_unicode": [SYSTEM] + UNICODE}
    if tool_capable:
        convs.update({"tools": TOOL_CHAT, "system_tools": [SYSTEM] + TOOL_CHAT, "multi_call": MULTI_CALL_CHAT})
    if thinking:
        convs.update({"think": THINK_CHAT, "think_tools": THINK_TOOL_CHAT})
    return convs


def rendered_prefixes(messages):
    """Every prefix that ends where a model answers next (a user or tool message), and the whole chat."""
    for end in range(1, len(messages) + 1):
        if messages[end - 1]["role"] in ("user", "tool") or end == len(messages):
            yield messages[:end], messages[end - 1]["role"] != "assistant"


def format_cases(template_id, source, family, bos, eos, tool_capable):
    cases = []
    for name, conversation in conversations(tool_capable, family == "qwen3").items():
        tools = TOOLS if "tools" in name or name == "multi_call" else None
        for messages, generation in rendered_prefixes(conversation):
            if template_id == "llama3" and not generation:
                continue  # llama.cpp's copy of the Llama 3 template always adds the generation prompt
            thinks = [None, False, True] if family == "qwen3" and generation else [None]
            for think in thinks:
                extra = {"date_string": DATE} if family.startswith("llama3.") else {}
                if think is not None:
                    extra["enable_thinking"] = think
                given = none_content_as_empty(messages) if family == "qwen3" else messages
                if family == "gemma" and messages[0]["role"] == "system":
                    # Gemma 2's template refuses a system message; Retort folds it as llama.cpp does.
                    text, error = llama_cpp_gemma(messages, generation)[len(bos):], None
                else:
                    text, error = jinja(source, ollama_messages(given), tools, bos, eos, generation, extra)
                if error:
                    continue  # the template refuses this chat (alternation, several calls at once)
                cases.append({"template": template_id, "family": family, "conversation": name,
                              "messages": messages, "tools": tools or [], "think": think, "expected": text})
    return cases


def business_agent_cases(qwen25_source):
    """The business agent's held-out conversations (tools in every line), as its recipe trains them:
    Qwen2.5's template, answered from the last user turn."""
    cases = []
    for line_number, line in enumerate((ROOT / "examples/business_agent/heldout.jsonl").read_text().splitlines()):
        example = json.loads(line)
        held = [ollama_tool(tool) for tool in example["tools"]]
        expected, _ = jinja(qwen25_source, ollama_messages(example["messages"]), held, "", "<|im_end|>", True, {})
        as_given, _ = jinja(qwen25_source, example["messages"], example["tools"], "", "<|im_end|>", True, {})
        cases.append({"template": "qwen2.5", "family": "qwen2.5", "conversation": f"heldout:{line_number + 1}",
                      "messages": example["messages"], "tools": example["tools"], "think": None,
                      "expected": expected, "jinja_as_given": as_given})
    return cases


def go_sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(GO_SOURCES.glob("*.go")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build_go_oracle(out: Path) -> None:
    """go build into OUT with a Go cache of this run's own, removed afterwards: concurrent fixture
    runs never share a half-written cache, and the standard library comes prebuilt with golang-go."""
    scratch = out / ".go"
    env = dict(os.environ, GOCACHE=str(scratch / "cache"), GOPATH=str(scratch / "path"), GOFLAGS="",
               GO111MODULE="off", CGO_ENABLED="0")
    if go_sources_digest() != GO_SOURCES_SHA256:
        sys.exit(f"fixture_ollama: {GO_SOURCES} changed; set GO_SOURCES_SHA256 = \"{go_sources_digest()}\"")
    sources = sorted(str(path) for path in GO_SOURCES.glob("*.go"))
    try:
        subprocess.run(["go", "build", "-o", str(out / "ollama_render"), *sources], env=env, check=True)
    except FileNotFoundError:
        sys.exit("fixture_ollama: Go is not installed (Debian: apt-get install golang-go; scripts/setup.sh does)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main():
    out = Path(sys.argv[1])
    # The conversations compare as given only because their tools are already in Ollama's form.
    assert [ollama_tool(tool) for tool in TOOLS] == TOOLS
    build_go_oracle(out)
    templates, _, _, _ = template_table()
    templates.append(("qwen2", QWEN2_TEMPLATE, "qwen2", "", "<|im_end|>", False, {}))
    cases = []
    for template_id, source, family, bos, eos, tool_capable, _ in templates:
        cases += format_cases(template_id, source, family, bos, eos, tool_capable)
    qwen25_source = next(entry[1] for entry in templates if entry[0] == "qwen2.5")
    cases += business_agent_cases(qwen25_source)
    (out / "qwen2.5.jinja").write_text(qwen25_source, encoding="utf-8")
    write_json(out / "cases.json", {"cases": cases, "templates": [
        {"id": entry[0], "family": entry[2], "source": entry[1]} for entry in templates]})
    print(f"{len(cases)} cases over {len(templates)} templates; Go oracle at {out / 'ollama_render'}")


if __name__ == "__main__":
    main()
