"""The README's Binder badge, written from the repository's GitHub remote.

A Binder link names the GitHub repository it builds (mybinder.org/v2/gh/OWNER/REPO/REF),
and a clone does not know where it will be published. So the badge is written, not typed:

    python binder/badge.py            # from `git remote get-url origin`, branch main
    python binder/badge.py --remote https://github.com/OWNER/REPO --ref main

rewrites the block between the README's binder-badge markers. The link opens JupyterLab on
the course's start page. Until the repository has a GitHub remote the block says so.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

README = Path(os.environ.get("SERVELAB_README") or Path(__file__).resolve().parent.parent / "README.md")
START_PAGE = "notebooks/00-start-here.ipynb"
BEGIN, END = "<!-- binder-badge -->", "<!-- /binder-badge -->"
GITHUB = re.compile(r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)"
                    r"(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+?)(?:\.git)?/?$")
WITHOUT = ("No Binder badge yet: this clone has no GitHub remote. After publishing the repository "
           "on GitHub, run `make binder-badge` to write it here.")


def owner_repo(remote: str) -> tuple[str, str]:
    """("OWNER", "REPO") of a GitHub remote URL (https or ssh); ValueError for anything else."""
    match = GITHUB.match(remote.strip())
    if not match:
        raise ValueError(f"not a GitHub repository URL: {remote!r} (Binder builds from GitHub: "
                         "https://github.com/OWNER/REPO or git@github.com:OWNER/REPO.git)")
    return match["owner"], match["repo"]


def badge(remote: str, ref: str = "main") -> str:
    owner, repo = owner_repo(remote)
    url = (f"https://mybinder.org/v2/gh/{owner}/{repo}/{quote(ref, safe='')}"
           f"?urlpath={quote('lab/tree/' + START_PAGE, safe='')}")
    return f"[![Launch the course on Binder](https://mybinder.org/badge_logo.svg)]({url})"


def origin() -> str | None:
    out = subprocess.run(["git", "-C", str(README.parent), "remote", "get-url", "origin"],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def rewrite(text: str, block: str) -> str:
    """`text` with the block between the markers replaced; ValueError if the markers are missing."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {BEGIN} ... {END} block")
    return text[:start + len(BEGIN)] + "\n" + block + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--remote", help="GitHub URL of the published repository (default: git's origin)")
    parser.add_argument("--ref", default="main", help="branch, tag or commit Binder builds (default: main)")
    args = parser.parse_args(argv)
    remote = args.remote or origin()
    try:
        block = badge(remote, args.ref) if remote else WITHOUT
        README.write_text(rewrite(README.read_text(), block))
    except ValueError as error:
        print(f"binder/badge.py: {error}", file=sys.stderr)
        return 2
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
