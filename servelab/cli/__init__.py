"""The `servelab` command: up, status, down, validate, load, fault, check, grade, env, labs, k8s."""

from servelab.cli._main import build_parser, main

__all__ = ["main", "build_parser"]
