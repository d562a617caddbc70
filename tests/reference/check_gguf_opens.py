"""Opens a GGUF file with gguf-py (llama.cpp's reader) and checks its block count.
Usage: check_gguf_opens.py FILE.gguf BLOCKS. Exit 1 on a mismatch."""
import sys

from gguf import GGUFReader

reader = GGUFReader(sys.argv[1])
arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
blocks = int(reader.fields[f"{arch}.block_count"].parts[-1][0])
print(f"{arch}, {blocks} blocks, {len(reader.tensors)} tensors")
sys.exit(0 if blocks == int(sys.argv[2]) else 1)
