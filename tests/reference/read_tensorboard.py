"""Reads a TensorBoard log directory with the tensorboard package's own EventAccumulator and
prints {tag: [[step, value], ...]} as JSON. Usage: read_tensorboard.py LOGDIR"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    accumulator = EventAccumulator(sys.argv[1])
    accumulator.Reload()
    out = {tag: [[event.step, event.value] for event in accumulator.Scalars(tag)]
           for tag in accumulator.Tags()["scalars"]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
