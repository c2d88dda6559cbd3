"""Regenerate docs/cli.md from the argparse definitions: `python tools/gen_cli_docs.py`."""
import argparse
import os
from pathlib import Path

from moon_features.cli import build_parser


def walk(parser: argparse.ArgumentParser, path: list[str]):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, path + [name])


def render() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: fix it so the text is stable
    out = ["# CLI reference", "", "Generated from the code by `python tools/gen_cli_docs.py`; "
           "a test keeps it in step with the parser.", ""]
    for path, parser in walk(build_parser(), ["moon-features"]):
        if len(path) == 1:
            continue
        out += [f"## {' '.join(path)}", "", "```", parser.format_help().rstrip(), "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "docs/cli.md"
    target.write_text(render())
    print(f"wrote {target}")
