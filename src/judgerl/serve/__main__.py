"""`python -m judgerl.serve CONFIG [key=value ...]`: the same as `judgerl serve --config CONFIG` (API key from
the JUDGERL_API_KEY environment variable)."""

import sys

from judgerl import JudgerlError


def main(argv: list[str]) -> int:
    from judgerl.config import load_config
    from judgerl.serve.app import run_server
    from judgerl.serve.config import ServeConfig

    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    try:
        from judgerl.serve.guard import api_key_from

        run_server(load_config(ServeConfig, argv[0], argv[1:]), api_key=api_key_from(None))
    except JudgerlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
