"""Static path resolution (granian/apps/static_paths.py): containment and dir-to-file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from granian.apps.static_paths import NOT_FOUND, StaticPaths


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    mount = tmp_path / "pub"
    (mount / "sub").mkdir(parents=True)
    (mount / "a.txt").write_text("a")
    (mount / "sub" / "index.html").write_text("i")
    (mount / "caf\u00e9 \u00fc.txt").write_text("u")
    (tmp_path / "secret.txt").write_text("s")
    (tmp_path / "pub2").mkdir()
    (tmp_path / "pub2" / "x.txt").write_text("x")
    os.symlink(tmp_path / "secret.txt", mount / "link_out.txt")
    os.symlink(mount / "a.txt", mount / "link_in.txt")
    os.mkfifo(mount / "fifo")
    return tmp_path


def test_routes_and_containment(tree: Path) -> None:
    mount = str(tree / "pub")
    sp = StaticPaths(["/static"], [mount], None)
    assert sp.match(b"/other/a.txt") is None
    assert sp.match(b"/staticx/a.txt") is None  # a route is a path segment, not a prefix
    assert sp.match(b"/static/a.txt") == os.path.join(mount, "a.txt")
    assert sp.match(b"/static/missing") == NOT_FOUND
    assert sp.match(b"/static/../secret.txt") == NOT_FOUND
    assert sp.match(b"/static/%2e%2e/secret.txt") == NOT_FOUND
    assert sp.match(b"/static/%2E%2E%2Fsecret.txt") == NOT_FOUND
    assert sp.match(b"/static/..%2f..%2fetc/passwd") == NOT_FOUND
    assert sp.match(b"/static/../pub2/x.txt") == NOT_FOUND  # sibling sharing the prefix "pub"
    assert sp.match(b"/static/link_out.txt") == NOT_FOUND
    assert sp.match(b"/static/link_in.txt") == os.path.join(mount, "a.txt")
    assert sp.match(b"/static/a.txt%00.png") == NOT_FOUND
    assert sp.match(b"/static/sub") == NOT_FOUND  # a directory without --static-path-dir-to-file
    assert sp.match(b"/static") == NOT_FOUND
    assert sp.match(b"/static/fifo") == NOT_FOUND
    assert sp.match(b"/static/caf%C3%A9%20%C3%BC.txt") == os.path.join(mount, "caf\u00e9 \u00fc.txt")
    assert sp.match(b"/static//a.txt") == os.path.join(mount, "a.txt")


def test_dir_to_file_and_many_mounts(tree: Path) -> None:
    mount, mount2 = str(tree / "pub"), str(tree / "pub2")
    sp = StaticPaths(["/s/", "/s/deep"], [mount, mount2], "index.html")
    assert sp.match(b"/s/sub") == os.path.join(mount, "sub", "index.html")
    assert sp.match(b"/s/sub/") == os.path.join(mount, "sub", "index.html")
    assert sp.match(b"/s/") == NOT_FOUND  # the mount root has no index.html
    assert sp.match(b"/s/deep/x.txt") == os.path.join(mount2, "x.txt")
    assert not StaticPaths([], [], None)
