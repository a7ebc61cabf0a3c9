"""Headless sub-commands that panels contribute (``lab``, ``walk``, ``image``).

Each module here exposes ``register(subparsers, common)`` that adds its parser and sets
``handler`` (a function ``args -> exit code``) with ``parser.set_defaults``. Listing them
in one place keeps ``playground --help`` complete and the CLI free of Qt imports.
"""

from __future__ import annotations

import argparse
import importlib

COMMAND_MODULES: tuple[str, ...] = ("walk", "lab", "image")


def register_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"playground.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"playground.commands.{name}":
                continue  # that panel's issue has not landed yet
            raise
        module.register(sub, common)
