"""``python -m pmexp.bench <name> [options]``: run a GPU benchmark (``dropout``, ``attention``, ``tempo``, ``step``)."""

import sys

BENCHES = ("dropout", "attention", "tempo", "step")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHES:
        raise SystemExit(f"usage: python -m pmexp.bench {{{','.join(BENCHES)}}} [options]")
    import importlib

    importlib.import_module(f"pmexp.bench.{sys.argv[1]}").main(sys.argv[2:])


if __name__ == "__main__":
    main()
