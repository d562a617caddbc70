"""Checks that a Jinja chat template Retort writes renders exactly like a reference template
(Google's Gemma 3 template, say), both run by transformers' Jinja machinery: every conversation
of fixture_chat_templates (and a few more: an empty, a padded and a list-free system prompt,
three exchanges), with and without the generation prompt; and both refuse the same bad ones.
Usage: check_chat_template_source.py OURS.jinja REFERENCE.jinja BOS EOS; exit 1 on a difference."""
import sys
from pathlib import Path

import fixture_chat_templates as chats


def main() -> int:
    ours, reference = Path(sys.argv[1]).read_text(encoding="utf-8"), Path(sys.argv[2]).read_text(encoding="utf-8")
    bos, eos = sys.argv[3], sys.argv[4]
    conversations = dict(chats.conversations(False))
    conversations.update({
        "empty_system": [{"role": "system", "content": ""}] + chats.BASIC,
        "padded_system": [{"role": "system", "content": "\n  Be brief.  \n"}] + chats.BASIC,
        "three_exchanges": chats.BASIC + [{"role": "user", "content": " More? "}, {"role": "assistant", "content": "No."},
                                          {"role": "user", "content": "Thanks"}, {"role": "assistant", "content": "Bye"}],
        "assistant_first": [{"role": "assistant", "content": "Hi"}],
    })
    failures, checked = 0, 0
    for name, messages in conversations.items():
        for generation in (False, True):
            got = chats.render(ours, messages, None, generation, bos, eos, {})
            want = chats.render(reference, messages, None, generation, bos, eos, {})
            checked += 1
            if ("error" in got) != ("error" in want) or got.get("expected") != want.get("expected"):
                failures += 1
                print(f"{name} (generation prompt {generation}):\n ours: {got!r}\n  ref: {want!r}")
    print(f"{checked - failures}/{checked} renderings equal")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
