"""Checks an Ollama Modelfile Retort wrote beside a GGUF: its TEMPLATE, rendered by Go's own
text/template with Ollama's data model (fixture_ollama.py's ollama_render), must give what
transformers' apply_chat_template gives for the chat template stored in the GGUF (minus the BOS
llama.cpp adds) on chats with and without a system message, one turn and several, answered (the
generation prompt) and finished; a chat without a system message gets the Modelfile's SYSTEM as
Ollama gives it; its stops must be special tokens of the vocabulary.
Usage: check_modelfile.py MODEL.gguf MODEL.gguf.Modelfile OLLAMA_RENDER. Exit 1 on a difference."""
import json
import re
import subprocess
import sys

from gguf import GGUFReader
from jinja2.exceptions import TemplateError
from transformers.utils.chat_template_utils import render_jinja_template

CHATS = [
    [{"role": "user", "content": "Hi there?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi there?"}],
    [{"role": "user", "content": "Hi there?"}, {"role": "assistant", "content": "Hello."},
     {"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi there?"},
     {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "What is 2 + 2?"},
     {"role": "assistant", "content": "4"}],
]


def field(reader, key):
    value = reader.fields[key]
    return bytes(value.parts[value.data[0]]).decode()


def main() -> int:
    reader = GGUFReader(sys.argv[1])
    modelfile = open(sys.argv[2]).read()
    jinja = field(reader, "tokenizer.chat_template")
    tokens = [bytes(reader.fields["tokenizer.ggml.tokens"].parts[i]).decode()
              for i in reader.fields["tokenizer.ggml.tokens"].data]
    bos = tokens[int(reader.fields["tokenizer.ggml.bos_token_id"].parts[-1][0])] \
        if "tokenizer.ggml.bos_token_id" in reader.fields else ""
    add_bos = "tokenizer.ggml.add_bos_token" in reader.fields and bool(reader.fields["tokenizer.ggml.add_bos_token"].parts[-1][0])
    eos = tokens[int(reader.fields["tokenizer.ggml.eos_token_id"].parts[-1][0])]
    system = re.search(r'\nSYSTEM """(.*?)"""', modelfile, re.S)
    expected, cases = [], []
    for chat in CHATS:
        # What the model sees in Ollama: the Modelfile's SYSTEM when the chat has no system message.
        seen = [{"role": "system", "content": system.group(1)}] + chat if system and chat[0]["role"] != "system" else chat
        try:
            rendered, _ = render_jinja_template([seen], chat_template=jinja, bos_token=bos, eos_token=eos,
                                                add_generation_prompt=chat[-1]["role"] != "assistant")
        except TemplateError:
            continue  # a chat the template refuses (Gemma 2 has no system role)
        text = rendered[0]
        expected.append(text[len(bos):] if add_bos and text.startswith(bos) else text)  # llama.cpp adds this BOS
        cases.append({"messages": chat, "tools": None, "think": None})
    answer = subprocess.run([sys.argv[3]], input=json.dumps({"modelfile": modelfile, "cases": cases}),
                            capture_output=True, text=True, check=True)
    failures = []
    for case, want, got in zip(cases, expected, json.loads(answer.stdout)["renders"]):
        if got.get("text") != want:
            failures.append(f"{len(case['messages'])} messages:\n  ollama   {got!r}\n  jinja    {want!r}")
    if not cases:
        failures.append("the chat template refused every chat")
    for stop in re.findall(r'PARAMETER stop "(.*?)"', modelfile):
        if stop not in tokens:
            failures.append(f"stop {stop!r} is not a token of the vocabulary")
    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"Modelfile template renders like the chat template ({len(cases)} chats)" if not failures else "mismatch")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
