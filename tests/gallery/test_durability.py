"""Issue 13 §3: a commit that runs out of room leaves the previous state; a gallery copied
without its dotfiles still opens; damaged manifests and item databases are one-line refusals;
the SQL prefilter of stored paths misses no path the Python check refuses."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from hashlib import sha256
from pathlib import Path

import numpy as np
import pytest
from vectors import clustered, items, model

from sketchsearch.cli.main import cli, run
from sketchsearch.data.errors import ExitCode
from sketchsearch.data.safe_paths import path_problem
from sketchsearch.gallery import Gallery
from sketchsearch.gallery.errors import GalleryCorruptError
from sketchsearch.gallery.items import ItemStore

DIM = 16

# Runs a writer with RLIMIT_FSIZE lowered: the kernel refuses (EFBIG) or shortens every write
# past the limit, as a full disk would. SIGXFSZ is ignored, so the write fails instead of
# killing the process. hnswlib does not check its stream: without the read-back, it would
# leave a short index.bin.tmp and return normally.
LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv = sys.argv[1:]
"""
ADD = (
    LIMITED
    + """
sys.path.insert(0, sys.argv[3])
from vectors import clustered, items
from sketchsearch.gallery import Gallery
from sketchsearch.gallery.errors import GalleryWriteError
with Gallery.open(sys.argv[1], mode="rw") as gallery:
    try:
        gallery.add(clustered(400, 16, seed=9), items(400, start=1000, tag="x" * int(sys.argv[2])))
        gallery.commit()
    except GalleryWriteError as err:
        print(err)
        sys.exit(3)
"""
)
CLI = LIMITED + "from sketchsearch.cli.main import main\nsys.argv[0] = 'sketchsearch'\nmain()\n"
TESTS = str(Path(__file__).resolve().parents[1])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    with Gallery.create(tmp_path / "g", DIM, model=model()) as gallery:
        gallery.add(clustered(300, DIM), items(300))
    return tmp_path / "g"


def snapshot(folder: Path) -> tuple[dict[str, bytes], list[tuple[np.ndarray, np.ndarray]]]:
    """The committed files' bytes and the answers to a few searches."""
    files = {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}
    with Gallery.open(folder) as gallery:
        hits = gallery.search(clustered(5, DIM, seed=3), k=10)
    return files, [(h.ids, h.scores) for h in hits]


def assert_unchanged(folder: Path, before) -> None:
    files, answers = snapshot(folder)
    assert files == before[0]  # no leftover .tmp file either
    for (ids, scores), (ids0, scores0) in zip(answers, before[1], strict=True):
        assert ids.tolist() == ids0.tolist() and np.allclose(scores, scores0)


@pytest.mark.parametrize(
    ("tag", "short"),
    [(0, "index.bin.tmp"), (2000, "items.sqlite.tmp")],  # long digests: the database fails
)
def test_a_commit_that_runs_out_of_room_keeps_the_previous_state(folder, tag, short) -> None:
    before = snapshot(folder)
    # Room for 100 more elements in the index, not 400; or for the whole index (~150 kB) but
    # not for 400 rows of 2 kB each in the database.
    limit = 300_000 if tag else (folder / "index.bin").stat().st_size + 20_000
    done = subprocess.run(
        [sys.executable, "-c", ADD, str(limit), str(folder), str(tag), TESTS],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    message = done.stdout.strip()
    assert "\n" not in message and "not saved" in message and "generation 1 is intact" in message
    assert short in message or "File too large" in message, message
    assert_unchanged(folder, before)
    with Gallery.open(folder, mode="rw") as gallery:  # and the next writer carries on
        gallery.add(clustered(10, DIM, seed=4), items(10, start=500))
    assert Gallery.open(folder).info().live == 310


def test_the_cli_says_one_line_and_exits_3_when_the_disk_is_full(folder) -> None:
    before = snapshot(folder)
    limit = (folder / "index.bin").stat().st_size - 1000  # the same size again does not fit
    command = [sys.executable, "-c", CLI, str(limit), "gallery", "remove", str(folder), "--id", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert "not saved" in done.stderr and "Traceback" not in done.stderr
    assert_unchanged(folder, before)


def test_the_manifest_records_each_file_and_old_manifests_still_open(folder) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in ("index.bin", "items.sqlite"):
        data = (folder / name).read_bytes()
        assert manifest["files"][name] == {
            "size": len(data),
            "sha256": sha256(data).hexdigest(),
        }
    assert manifest["format_version"] == 2
    sizes = {name: record["size"] for name, record in manifest["files"].items()}
    version_1 = {**manifest, "format_version": 1, "files": sizes}  # the layout before digests
    (folder / "manifest.json").write_text(json.dumps(version_1))
    with Gallery.open(folder, mode="rw") as gallery:
        assert gallery.info().live == 300
        gallery.remove(ids=[0])
    rewritten = json.loads((folder / "manifest.json").read_text())
    assert rewritten["format_version"] == 2 and "sha256" in rewritten["files"]["index.bin"]


def test_a_changed_byte_is_caught_by_the_digests(folder) -> None:
    index = folder / "index.bin"
    data = bytearray(index.read_bytes())
    data[96 + 4 + 2 * 16 * 4 + 5] ^= 0x01  # a byte of element 0's vector: the structure holds
    index.write_bytes(bytes(data))
    reader = Gallery.open(folder)  # a reader leaves the index's digest to verify()
    with reader, pytest.raises(GalleryCorruptError, match=r"index\.bin: its SHA-256 differs"):
        reader.verify()
    with pytest.raises(GalleryCorruptError, match=r"index\.bin: its SHA-256 differs"):
        Gallery.open(folder, mode="rw")  # a writer never carries it into a new generation
    database = folder / "items.sqlite"
    with sqlite3.connect(database) as connection:  # an edit that keeps the file's size
        connection.execute("UPDATE items SET label = 'c9' WHERE id = 4")
    connection.close()
    assert run(cli, ["gallery", "info", str(folder)]) == ExitCode.BAD_INPUT


def copy_without_dotfiles(folder: Path, copy: Path) -> None:
    """What `cp g/* copy/` does: the shell's * skips dotfiles (pathlib's glob would not)."""
    copy.mkdir()
    for path in folder.iterdir():
        if not path.name.startswith("."):
            shutil.copy(path, copy / path.name)


def test_a_copy_without_dotfiles_opens_and_takes_writes(folder, tmp_path) -> None:
    dotted = sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
    assert dotted == [".commit.lock", ".writer.lock"]
    copy = tmp_path / "copy"
    copy_without_dotfiles(folder, copy)
    with Gallery.open(copy) as reader:
        assert reader.info().live == 300
    assert run(cli, ["gallery", "info", str(copy / "..")]) == ExitCode.BAD_INPUT  # not a gallery
    copy_without_dotfiles(folder, tmp_path / "copy2")
    with Gallery.open(tmp_path / "copy2", mode="rw") as writer:
        writer.remove(ids=[5])
    assert Gallery.open(tmp_path / "copy2").info().deleted == 1


def test_a_read_only_copy_without_dotfiles_opens(folder, tmp_path) -> None:
    """Read-only for the reader: no lock can be made, and the gallery still opens.

    Root writes read-only folders, so as root the copy is made truly read-only instead: a
    read-only bind mount in a private mount namespace (``unshare -m``), where the reader runs.
    """
    copy = tmp_path / "copy"
    copy_without_dotfiles(folder, copy)
    if os.geteuid() != 0:
        os.chmod(copy, 0o555)  # the lock cannot be made; no writer can commit here either
        try:
            with Gallery.open(copy) as reader:
                assert reader.info().live == 300
        finally:
            os.chmod(copy, 0o755)
        return
    if shutil.which("unshare") is None:
        pytest.skip("root without unshare(1): no way to make a folder read-only for root")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", 'mount --bind "$0" "$0"', str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:  # e.g. a container without CAP_SYS_ADMIN
        pytest.skip(f"root without private bind mounts here: {probe.stderr.strip()}")
    reader = (
        "import sys; from sketchsearch.gallery import Gallery\n"
        "with Gallery.open(sys.argv[1]) as g: print(g.info().live)"
    )
    mount_then_read = (
        'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && touch "$1/.probe" '
        '2>/dev/null && exit 90; exec "$2" -c "$3" "$1"'
    )
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", mount_then_read, "sh", str(copy), sys.executable, reader],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 90, "the read-only bind mount took a write"
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "300"
    assert not (copy / ".commit.lock").exists()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (lambda good: b'{"a": ' + nested(100_000).encode() + b"}", "nested too deeply"),
        (lambda good: good.replace(b"resnet10t", b"resnet\xff10t"), "not UTF-8"),
        (lambda good: good.replace(b'"ef": 64', b'"ef": 18446744073709551616'), "ef must be"),
        (lambda good: good.replace(b'"dim": 16,\n "space"', b'"dim": 1e999,\n "space"'), "dim"),
        (lambda good: good.replace(b'"M": 16', b'"M": 99999999999'), "M must be"),
        (lambda good: good.replace(b'"generation": 1', b'"generation": -1'), "generation"),
    ],
)
def test_a_damaged_manifest_is_one_line(folder, capsys, text, message) -> None:
    manifest = folder / "manifest.json"
    manifest.write_bytes(text(manifest.read_bytes()))
    with pytest.raises(GalleryCorruptError, match=message):
        Gallery.open(folder)
    for args in (["gallery", "info", str(folder)], ["gallery", "remove", str(folder), "--id", "1"]):
        assert run(cli, args) == ExitCode.BAD_INPUT
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1


def damage_items(folder: Path, statements: str) -> None:
    """Edit the item database, then record its new size and digest as if nothing happened:
    what sketchsearch reads is then the damage itself, not a digest mismatch."""
    database = folder / "items.sqlite"
    with sqlite3.connect(database) as connection:
        connection.executescript(statements)
    connection.close()
    manifest = json.loads((folder / "manifest.json").read_text())
    data = database.read_bytes()
    record = {"size": len(data), "sha256": sha256(data).hexdigest()}
    old_format = isinstance(manifest["files"]["items.sqlite"], int)  # to run it on old code
    manifest["files"]["items.sqlite"] = len(data) if old_format else record
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("statements", "message"),
    [
        ("DROP TABLE items;", "no such table"),
        ("DROP TABLE meta;", "no such table"),
        ("UPDATE meta SET value = 'x' WHERE key = 'generation';", "damaged"),
        ("UPDATE items SET deleted = 'x' WHERE id = 8;", "damaged"),
    ],
)
def test_a_damaged_item_database_is_one_line(folder, capsys, statements, message) -> None:
    damage_items(folder, statements)
    for args in (
        ["gallery", "info", str(folder)],
        ["gallery", "export", str(folder), "--out", str(folder.parent / "v.npz")],
        ["gallery", "remove", str(folder), "--id", "1"],
    ):
        code = run(cli, args)
        err = capsys.readouterr().err
        assert code == ExitCode.BAD_INPUT, err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_undecodable_text_is_one_line_where_it_is_read(folder, capsys) -> None:
    damage_items(folder, "UPDATE items SET label = CAST(x'ff80' AS TEXT) WHERE id = 7;")
    assert run(cli, ["gallery", "info", str(folder)]) == ExitCode.OK  # labels are not read
    capsys.readouterr()
    code = run(cli, ["gallery", "export", str(folder), "--out", str(folder.parent / "v.npz")])
    err = capsys.readouterr().err
    assert code == ExitCode.BAD_INPUT and err.count("\n") == 1 and "decode" in err, err


def test_a_malformed_page_is_one_line(folder, capsys) -> None:
    database = folder / "items.sqlite"
    data = bytearray(database.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for start in range(page, len(data), page):
        data[start : start + 12] = b"\xee" * 12  # garble every page's header but the first
    database.write_bytes(bytes(data))
    damage_items(folder, "")  # record the digest of the damaged file
    code = run(cli, ["gallery", "info", str(folder)])
    err = capsys.readouterr().err
    assert code == ExitCode.BAD_INPUT and err.count("\n") == 1 and "malformed" in err, err


# Every path tests/data/test_safe_paths.py uses, kept and refused, and odd ones of our own.
KNOWN_PATHS: list[object] = [
    "x.png", "cat/x.png", "photo/tx_0/cat/n01 b.jpg", "ünï/ködé.png", "a..b/c..png", ".x",
    "/etc/passwd", "//server/share/x.png", "../x.png", "cat/../../x.png", "cat/..", "..",
    "./x.png", "cat/./x.png", "cat//x.png", "cat/", ".", "", "cat\\x.png", "..\\x.png",
    "C:x.png", "c:/x.png", "cat/x\0.png", "\0", "a\0/../b", "é:x", "ü/..", "日本/../x",
    "a/.b", "a/b.", "a./b", "x\n/..", "/", "\\", "%", "_:x", "a%/..", "a_b", "\u202e/..",
]  # fmt: skip
FRAGMENTS = ["", "/", ".", "..", "a", "é", "\\", ":", "\0", "C", " ", "\n", "%", "_"]


def generated_paths() -> list[object]:
    found: list[object] = list(KNOWN_PATHS)
    for length in range(1, 5):
        found += ["".join(parts) for parts in itertools.product(FRAGMENTS, repeat=length)]
    return [*found, 7, 2.5, b"a/b", b"../x", "a" * 5000 + "/.."]


def test_the_sql_prefilter_selects_every_path_the_python_check_refuses() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, path)")  # no affinity
    paths = generated_paths()
    connection.executemany("INSERT INTO items (path) VALUES (?)", [(p,) for p in paths])
    selected = set(ItemStore(connection).maybe_unsafe_paths())
    refused = [p for p in paths if path_problem(p) is not None]
    assert len(refused) > 10_000
    assert [p for p in refused if p not in selected] == []
    kept = [p for p in paths if path_problem(p) is None]
    assert len(kept) > 1000 and len(selected.intersection(kept)) < len(kept) // 2  # it filters


def test_a_prefiltered_bad_path_is_still_refused(folder) -> None:
    damage_items(folder, "UPDATE items SET path = 'photos/x' || char(0) || '/y' WHERE id = 3;")
    with pytest.raises(GalleryCorruptError, match="holds a NUL"):
        Gallery.open(folder)
