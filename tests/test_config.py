"""IMDSConfig.resolve: each setting from each level, precedence, sources, and every bad value."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imdscreds.config import IPV4_ENDPOINT, IPV6_ENDPOINT, IMDSConfig
from imdscreds.errors import ConfigError

# field, env var, config key, raw text, resolved value
SETTINGS = [
    ("endpoint", "AWS_EC2_METADATA_SERVICE_ENDPOINT", "ec2_metadata_service_endpoint",
     "http://10.0.0.1:8080/", "http://10.0.0.1:8080"),
    ("endpoint_mode", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
     "ec2_metadata_service_endpoint_mode", "ipv6", "IPv6"),
    ("disabled", "AWS_EC2_METADATA_DISABLED", "disable_ec2_metadata", "TRUE", True),
    ("v1_disabled", "AWS_EC2_METADATA_V1_DISABLED", "ec2_metadata_v1_disabled", "True", True),
    ("timeout", "AWS_METADATA_SERVICE_TIMEOUT", "metadata_service_timeout", "2.5", 2.5),
    ("attempts", "AWS_METADATA_SERVICE_NUM_ATTEMPTS", "metadata_service_num_attempts", "5", 5),
    ("instance_profile_name", "AWS_EC2_INSTANCE_PROFILE_NAME", "ec2_instance_profile_name",
     " my-role ", "my-role"),
]  # fmt: skip
SETTING_IDS = [row[0] for row in SETTINGS]

# field, a second valid raw value and what it resolves to (to tell levels apart)
OTHER_VALUES: dict[str, tuple[str, Any]] = {
    "endpoint": ("https://imds.example:443", "https://imds.example:443"),
    "endpoint_mode": ("IPV4", "IPv4"),
    "disabled": ("false", False),
    "v1_disabled": ("FALSE", False),
    "timeout": ("0.25", 0.25),
    "attempts": ("1", 1),
    "instance_profile_name": ("other-role", "other-role"),
}

DEFAULTS = {
    "endpoint": IPV4_ENDPOINT,
    "endpoint_mode": "IPv4",
    "disabled": False,
    "v1_disabled": False,
    "timeout": 1.0,
    "attempts": 3,
    "instance_profile_name": None,
    "token_ttl": 21600,
}

# field, bad raw value, words of the valid set that the message must name
BAD_VALUES = [
    ("endpoint", "not a uri", "invalid uri character"),
    ("endpoint", "http://host\tname", "invalid uri character"),
    ("endpoint", "ftp://169.254.169.254", "http or https"),
    ("endpoint", "169.254.169.254", "http or https"),
    ("endpoint", "http://user:pw@169.254.169.254", "http://169.254.169.254"),
    ("endpoint", "http://", "http://169.254.169.254"),
    ("endpoint", "http://host:99999", "http://169.254.169.254"),
    ("endpoint", "http://fd00:ec2::254", "http://[fd00:ec2::254]"),
    ("endpoint", "http://[fd00:zz::1]", "http://[fd00:ec2::254]"),
    ("endpoint", "http://host/?q=1", "http://169.254.169.254"),
    ("endpoint", "http://hóst", "invalid uri character"),
    ("endpoint_mode", "IPv7", "IPv4 and IPv6"),
    ("endpoint_mode", "", "IPv4 and IPv6"),
    ("disabled", "yes", "true or false"),
    ("disabled", "1", "true or false"),
    ("v1_disabled", "no", "true or false"),
    ("timeout", "0", "positive number"),
    ("timeout", "-1", "positive number"),
    ("timeout", "soon", "positive number"),
    ("timeout", "nan", "positive number"),
    ("timeout", "inf", "positive number"),
    ("attempts", "0", ">= 1"),
    ("attempts", "2.5", ">= 1"),
    ("attempts", "three", ">= 1"),
    ("instance_profile_name", "", "instance profile name"),
    ("instance_profile_name", "   ", "instance profile name"),
    ("instance_profile_name", "role/../../x", "instance profile name"),
]
BAD_IDS = [f"{name}={value!r}" for name, value, _ in BAD_VALUES]
# An INI value cannot hold surrounding whitespace or a bare tab, so those rows are env/argument only.
BAD_IN_FILE = [row for row in BAD_VALUES if row[1] == row[1].strip() and "\t" not in row[1]]
BAD_IN_FILE_IDS = [f"{name}={value!r}" for name, value, _ in BAD_IN_FILE]
ENV_VAR = {row[0]: row[1] for row in SETTINGS}
CONFIG_KEY = {row[0]: row[2] for row in SETTINGS}


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config"
    path.write_text(text, encoding="utf-8")
    return path


def shown(raw: str) -> str:
    """How a message quotes a value: control characters escaped, so a message stays one line."""
    return raw if raw.isprintable() else repr(raw)[1:-1]


def resolve(tmp_path: Path, environ: dict[str, str] | None = None, /, **kwargs: Any) -> IMDSConfig:
    """Resolve with no config file unless one is named, so the real ~/.aws/config never leaks in."""
    env = {"AWS_CONFIG_FILE": str(tmp_path / "absent"), **(environ or {})}
    return IMDSConfig.resolve(environ=env, **kwargs)


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    config = resolve(tmp_path)
    for name, value in DEFAULTS.items():
        assert getattr(config, name) == value
        assert config.source_of(name) == "default"
    assert config.token_url == "http://169.254.169.254/latest/api/token"


@pytest.mark.parametrize(("name", "env_var", "key", "raw", "expected"), SETTINGS, ids=SETTING_IDS)
def test_each_setting_from_the_environment(
    tmp_path: Path, name: str, env_var: str, key: str, raw: str, expected: object
) -> None:
    config = resolve(tmp_path, {env_var: raw})
    assert getattr(config, name) == expected
    assert config.source_of(name) == f"env {env_var}"


@pytest.mark.parametrize(("name", "env_var", "key", "raw", "expected"), SETTINGS, ids=SETTING_IDS)
def test_each_setting_from_the_default_profile(
    tmp_path: Path, name: str, env_var: str, key: str, raw: str, expected: object
) -> None:
    path = write_config(tmp_path, f"[default]\n{key} = {raw}\n")
    config = resolve(tmp_path, {"AWS_CONFIG_FILE": str(path)})
    assert getattr(config, name) == expected
    assert config.source_of(name) == f"profile default in {path} ({key})"


@pytest.mark.parametrize(("name", "env_var", "key", "raw", "expected"), SETTINGS, ids=SETTING_IDS)
def test_each_setting_from_an_argument_string(
    tmp_path: Path, name: str, env_var: str, key: str, raw: str, expected: object
) -> None:
    config = resolve(tmp_path, **{name: raw})
    assert getattr(config, name) == expected
    assert config.source_of(name) == "argument"


def test_arguments_of_python_types_are_accepted(tmp_path: Path) -> None:
    config = resolve(tmp_path, disabled=True, v1_disabled=True, timeout=3, attempts=7, token_ttl=60)
    assert (config.disabled, config.v1_disabled, config.timeout, config.attempts) == (
        True,
        True,
        3.0,
        7,
    )
    assert isinstance(config.timeout, float)
    assert config.token_ttl == 60


@pytest.mark.parametrize(("name", "env_var", "key", "raw", "expected"), SETTINGS, ids=SETTING_IDS)
def test_argument_beats_environment_beats_profile(
    tmp_path: Path, name: str, env_var: str, key: str, raw: str, expected: object
) -> None:
    other_raw, other = OTHER_VALUES[name]
    path = write_config(tmp_path, f"[default]\n{key} = {other_raw}\n")
    assert getattr(resolve(tmp_path, {"AWS_CONFIG_FILE": str(path)}), name) == other
    env = {"AWS_CONFIG_FILE": str(path), env_var: raw}
    from_env = resolve(tmp_path, env)
    assert getattr(from_env, name) == expected
    assert from_env.source_of(name) == f"env {env_var}"
    from_argument = resolve(tmp_path, {**env, env_var: other_raw}, **{name: raw})
    assert getattr(from_argument, name) == expected
    assert from_argument.source_of(name) == "argument"


def test_endpoint_at_any_level_beats_mode_at_any_level(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[default]\nec2_metadata_service_endpoint = http://10.1.2.3\n")
    config = resolve(
        tmp_path,
        {"AWS_CONFIG_FILE": str(path), "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"},
        endpoint_mode="IPv6",
    )
    assert config.endpoint == "http://10.1.2.3"
    assert config.endpoint_mode == "IPv6"
    assert config.source_of("endpoint").startswith("profile default in")


def test_a_bad_mode_is_reported_even_when_an_endpoint_overrides_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="`IPv5` is not a valid endpoint mode"):
        resolve(tmp_path, endpoint="http://10.1.2.3", endpoint_mode="IPv5")


def test_endpoint_from_mode_records_where_the_mode_came_from(tmp_path: Path) -> None:
    config = resolve(tmp_path, {"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"})
    assert config.endpoint == IPV6_ENDPOINT
    assert config.token_url == "http://[fd00:ec2::254]/latest/api/token"
    assert config.source_of("endpoint") == (
        "endpoint_mode IPv6 (env AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE)"
    )


# An empty variable is "unset" (as in the SDKs), except a role name, where blank is an error.
BAD_IN_ENV = [row for row in BAD_VALUES if row[1] != "" or row[0] == "instance_profile_name"]
BAD_IN_ENV_IDS = [f"{name}={value!r}" for name, value, _ in BAD_IN_ENV]


@pytest.mark.parametrize(("name", "raw", "valid"), BAD_IN_ENV, ids=BAD_IN_ENV_IDS)
def test_bad_value_from_environment_names_setting_value_source_and_valid_set(
    tmp_path: Path, name: str, raw: str, valid: str
) -> None:
    env_var = ENV_VAR[name]
    with pytest.raises(ConfigError) as raised:
        resolve(tmp_path, {env_var: raw})
    message = str(raised.value)
    assert env_var in message
    assert f"`{shown(raw)}`" in message
    assert f"from env {env_var}" in message
    assert valid in message
    assert raised.value.setting == env_var
    assert raised.value.source == f"env {env_var}"


@pytest.mark.parametrize(
    ("name", "env_var"),
    [(row[0], row[1]) for row in SETTINGS if row[0] != "instance_profile_name"],
)
def test_empty_environment_variable_counts_as_unset(
    tmp_path: Path, name: str, env_var: str
) -> None:
    config = resolve(tmp_path, {env_var: ""})
    assert config.source_of(name) != f"env {env_var}"
    assert getattr(config, name) == getattr(resolve(tmp_path), name)


@pytest.mark.parametrize(("name", "raw", "valid"), BAD_IN_FILE, ids=BAD_IN_FILE_IDS)
def test_bad_value_from_profile_names_key_value_file_and_valid_set(
    tmp_path: Path, name: str, raw: str, valid: str
) -> None:
    key = CONFIG_KEY[name]
    path = write_config(tmp_path, f"[profile ops]\n{key} = {raw}\n")
    with pytest.raises(ConfigError) as raised:
        resolve(tmp_path, {"AWS_CONFIG_FILE": str(path), "AWS_PROFILE": "ops"})
    message = str(raised.value)
    source = f"profile ops in {path} ({key})"
    assert f"`{raw}`" in message
    assert source in message
    assert valid in message
    assert (raised.value.setting, raised.value.source) == (key, source)


@pytest.mark.parametrize(("name", "raw", "valid"), BAD_VALUES, ids=BAD_IDS)
def test_bad_value_from_argument_names_argument_value_and_valid_set(
    tmp_path: Path, name: str, raw: str, valid: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve(tmp_path, **{name: raw})
    message = str(raised.value)
    assert f"({name}, from argument)" in message
    assert valid in message
    assert (raised.value.setting, raised.value.source) == (name, "argument")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("disabled", 1),
        ("timeout", True),
        ("timeout", 0.0),
        ("attempts", 2.0),
        ("attempts", False),
        ("token_ttl", 0),
        ("token_ttl", 21601),
        ("endpoint", 42),
    ],
)
def test_bad_python_typed_arguments_are_rejected(tmp_path: Path, name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"`{value}`"):
        resolve(tmp_path, **{name: value})


def test_control_characters_are_escaped_in_messages(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve(tmp_path, {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://a\nb"})
    assert "\n" not in str(raised.value)
    assert "`http://a\\nb`" in str(raised.value)


def test_a_nested_block_where_a_value_belongs_is_an_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[default]\nec2_metadata_service_endpoint =\n  host = x\n")
    with pytest.raises(ConfigError, match="is not a URL string"):
        resolve(tmp_path, {"AWS_CONFIG_FILE": str(path)})


def test_blank_instance_profile_name_in_config_file_is_an_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[default]\nec2_instance_profile_name =\n")
    with pytest.raises(ConfigError, match="ec2_instance_profile_name"):
        resolve(tmp_path, {"AWS_CONFIG_FILE": str(path)})


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://[fd00:ec2::254]",
        "http://[fd00:ec2::254]:80/",
        "https://imds.internal",
        "http://127.0.0.1:8080",
        "http://proxy.local/imds/",
    ],
)
def test_valid_endpoints_are_kept_without_trailing_slash(tmp_path: Path, endpoint: str) -> None:
    config = resolve(tmp_path, endpoint=endpoint)
    assert config.endpoint == endpoint.rstrip("/")
    assert config.url("/latest/meta-data/") == endpoint.rstrip("/") + "/latest/meta-data/"


def test_aws_profile_selects_the_named_profile(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "[default]\nmetadata_service_timeout = 9\n\n[profile ops]\nmetadata_service_timeout = 4\n",
    )
    config = resolve(tmp_path, {"AWS_CONFIG_FILE": str(path), "AWS_PROFILE": "ops"})
    assert config.timeout == 4.0
    assert config.source_of("timeout") == f"profile ops in {path} (metadata_service_timeout)"


def test_aws_default_profile_is_used_when_aws_profile_is_unset(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[profile legacy]\nmetadata_service_num_attempts = 6\n")
    config = resolve(tmp_path, {"AWS_CONFIG_FILE": str(path), "AWS_DEFAULT_PROFILE": "legacy"})
    assert config.attempts == 6


def test_profile_argument_beats_aws_profile(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "[profile a]\nmetadata_service_num_attempts = 2\n"
        "[profile b]\nmetadata_service_num_attempts = 4\n",
    )
    config = resolve(tmp_path, {"AWS_CONFIG_FILE": str(path), "AWS_PROFILE": "a"}, profile="b")
    assert config.attempts == 4


def test_a_profile_missing_from_the_file_contributes_nothing(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[default]\nmetadata_service_num_attempts = 9\n")
    config = resolve(tmp_path, {"AWS_CONFIG_FILE": str(path), "AWS_PROFILE": "nope"})
    assert config.attempts == 3
    assert config.source_of("attempts") == "default"


def test_config_file_argument_beats_aws_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[default]\nec2_metadata_v1_disabled = true\n")
    config = resolve(tmp_path, {"AWS_CONFIG_FILE": str(tmp_path / "absent")}, config_file=path)
    assert config.v1_disabled is True


def test_a_missing_config_file_means_defaults(tmp_path: Path) -> None:
    config = IMDSConfig.resolve(environ={}, config_file=tmp_path / "nope" / "config")
    assert config.endpoint == IPV4_ENDPOINT


def test_an_unreadable_config_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        IMDSConfig.resolve(environ={"AWS_CONFIG_FILE": str(tmp_path)})
    assert str(tmp_path) in str(raised.value)
    assert "cannot be read" in str(raised.value)
    assert raised.value.source == "env AWS_CONFIG_FILE"


def test_an_unparsable_config_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    path = write_config(tmp_path, "metadata_service_timeout = 3\n")  # no section header
    with pytest.raises(ConfigError) as raised:
        IMDSConfig.resolve(environ={}, config_file=path)
    assert str(path) in str(raised.value)
    assert "cannot be parsed" in str(raised.value)
    assert (raised.value.setting, raised.value.source) == ("config_file", "argument")


def test_environ_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "8")
    assert IMDSConfig.resolve().attempts == 8


def test_url_joins_paths_and_refuses_relative_ones(tmp_path: Path) -> None:
    config = resolve(tmp_path, endpoint="http://127.0.0.1:9/")
    assert (
        config.url("/latest/meta-data/iam/info") == "http://127.0.0.1:9/latest/meta-data/iam/info"
    )
    with pytest.raises(ValueError, match="must start with '/'"):
        config.url("latest/api/token")


def test_config_is_frozen_hashable_and_sources_are_read_only(tmp_path: Path) -> None:
    config = resolve(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.timeout = 5.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.sources["timeout"] = "x"  # type: ignore[index]
    assert hash(config) == hash(resolve(tmp_path))
    assert config == resolve(tmp_path)


def test_source_of_an_unknown_setting_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no setting 'region'"):
        resolve(tmp_path).source_of("region")


def test_direct_construction_is_validated_and_normalised() -> None:
    config = IMDSConfig(
        endpoint="http://127.0.0.1:8080/",
        endpoint_mode="ipv4",
        disabled=False,
        v1_disabled=True,
        timeout=2,
        attempts=1,
        instance_profile_name=None,
    )
    assert (config.endpoint, config.endpoint_mode, config.timeout) == (
        "http://127.0.0.1:8080",
        "IPv4",
        2.0,
    )
    assert config.source_of("endpoint") == "argument"
    with pytest.raises(ConfigError, match="attempts"):
        dataclasses.replace(config, attempts=0)


def case_variants(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from((c.lower(), c.upper())) for c in word)).map("".join)


@given(st.sampled_from(["ipv4", "ipv6"]).flatmap(case_variants))
def test_any_case_variant_of_a_mode_resolves_to_its_canonical_spelling(mode: str) -> None:
    config = IMDSConfig.resolve(
        environ={"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": mode}, config_file="/nonexistent/config"
    )
    expected = "IPv6" if mode.lower() == "ipv6" else "IPv4"
    assert config.endpoint_mode == expected
    assert config.endpoint == (IPV6_ENDPOINT if expected == "IPv6" else IPV4_ENDPOINT)
