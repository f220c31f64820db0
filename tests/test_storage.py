"""One storage interface on a local folder and on a real S3-compatible server (moto): reads,
atomic writes, listings, deletes and errors behave the same; locations resolve as documented;
the journal works on both (records, compaction, damage skipped once, crash duplicates dropped);
a sweep whose bucket cannot be used stops with one line before anything is written. (A whole
sweep on a bucket, its drivers stopped and resumed: test_signals.py.)"""

from __future__ import annotations

import os
import pickle
import stat

import pytest

from ltray.errors import ConfigError
from ltray.experiment.journal import MAX_SEGMENTS, Journal
from ltray.storage import (LocalStorage, ObjectStorage, StorageError, filesystem_uri, open_storage,
                           resolve_location)
from tests.s3_server import make_bucket, s3_server


@pytest.fixture(scope="module")
def endpoint():
    with s3_server() as url:
        make_bucket(url, "ltray-test")
        yield url


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return open_storage(tmp_path / "exp")
    request.getfixturevalue("endpoint")
    return open_storage(f"s3://ltray-test/{request.node.name.replace('[', '-').replace(']', '')}/exp")


def test_read_write_list_delete(storage):
    assert storage.info("") is None and storage.list_dir("") == [] and storage.walk("") == []
    storage.write_text("a/b/c.json", "{}")
    storage.write_bytes("a/d.bin", b"\x00\x01")
    storage.write_bytes("a/d.bin", b"\x02")  # replaced whole
    assert storage.read_bytes("a/d.bin") == b"\x02" and storage.read_text("a/b/c.json") == "{}"
    assert storage.list_dir("a") == ["b", "d.bin"] and storage.is_dir("a/b") and storage.is_file("a/d.bin")
    assert storage.walk("") == ["a/b/c.json", "a/d.bin"] and storage.walk("a/b") == ["c.json"]
    child = storage.child("a")
    assert child.read_bytes("d.bin") == b"\x02" and child.uri == storage.describe("a")
    with pytest.raises(StorageError) as missing:
        storage.read_bytes("a/nope")
    assert missing.value.missing and storage.describe("a/nope") in str(missing.value)
    assert storage.read_bytes_or_none("a/nope") is None
    storage.delete("a/d.bin")
    storage.delete("a/d.bin")  # absent is fine
    storage.delete_tree("a")
    assert storage.walk("") == [] and not storage.exists("a/b/c.json")


def test_local_writes_leave_no_temporary_file_and_follow_the_umask(tmp_path):
    storage = LocalStorage(tmp_path)
    old = os.umask(0o027)
    try:
        storage.write_text("x/y.txt", "hello")
    finally:
        os.umask(old)
    assert os.listdir(tmp_path / "x") == ["y.txt"]
    assert stat.S_IMODE((tmp_path / "x" / "y.txt").stat().st_mode) == 0o640  # group-readable, not 0600


def test_object_storage_pickles_for_other_processes(endpoint):
    storage = open_storage("s3://ltray-test/pickled")
    storage.write_text("f", "1")
    again = pickle.loads(pickle.dumps(storage))
    assert isinstance(again, ObjectStorage) and again.read_text("f") == "1"


def test_a_small_object_is_one_put_and_a_large_one_still_whole(endpoint):
    """S3 ETags tell the two apart: a multipart upload's ends in `-<parts>`, a PutObject's is the
    MD5 of the bytes. ltray's small files (and Tune's, on the same filesystem) are one request."""
    import hashlib

    import boto3

    storage = open_storage("s3://ltray-test/puts")
    small, large = b"{}" * 100, os.urandom(12 * 2**20)  # larger than pyarrow's 10 MiB part
    storage.write_bytes("small.json", small)
    storage.write_bytes("large.bin", large)
    fs, base = storage.tune_filesystem()
    with fs.open_output_stream(f"{base}/tune.json") as f:
        f.write(small)
    s3 = boto3.client("s3", endpoint_url=endpoint)

    def etag(rel: str) -> str:
        return s3.head_object(Bucket="ltray-test", Key=f"puts/{rel}")["ETag"].strip('"')

    assert etag("small.json") == etag("tune.json") == hashlib.md5(small).hexdigest()
    assert etag("large.bin").endswith("-2") and storage.read_bytes("large.bin") == large
    # a user's own setting is kept
    assert "allow_delayed_open=false" in filesystem_uri("s3://b/p?allow_delayed_open=false")
    assert filesystem_uri("gs://b/p") == "gs://b/p"


def test_locations(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_location("experiments") == str(tmp_path / "experiments")
    assert resolve_location(f"file://{tmp_path}/x") == str(tmp_path / "x")
    assert resolve_location("s3://bucket/prefix/") == "s3://bucket/prefix"
    for bad, message in (("ftp://host/x", "unsupported scheme 'ftp'"), ("s3:///nobucket", "names no bucket"),
                         ("", "empty location"), ("file://host/x", "names no host")):
        with pytest.raises(ConfigError, match=message):
            resolve_location(bad)


def test_journal_records_compaction_and_replay(storage):
    journal = Journal(storage, "actor/journal")
    assert journal.replay().records == []
    for i in range(5):
        journal.append({"i": i})
    assert len(storage.list_dir("actor/journal")) == 5
    assert journal.compact() and storage.list_dir("actor/journal") == ["s0000000000-0000000004.jsonl"]
    journal.append({"i": 5})
    again = Journal(storage, "actor/journal")
    assert [r["i"] for r in again.replay().records] == list(range(6))
    assert again.append({"i": 6}) == 6  # numbering continues after a restart


def test_journal_merges_segments_and_drops_crash_duplicates(storage):
    journal = Journal(storage, "j")
    journal.replay()
    for i in range(MAX_SEGMENTS + 1):
        journal.append({"i": i})
        journal.compact()
    assert len(storage.list_dir("j")) <= 2  # merged once there were MAX_SEGMENTS
    # a crash between writing a segment and deleting its records leaves both: replayed once
    seg = next(n for n in storage.list_dir("j") if n.startswith("s"))
    storage.write_text("j/r0000000000.json", storage.read_text(f"j/{seg}").splitlines()[0] + "\n")
    assert [r["i"] for r in Journal(storage, "j").replay().records] == list(range(MAX_SEGMENTS + 1))


def test_journal_skips_a_damaged_record_once(storage):
    journal = Journal(storage, "j")
    journal.replay()
    for i in range(3):
        journal.append({"i": i})
    storage.write_text("j/r0000000001.json", '{"seq": 1, "rec": {"i": 1}, "sha256": "0"}\n')  # edited
    storage.write_text("j/r0000000009.json", '{"seq": 9, "rec": {"i"')  # torn
    again = Journal(storage, "j")
    replay = again.replay()
    assert [r["i"] for r in replay.records] == [0, 2] and len(replay.problems) == 2
    assert all(storage.describe("j") in p for p in replay.problems)
    again.compact()
    final = Journal(storage, "j").replay()
    assert [r["i"] for r in final.records] == [0, 2] and final.problems == []  # reported once, then gone


@pytest.mark.parametrize("storage_uri, names", [
    ("s3://no-such-bucket/experiments", "s3://no-such-bucket/experiments/tiny"),
    ("s3:///experiments", "s3:///experiments"),
])
def test_a_bucket_that_cannot_be_used_is_one_line_and_exit_2(endpoint, tmp_path, capsys, storage_uri, names):
    import yaml

    from ltray.sweep.__main__ import main
    from tests.sweep_helpers import TINY_SWEEP

    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(yaml.safe_dump(TINY_SWEEP))
    capsys.readouterr()
    assert main([str(sweep_file), "--storage", storage_uri]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], err
    assert "Traceback" not in out + err
