"""`sluice check-config` and start-up failures: exit codes and `file:line: message` output."""

import os
import re
import subprocess
from pathlib import Path

import pytest

import sluice_harness as sh

SOURCE_DIR = Path(os.environ.get("SLUICE_SOURCE_DIR", Path(__file__).resolve().parents[2]))


def run(*args, timeout=30):
    return subprocess.run([sh.sluice_bin(), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


GOOD_CONFIG = """\
server:
  host: 127.0.0.1
  port: 0
auth: {client_keys_env: TEST_CLIENT_KEYS}
policies: [policy.yaml]
engine: {enabled: false}
providers:
  - name: primary
    base_url: https://localhost:9
    api_key_env: PRIMARY_KEY
    timeouts: {connect_ms: 1000, first_byte_ms: 2000, total_ms: 10000}
"""

GOOD_POLICY = """\
routes:
  - name: r1
    model: "*"
    targets:
      - {provider: primary, tier: 0}
      - {provider: local, tier: 1}
"""


def write(tmp_path: Path, config: str, policy: str = GOOD_POLICY) -> Path:
    (tmp_path / "policy.yaml").write_text(policy)
    path = tmp_path / "config.yaml"
    path.write_text(config)
    return path


def error_lines(stderr: str, file_name: str) -> list[tuple[int, str]]:
    """(line, message) for every `...file_name:LINE: message` line."""
    out = []
    for line in stderr.splitlines():
        m = re.search(re.escape(file_name) + r":(\d+): (.+)$", line)
        if m:
            out.append((int(m.group(1)), m.group(2)))
    return out


def test_good_config(tmp_path):
    cfg = write(tmp_path, GOOD_CONFIG)
    p = run("check-config", "--config", str(cfg))
    assert p.returncode == 0, p.stderr
    assert "ok" in p.stdout
    assert p.stderr.strip() == ""


def test_unknown_config_key_names_file_and_line(tmp_path):
    bad = GOOD_CONFIG.replace("  port: 0\n", "  port: 0\n  colour: blue\n")
    cfg = write(tmp_path, bad)
    p = run("check-config", "--config", str(cfg))
    assert p.returncode == 1, p
    errs = error_lines(p.stderr, "config.yaml")
    assert any(line == 4 and "colour" in msg for line, msg in errs), p.stderr


def test_out_of_range_and_several_errors_are_all_reported(tmp_path):
    bad = GOOD_CONFIG.replace("port: 0", "port: 70000").replace("connect_ms: 1000", "connect_ms: -1")
    cfg = write(tmp_path, bad)
    p = run("check-config", "--config", str(cfg))
    assert p.returncode == 1
    lines = {line for line, _ in error_lines(p.stderr, "config.yaml")}
    assert 3 in lines, p.stderr    # server.port
    assert 11 in lines, p.stderr   # providers[0].timeouts


def test_bad_policy_names_policy_file_and_line(tmp_path):
    bad = GOOD_POLICY.replace("{provider: local, tier: 1}", "{provider: nowhere, tier: 1}")
    cfg = write(tmp_path, GOOD_CONFIG, bad)
    p = run("check-config", "--config", str(cfg))
    assert p.returncode == 1
    errs = error_lines(p.stderr, "policy.yaml")
    assert any(line == 6 and "nowhere" in msg for line, msg in errs), p.stderr


def test_policy_yaml_syntax_error(tmp_path):
    cfg = write(tmp_path, GOOD_CONFIG, "routes:\n  - name: r1\n    model: [unclosed\n")
    p = run("check-config", "--config", str(cfg))
    assert p.returncode == 1
    assert error_lines(p.stderr, "policy.yaml"), p.stderr


def test_missing_policy_file(tmp_path):
    cfg = write(tmp_path, GOOD_CONFIG.replace("[policy.yaml]", "[absent.yaml]"))
    p = run("check-config", "--config", str(cfg))
    assert p.returncode == 1
    assert "absent.yaml" in p.stderr


def test_missing_config_file(tmp_path):
    p = run("check-config", "--config", str(tmp_path / "nope.yaml"))
    assert p.returncode == 1
    assert "nope.yaml" in p.stderr


def test_serve_with_bad_config_exits_1(tmp_path):
    cfg = write(tmp_path, GOOD_CONFIG.replace("  port: 0\n", "  port: 0\n  colour: blue\n"))
    p = run("serve", "--config", str(cfg), "--port", "0")
    assert p.returncode == 1
    assert error_lines(p.stderr, "config.yaml"), p.stderr


def test_usage_errors_exit_2():
    assert run("serve").returncode == 2
    assert run("frobnicate").returncode == 2


def shipped_configs():
    return sorted((SOURCE_DIR / "config").glob("**/*.yaml"))


@pytest.mark.parametrize("path", shipped_configs(), ids=lambda p: str(p.relative_to(SOURCE_DIR)))
def test_shipped_configs_pass_check_config(path):
    p = run("check-config", "--config", str(path))
    assert p.returncode == 0, p.stderr
