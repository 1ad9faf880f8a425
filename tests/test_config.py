import logging
from dataclasses import fields
from pathlib import Path

import pytest

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.sizes import ObjectSizes
from s3dlio_ray._internal.model.units import parse_size
from s3dlio_ray._internal.settings.load import load_settings, parse_assignment
from s3dlio_ray._internal.settings.schema import ENVIRONMENT, Settings
from s3dlio_ray._internal.settings.values import GROUPS


@pytest.fixture
def workload(tmp_path):
    def write(text: str):
        path = tmp_path / "w.yaml"
        path.write_text(text)
        return path

    return write


def test_defaults_without_a_file():
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.concurrency_mode == "auto"
    assert settings.part_size == 10 * 1024 * 1024


def test_yaml_values_are_typed(workload):
    path = workload("objects: 5\nobject_size: 4KiB\nconcurrency: 16\nphases: [put, get]\n")
    settings = load_settings(path, environ={})
    assert (settings.objects, settings.object_size) == (5, ObjectSizes.fixed(4096))
    assert settings.concurrency == 16 and settings.concurrency_mode == "fixed"
    assert settings.phase_names == ("put", "get")


def test_precedence_command_line_over_environment_over_yaml(workload):
    path = workload("concurrency: 16\npart_size_mb: 20\nhttp2: false\ntarget_gbps: 1\n")
    env = {
        "S3DLIO_CONCURRENCY": "32",
        "S3DLIO_PART_SIZE_MB": "30",
        "S3DLIO_ENABLE_HTTP2": "1",
        "S3DLIO_TARGET_GBPS": "2.5",
    }
    settings = load_settings(path, {"concurrency": "64"}, environ=env)
    assert settings.concurrency == 64
    assert settings.part_size_mb == 30
    assert settings.http2 is True
    assert settings.target_gbps == 2.5
    assert load_settings(path, environ={}).part_size_mb == 20


def test_phases_may_repeat_and_pause(workload):
    path = workload("phases: [put, sleep, get, sleep, get, cleanup]\nsleep_s: 0.5\n")
    settings = load_settings(path, environ={})
    assert settings.phase_names == ("put", "sleep", "get", "sleep", "get", "cleanup")
    assert settings.sleep_s == 0.5


def test_target_mode_from_environment():
    settings = load_settings(environ={"S3DLIO_TARGET_GBPS": "5"})
    assert settings.concurrency_mode == "target"


def test_endpoint_from_aws_environment():
    env = {"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "http://b:2"}
    assert load_settings(environ=env).endpoint == ("http://b:2",)
    assert load_settings(environ={"AWS_ENDPOINT_URL": "http://a:1/"}).endpoint == ("http://a:1",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://a:9000", ("http://a:9000",)),
        (["http://a:9000", "https://b"], ("http://a:9000", "https://b")),
        ("http://a:9000, http://b:9000", ("http://a:9000", "http://b:9000")),
        ("http://host{1...3}:9000", tuple(f"http://host{i}:9000" for i in (1, 2, 3))),
        (
            "http://h{08...10}:{1...2}",
            (
                "http://h08:1",
                "http://h08:2",
                "http://h09:1",
                "http://h09:2",
                "http://h10:1",
                "http://h10:2",
            ),
        ),
    ],
)
def test_endpoint_takes_one_url_a_list_or_warps_ranges(value, expected):
    assert load_settings({"endpoint": value}, environ={}).endpoint == expected


def test_a_repeated_endpoint_flag_replaces_the_workloads_list(tmp_path):
    from s3dlio_ray._cli import _parser

    parser, _ = _parser()
    args = parser.parse_args(
        ["run", "w.yaml", "--endpoint", "http://x:1", "--endpoint", "http://y:2"]
    )
    settings = load_settings(
        {"endpoint": ["http://a:9", "http://b:9", "http://c:9"]},
        {"endpoint": args.endpoint},
        environ={},
    )
    assert settings.endpoint == ("http://x:1", "http://y:2")
    # One flag with a list, as `lab up` exports AWS_ENDPOINT_URL_S3: the same two; the same
    # for source addresses.
    listed = parser.parse_args(
        ["run", "w.yaml", "--endpoint", "http://x:1,http://y:2", "--bind-addresses", "a,b c"]
    )
    flags = {"endpoint": listed.endpoint, "bind_addresses": listed.bind_addresses}
    listed_settings = load_settings({}, flags, environ={})
    assert listed_settings.endpoint == ("http://x:1", "http://y:2")
    assert listed_settings.bind_addresses == ("a", "b", "c")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["http://a:1", "http://a:1"], "http://a:1 is listed twice"),
        ("http://h{3...1}:1", "counts down"),
        ("http://h{1...2000}:1", "at most 1024 endpoints"),
        ([], "expected an http:// or https:// URL"),
        (["http://a:1", "ftp://b"], "expected an http:// or https:// URL"),
    ],
)
def test_a_bad_endpoint_list_is_refused_in_one_line(value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings({"endpoint": value}, environ={})
    assert "\n" not in str(caught.value)


def test_the_boto3_baseline_refuses_what_it_cannot_do():
    with pytest.raises(ConfigError, match="cannot choose its source address"):
        load_settings({"client": "boto3", "bind_addresses": ["127.0.0.2"]}, environ={})
    with pytest.raises(ConfigError, match="talks to one endpoint"):
        load_settings({"client": "boto3", "endpoint": ["http://a:1", "http://b:1"]}, environ={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("objectz: 5\n", "unknown key 'objectz'; did you mean objects or object_size?"),
        ("objects: many\n", "objects: expected an integer in 1..1000000000000 (got 'many')"),
        ("objects: 0\n", "objects: expected an integer in 1..1000000000000"),
        ("part_size_mb: 4\n", "part_size_mb: expected an integer in 5..5120"),
        ("part_size_mb: 6000\n", "part_size_mb: expected an integer in 5..5120"),
        ("concurrency: lots\n", "concurrency: expected auto or an integer in 1..4096"),
        ("http2: maybe\n", "http2: expected true or false"),
        ("profile: fast\n", "profile: expected one of auto, aws, high-performance"),
        ("phases: [put, scan]\n", "phases: unknown phase 'scan'"),
        ("object_size: ten\n", "object_size: expected a size such as 10MiB"),
        ("object_size: normal:1KiB..2KiB\n", "object_size: distribution must be one of fixed"),
        ("object_size: uniform:2KiB..1KiB\n", "object_size: max (1024) must not be less than"),
        ("object_size: log-uniform:0..1KiB\n", "object_size: log-uniform needs min >= 1"),
        ("object_size: {distribution: uniform, min: 1}\n", "object_size: expected a size (10MiB)"),
        ("object_size: uniform:1KiB\n", "object_size: expected a size (10MiB), DISTRIBUTION"),
        ("endpoint: minio:9000\n", "endpoint: expected an http:// or https:// URL"),
        ("bucket: My_Bucket\n", "bucket: expected 3-63 lowercase letters"),
        ("- a\n- b\n", "expected a mapping of settings"),
        ("objects: [\n", "not valid YAML at line"),
    ],
)
def test_bad_values_are_refused_with_one_line_naming_the_key(workload, text, message):
    with pytest.raises(ConfigError) as info:
        load_settings(workload(text), environ={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="environment variable S3DLIO_CONCURRENCY: concurrency"):
        load_settings(environ={"S3DLIO_CONCURRENCY": "-3"})


def test_min_above_max_is_refused():
    with pytest.raises(ConfigError, match="min_concurrency"):
        load_settings(overrides={"min_concurrency": 64, "max_concurrency": 32}, environ={})


def test_missing_file_is_one_line():
    with pytest.raises(ConfigError, match=r"cannot read workload file /nonexistent\.yaml"):
        load_settings("/nonexistent.yaml", environ={})


def test_io_uring_is_accepted_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        settings = load_settings(environ={"S3DLIO_ENABLE_IO_URING": "true"})
    assert settings.io_uring is True
    assert "has no effect" in caplog.text


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10MiB", 10 * 2**20),
        ("10 MB", 10_000_000),
        ("4k", 4000),
        ("4KiB", 4096),
        ("123", 123),
        ("1.5GiB", int(1.5 * 2**30)),
        (77, 77),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_shipped_quick_config_loads():
    settings = load_settings("configs/quick.yaml", environ={})
    assert (settings.objects, settings.object_size) == (100, ObjectSizes.fixed(10 * 2**20))
    assert settings.phase_names == ("put", "get", "cleanup") and settings.verify


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parent.parent / "configs").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_shipped_workload_loads_and_names_itself(path):
    assert load_settings(path, environ={}).name == path.stem


def test_every_setting_is_declared_once_with_its_parser_help_and_group():
    for field in fields(Settings):
        assert callable(field.metadata["parse"]), field.name
        assert field.metadata["group"] in GROUPS and field.metadata["help"], field.name
    assert {"S3DLIO_CONCURRENCY", "AWS_ENDPOINT_URL"} <= set(ENVIRONMENT)


def test_every_setting_has_a_flag_or_is_set_with_set_and_is_in_the_readme(capsys):
    from s3dlio_ray._cli import NO_FLAG, _parser, flag_name, main

    _, keys = _parser()
    assert set(keys) | set(NO_FLAG) == {f.name for f in fields(Settings)}
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    run_help = capsys.readouterr().out
    for key in keys:
        assert flag_name(key) in run_help
    assert "--no-verify" in run_help and "transport settings:" in run_help
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Workloads")]
    missing = [f.name for f in fields(Settings) if f"`{f.name}`" not in table]
    assert not missing, f"README's key table lacks {missing}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("objects=10", {"objects": 10}),
        ("phases=[put, {get: {duration_s: 2}}]", {"phases": ["put", {"get": {"duration_s": 2}}]}),
        (
            "endpoint=[http://a:9000, http://b:9000]",
            {"endpoint": ["http://a:9000", "http://b:9000"]},
        ),
        ("dataset.num_files_train=8", {"dataset": {"num_files_train": 8}}),
        ("prefix=", {"prefix": ""}),
    ],
)
def test_set_reads_its_value_as_yaml_and_a_dotted_key_as_a_section(text, expected):
    assert parse_assignment(text) == expected


@pytest.mark.parametrize("text", ["objects", "=3", "mix={get: 1"])
def test_a_malformed_set_is_a_configuration_error(text):
    with pytest.raises(ConfigError, match="--set"):
        parse_assignment(text)


def test_a_phase_entry_sets_options_for_itself_alone(workload):
    path = workload(
        "duration_s: 5\nphases: [put, {get: {duration_s: 2, verify: false}}, cleanup]\n"
    )
    settings = load_settings(path, environ={})
    assert settings.phase_names == ("put", "get", "cleanup")
    assert (settings.for_phase(0).duration_s, settings.for_phase(0).verify) == (5, True)
    assert (settings.for_phase(1).duration_s, settings.for_phase(1).verify) == (2, False)
    with pytest.raises(ConfigError, match="'objects' cannot be set per phase"):
        load_settings(overrides={"phases": [{"get": {"objects": 3}}]}, environ={})
    with pytest.raises(ConfigError, match="mixed runs for a time"):
        load_settings(overrides={"phases": ["put", {"mixed": {"verify": False}}]}, environ={})
    assert load_settings(overrides={"phases": [{"mixed": {"duration_s": 3}}]}, environ={})


@pytest.mark.parametrize("name", ["quick", "long", "mixed", "comprehensive"])
def test_settings_written_into_a_result_load_back_the_same(name):
    settings = load_settings(f"configs/{name}.yaml", {"rate_limit": "2 GB/s"}, environ={})
    assert load_settings(settings.to_dict(), environ={}) == settings


def test_rules_that_ran_late_are_checked_when_the_settings_are_made(tmp_path):
    manifest = tmp_path / "keys.txt"
    manifest.write_text("a\n")
    with pytest.raises(ConfigError, match="list with a manifest has nothing to list"):
        Settings(
            bucket="data",
            phases=[{"list": {"source": "existing", "manifest": str(manifest)}}],
        )
    with pytest.raises(ConfigError, match="AWS S3 endpoints do not speak HTTP/2"):
        load_settings(None, {"endpoint": "https://s3.amazonaws.com", "http2": True}, {})


def test_a_hand_made_settings_is_checked_as_a_loaded_one():
    for bad in ({"objects": 0}, {"min_concurrency": 64, "max_concurrency": 1}):
        with pytest.raises(ConfigError) as made:
            Settings(**bad)
        with pytest.raises(ConfigError) as loaded:
            load_settings(None, bad, {})
        assert str(made.value) == str(loaded.value) and "\n" not in str(made.value)
    typed = Settings(object_size="1MiB", endpoint="http://127.0.0.1:9000", phases="put,get")
    assert typed.object_size.minimum == 2**20 and typed.endpoint == ("http://127.0.0.1:9000",)
    assert repr(typed) == (
        "Settings(object_size=1048576, phases=['put', 'get'], endpoint=['http://127.0.0.1:9000'])"
    )


def test_a_set_section_key_changes_that_key_and_keeps_the_sections_others(workload):
    path = workload(
        "workflow: {generate_data: true, train: true}\n"
        "dataset: {num_files_train: 8, record_length_bytes: 4096}\n"
    )
    # Training on the dataset an earlier run (its run id) generated.
    earlier = {**parse_assignment("workflow.generate_data=false"), "run_id": "earlier"}
    settings = load_settings(path, earlier, environ={})
    assert [str(p) for p in settings.phase_names] == ["train"]
    settings = load_settings(path, parse_assignment("dataset.num_files_train=3"), environ={})
    assert (settings.num_files_train, settings.record_length_bytes) == (3, 4096)
    assert [str(p) for p in settings.phase_names] == ["datagen", "train"]


def test_each_group_is_a_read_only_view_of_the_one_settings():
    settings = Settings(min_concurrency=4, max_concurrency=32, bucket="data")
    tuning = settings.group("tuning")
    assert tuning.min_concurrency == 4 and tuning["max_concurrency"] == 32
    assert "bucket" not in tuning and settings.group("transport").bucket == "data"
    with pytest.raises(AttributeError, match="the tuning settings have no 'bucket'"):
        tuning.bucket  # noqa: B018
    with pytest.raises(KeyError, match="no settings group 'speed'"):
        settings.group("speed")
    every = [key for group in GROUPS for key in settings.group(group)]
    assert sorted(every) == sorted(f.name for f in fields(Settings))


def test_a_dlio_key_nobody_knows_is_refused_and_dlios_own_are_a_warning(workload, caplog):
    path = workload("dataset: {num_files_train: 8, format: npz, data_folder: data/}\n")
    with pytest.raises(ConfigError, match="did you mean num_files_train"):
        load_settings(path, parse_assignment("dataset.num_file_train=3"), environ={})
    with pytest.raises(ConfigError, match=r"reader\.batchsize: .*did you mean batch_size"):
        load_settings(None, {"reader": {"batchsize": 2}}, environ={})
    with caplog.at_level(logging.WARNING):
        settings = load_settings(path, {"data_reader": {"batch_size": 2}}, environ={})
    assert (settings.num_files_train, settings.batch_size) == (8, 2)
    assert "dataset.format, dataset.data_folder" in caplog.text
    assert load_settings(None, {"output": "r.json"}, environ={}).output == "r.json"
    assert load_settings(None, {"output": {"folder": "x"}}, environ={}).output is None


def test_a_mean_changed_without_its_deviation_warns_when_sizes_clip(workload, caplog):
    path = workload(
        "dataset: {record_length_bytes: 146600628, record_length_bytes_stdev: 68341808}\n"
    )
    with caplog.at_level(logging.WARNING):
        load_settings(path, parse_assignment("dataset.record_length_bytes=1048576"), environ={})
    assert "clips samples at 1 byte (sizes 1 to 206,074,000); set record_length_bytes_stdev" in (
        caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        both = {"record_length_bytes": 1048576, "record_length_bytes_stdev": 1000}
        load_settings(path, both, environ={})
        load_settings(path, parse_assignment("dataset.record_length_bytes=400000000"), environ={})
    assert "clips" not in caplog.text
