"""``python -m pmexp.bench <name> [options]``: run a GPU micro-benchmark (``dropout``)."""

import sys

BENCHES = ("dropout",)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHES:
        raise SystemExit(f"usage: python -m pmexp.bench {{{','.join(BENCHES)}}} [options]")
    from pmexp.bench import dropout

    dropout.main(sys.argv[2:])


if __name__ == "__main__":
    main()
