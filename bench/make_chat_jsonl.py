"""Writes a deterministic chat JSONL of about --mb megabytes (multi-turn conversations of varied
length and text) for bench/data_bench.cpp: `python bench/make_chat_jsonl.py OUT --mb 1024`."""
import argparse
import json
import random

WORDS = ("salt pepper garlic onion simmer roast knead dough oven pan butter lemon tomato basil rice beans "
         "order refund tent boots jacket size stock shipping delivery tracking return policy days week "
         "quick brown fox jumps over lazy dog while the farmer watches from the porch").split()


def sentence(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))).capitalize() + rng.choice(".?!")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--mb", type=float, default=1024)
    args = parser.parse_args()
    rng = random.Random(0)
    target = int(args.mb * (1 << 20))
    written = 0
    with open(args.out, "w", encoding="utf-8") as f:
        while written < target:
            messages = [{"role": "system", "content": sentence(rng)}]
            for _ in range(rng.randint(1, 4)):
                messages.append({"role": "user", "content": " ".join(sentence(rng) for _ in range(rng.randint(1, 4)))})
                messages.append({"role": "assistant", "content": " ".join(sentence(rng) for _ in range(rng.randint(1, 8)))})
            line = json.dumps({"messages": messages}) + "\n"
            f.write(line)
            written += len(line)


if __name__ == "__main__":
    main()
