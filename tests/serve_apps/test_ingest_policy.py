"""The ingest policy refuses unsafe sources with typed errors and never leaks credentials."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import InvalidInputError
from serve_apps.ingest_policy import (
    ForbiddenHostError,
    ForbiddenSchemeError,
    IngestPolicy,
    PathEscapeError,
    PolicyError,
    check_source,
    redact,
)

OPEN = IngestPolicy(allow_private_hosts=True)
CLOSED = IngestPolicy()  # the default: private and loopback hosts refused


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """root/clips/a.mp4, a folder outside the root with secret.mp4, and a second root."""
    root = tmp_path / "root"
    (root / "clips").mkdir(parents=True)
    (root / "clips" / "a.mp4").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"x")
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.mp4").write_bytes(b"x")
    return {"root": root.resolve(), "outside": outside.resolve(), "other": other.resolve()}


def _policy(*roots: Path, **kw) -> IngestPolicy:
    return IngestPolicy(allowed_roots=tuple(str(r) for r in roots), **kw)


@pytest.mark.parametrize(
    "url",
    ["rtsp://cam.example.com:554/live", "http://example.com/a.mp4?x=1", "RTSP://cam.example.com/x", "srt://8.8.8.8:9000"],
)
def test_allowed_urls_pass_unchanged(url):
    assert check_source(url, OPEN) == url
    assert check_source(url, CLOSED) == url


@pytest.mark.parametrize(
    "source",
    ["ftp://example.com/a.mp4", "javascript:alert(1)", "data:video/mp4;base64,AAAA", "gopher://example.com/", "file:///etc/passwd"],
)
def test_forbidden_schemes(source):
    with pytest.raises(ForbiddenSchemeError) as info:
        check_source(source, OPEN)
    assert isinstance(info.value, PolicyError)
    assert isinstance(info.value, InvalidInputError) and isinstance(info.value, ValueError)


def test_plain_path_refused_without_roots(tree):
    with pytest.raises(ForbiddenSchemeError):
        check_source(str(tree["root"] / "clips" / "a.mp4"), OPEN)


def test_file_inside_root_in_all_forms(tree):
    policy = _policy(tree["root"])
    want = str(tree["root"] / "clips" / "a.mp4")
    assert check_source(want, policy) == want
    assert check_source(f"file://{want}", policy) == want
    assert check_source("clips/a.mp4", policy) == want  # relative to the first root
    assert check_source("./clips/a.mp4", policy) == want
    # Missing files are the media reader's business; only the location is checked here.
    assert check_source("clips/missing.mp4", policy) == str(tree["root"] / "clips" / "missing.mp4")


def test_second_root_accepts_absolute_paths(tree):
    policy = _policy(tree["root"], tree["other"])
    assert check_source(str(tree["other"] / "b.mp4"), policy) == str(tree["other"] / "b.mp4")


@pytest.mark.parametrize("rel", ["../outside/secret.mp4", "clips/../clips/a.mp4", "clips/.."])
def test_dotdot_refused_even_inside_root(tree, rel):
    policy = _policy(tree["root"])
    with pytest.raises(PathEscapeError):
        check_source(rel, policy)
    with pytest.raises(PathEscapeError):
        check_source(f"{tree['root']}/{rel}", policy)


def test_dotdot_in_file_url_refused_even_percent_encoded(tree):
    policy = _policy(tree["root"])
    with pytest.raises(PathEscapeError):
        check_source(f"file://{tree['root']}/%2e%2e/outside/secret.mp4", policy)


def test_absolute_path_outside_root(tree):
    policy = _policy(tree["root"])
    for source in (str(tree["outside"] / "secret.mp4"), "/etc/passwd", f"file://{tree['outside']}/secret.mp4"):
        with pytest.raises(PathEscapeError):
            check_source(source, policy)


def test_symlinked_file_escaping_root(tree):
    link = tree["root"] / "clips" / "evil.mp4"
    os.symlink(tree["outside"] / "secret.mp4", link)
    policy = _policy(tree["root"])
    for source in (str(link), "clips/evil.mp4", f"file://{link}"):
        with pytest.raises(PathEscapeError):
            check_source(source, policy)


def test_dangling_symlink_escaping_root(tree):
    os.symlink(tree["outside"] / "nope.mp4", tree["root"] / "dangling.mp4")
    with pytest.raises(PathEscapeError):
        check_source("dangling.mp4", _policy(tree["root"]))


def test_symlinked_directory_component_escaping_root(tree):
    os.symlink(tree["outside"], tree["root"] / "linkdir", target_is_directory=True)
    policy = _policy(tree["root"])
    with pytest.raises(PathEscapeError):
        check_source("linkdir/secret.mp4", policy)
    with pytest.raises(PathEscapeError):
        check_source(str(tree["root"] / "linkdir" / "secret.mp4"), policy)


def test_symlink_within_roots_is_fine(tree):
    os.symlink(tree["root"] / "clips" / "a.mp4", tree["root"] / "alias.mp4")
    os.symlink(tree["other"], tree["root"] / "to_other", target_is_directory=True)
    policy = _policy(tree["root"], tree["other"])
    assert check_source("alias.mp4", policy) == str(tree["root"] / "clips" / "a.mp4")
    assert check_source("to_other/b.mp4", policy) == str(tree["other"] / "b.mp4")


def test_symlink_loop_is_a_policy_error(tree):
    os.symlink(tree["root"] / "loop_b", tree["root"] / "loop_a")
    os.symlink(tree["root"] / "loop_a", tree["root"] / "loop_b")
    with pytest.raises(PolicyError):
        check_source("loop_a", _policy(tree["root"]))


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://127.0.0.1/x",
        "rtsp://localhost:554/x",
        "http://LOCALHOST./x",
        "http://10.0.0.5/x",
        "http://192.168.1.2/x",
        "http://169.254.1.1/latest/meta-data",
        "http://[::1]:8080/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "http://127.1/x",
        "http://2130706433/x",
        "http://user:secret@127.0.0.1/x",
    ],
)
def test_private_hosts_blocked_only_when_configured(url):
    assert check_source(url, OPEN) == url
    with pytest.raises(ForbiddenHostError) as info:
        check_source(url, CLOSED)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("url", ["rtsp://8.8.8.8/x", "rtsp://cam.example.com/live", "http://[2001:4860:4860::8888]/x", "http://cafe.face/x"])
def test_public_hosts_allowed_when_private_blocked(url):
    assert check_source(url, CLOSED) == url


@pytest.mark.parametrize(
    "source",
    ["", "rtsp://host/a\x00b", "rtsp://host/a\nb", "clips/a\rb.mp4", "rtsp://" + "a" * 3000, " rtsp://host/x", "rtsp:///x", "http:foo", "http://host:99999/x", "http://[::1/x", "http://a b/x"],
)
def test_malformed_sources(source, tree):
    with pytest.raises(PolicyError) as info:
        check_source(source, _policy(tree["root"]))
    message = str(info.value)
    assert "\n" not in message and "\x00" not in message and len(message) < 400
    assert info.value.reason


def test_percent_encoded_nul_in_file_url(tree):
    with pytest.raises(PolicyError):
        check_source(f"file://{tree['root']}/a%00.mp4", _policy(tree["root"]))


def test_non_string_source():
    with pytest.raises(PolicyError):
        check_source(None, OPEN)  # type: ignore[arg-type]


def test_policy_rejects_relative_or_blank_roots():
    for root in ("", "relative/dir"):
        with pytest.raises(InvalidInputError):
            IngestPolicy(allowed_roots=(root,))


def test_credentials_never_in_errors():
    policy = IngestPolicy(allowed_schemes=("http",))
    with pytest.raises(ForbiddenSchemeError) as info:
        check_source("rtsp://user:secret@host/x?token=hunter2", policy)
    message = str(info.value)
    assert "secret" not in message and "hunter2" not in message and "user" not in message
    assert "***@host/x" in message and info.value.input.startswith("rtsp://***@")
    with pytest.raises(PolicyError) as info:
        check_source("rtsp://user:secret@/x", policy)
    assert "secret" not in str(info.value)


def test_redact():
    assert redact("rtsp://user:pass@cam:554/live") == "rtsp://***@cam:554/live"
    assert redact("https://h/p?token=abc&x=1&flag#frag") == "https://h/p?token=***&x=***&***#***"
    assert redact("https://u@h/p?") == "https://***@h/p?"
    assert redact("/data/clips/a?.mp4") == "/data/clips/a?.mp4"  # plain paths unchanged
    assert redact("rtsp://cam/live") == "rtsp://cam/live"
    assert redact("rtsp://u:pa/ss@cam/live") == "rtsp://***@cam/live"  # raw "/" in a password


def test_password_with_raw_slash_not_leaked():
    with pytest.raises(PolicyError) as info:
        check_source("rtsp://user:pa/ss@cam/x", OPEN)
    assert "pa" not in str(info.value) and "ss" not in str(info.value)


def test_urls_inside_error_texts_are_redacted():
    from serve_apps.ingest_policy import redact_text, stream_error_for_client

    text = ("TruncatedMediaError: http://user:pass@host:9/c.mp4?token=hunter2: decoding failed "
            "(from 'rtsp://admin:pw@cam/live')")
    out = redact_text(text)
    assert "pass" not in out and "hunter2" not in out and "pw" not in out and "admin" not in out
    assert "http://***@host:9/c.mp4?token=***" in out and "rtsp://***@cam/live" in out
    assert redact_text("no url here: /data/a.mp4") == "no url here: /data/a.mp4"
    # Every way a network source fails reads the same to the client (no port-scan oracle).
    refused = stream_error_for_client("SourceConnectionError: tcp://10.0.0.5:6379: cannot connect: Connection refused",
                                      "tcp://10.0.0.5:6379")
    garbage = stream_error_for_client("SourceConnectionError: tcp://10.0.0.5:22: stream data could not be read: "
                                      "Invalid data found", "tcp://10.0.0.5:22")
    assert refused.replace("6379", "N") == garbage.replace("22", "N")
    assert "refused" not in refused and "Invalid" not in garbage
