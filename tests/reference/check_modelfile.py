"""Checks an Ollama Modelfile Retort wrote beside a GGUF: its TEMPLATE, rendered the way Ollama
renders a legacy template ({{ .System }}, {{ .Prompt }}, {{ .Response }}, if/else/end), must give
what transformers' apply_chat_template gives for the chat template stored in the GGUF (minus the
BOS llama.cpp adds), with and without a system message; its stops must be special tokens.
Usage: check_modelfile.py MODEL.gguf MODEL.gguf.Modelfile. Exit 1 on a difference."""
import re
import sys

from gguf import GGUFReader
from transformers.utils.chat_template_utils import render_jinja_template


def go_render(template: str, values: dict) -> str:
    """The subset of Go's text/template Ollama's legacy templates use."""
    tokens = re.split(r"({{-? *(?:if \.\w+|else|end|\.\w+) *-?}})", template)
    out, stack = [], [True]
    for token in tokens:
        match = re.fullmatch(r"{{-? *(if \.(\w+)|else|end|\.(\w+)) *-?}}", token)
        if not match:
            if all(stack):
                out.append(token)
        elif match.group(1).startswith("if"):
            stack.append(bool(values.get(match.group(2))))
        elif match.group(1) == "else":
            stack[-1] = not stack[-1]
        elif match.group(1) == "end":
            stack.pop()
        elif all(stack):
            out.append(values.get(match.group(3), ""))
    return "".join(out)


def field(reader, key):
    value = reader.fields[key]
    return bytes(value.parts[value.data[0]]).decode()


def main() -> int:
    reader = GGUFReader(sys.argv[1])
    text = open(sys.argv[2]).read()
    template = re.search(r'TEMPLATE """(.*?)"""', text, re.S).group(1)
    jinja = field(reader, "tokenizer.chat_template")
    tokens = [bytes(reader.fields["tokenizer.ggml.tokens"].parts[i]).decode()
              for i in reader.fields["tokenizer.ggml.tokens"].data]
    bos = tokens[int(reader.fields["tokenizer.ggml.bos_token_id"].parts[-1][0])] \
        if "tokenizer.ggml.bos_token_id" in reader.fields else ""
    add_bos = "tokenizer.ggml.add_bos_token" in reader.fields and bool(reader.fields["tokenizer.ggml.add_bos_token"].parts[-1][0])
    eos = tokens[int(reader.fields["tokenizer.ggml.eos_token_id"].parts[-1][0])]
    failures = []
    for system in ("You are terse.", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": "Hi there?"}]
        rendered, _ = render_jinja_template([messages], chat_template=jinja, add_generation_prompt=True,
                                            bos_token=bos, eos_token=eos)
        expected = rendered[0]
        if add_bos and expected.startswith(bos):  # llama.cpp adds this BOS itself
            expected = expected[len(bos):]
        ollama = go_render(template, {"System": system or "", "Prompt": "Hi there?", "Response": ""})
        if not ollama.startswith(expected):
            failures.append(f"system={system!r}:\n  ollama   {ollama!r}\n  jinja    {expected!r}")
    for stop in re.findall(r'PARAMETER stop "(.*?)"', text):
        if stop not in tokens:
            failures.append(f"stop {stop!r} is not a token of the vocabulary")
    for failure in failures:
        print(failure, file=sys.stderr)
    print("Modelfile template renders like the chat template" if not failures else "mismatch")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
