"""Bad input, as a new user types it: each refused in one line with exit 2, before anything is
created on the endpoint, without a traceback and without repeating a secret.

In-process through `cli.main()` (cheap); tests/test_cli.py runs a few as real subprocesses.
"""

from __future__ import annotations

import pytest

from s3dlio_ray._cli import main

AWS = "https://s3.us-east-1.amazonaws.com"

CASES = [
    (["--objects", "zero"], "objects: expected an integer in 1..1000000000000"),
    (["--objects", "0"], "objects: expected an integer in 1..1000000000000"),
    (["--objects=-5"], "objects: expected an integer"),
    (["--objects", "1.5"], "objects: expected an integer"),
    (["--objects", "2000000000000"], "objects: expected an integer in 1..1000000000000"),
    (["--object-size", "big"], "object_size: expected a size such as 10MiB"),
    (["--object-size=-1KiB"], "object_size: expected a size"),
    (["--object-size", "6TiB"], "object_size: an S3 object is at most 5 TiB"),
    (["--object-size", "uniform:1KiB..6TiB"], "an S3 object is at most 5 TiB"),
    (["--object-size", "uniform:1KiB"], "object_size: expected a size (10MiB), DISTRIBUTION"),
    (["--object-size", "gaussian:1KiB..2KiB"], "distribution must be one of"),
    (["--object-size", "log-uniform:0..1MiB"], "log-uniform needs min >= 1 byte"),
    (["--object-size", "uniform:2MiB..1MiB"], "must not be less than min"),
    (["--concurrency", "0"], "concurrency: expected auto or an integer in 1..4096"),
    (["--concurrency", "many"], "concurrency: expected auto or an integer in 1..4096"),
    (["--concurrency", "5000"], "concurrency: expected auto or an integer in 1..4096"),
    (["--target-gbps", "0"], "target_gbps: expected a number in 0.001..10000"),
    (["--target-gbps", "fast"], "target_gbps: expected a number"),
    (["--min-concurrency", "0"], "min_concurrency: expected an integer in 1..4096"),
    (["--max-concurrency", "99999"], "max_concurrency: expected an integer in 1..4096"),
    (["--min-concurrency", "64", "--max-concurrency", "8"], "must not exceed max_concurrency"),
    (["--part-size-mb", "2"], "part_size_mb: expected an integer in 5..5120"),
    (["--part-size-mb", "6000"], "part_size_mb: expected an integer in 5..5120"),
    (["--profile", "turbo"], "profile: expected one of auto, aws, high-performance"),
    (["--phases", "put,fly"], "unknown phase 'fly'"),
    (["--phases", ""], "--phases: the value is empty"),
    (["--phases", "put,mixed"], "mixed runs for a time: set duration_s"),
    (["--duration", "0"], "duration_s: expected a number in 0.1.."),
    (["--duration=-3"], "duration_s: expected a number"),
    (["--duration", "soon"], "duration_s: expected a number"),
    (["--autoterm-window", "1"], "autoterm_window_s: expected a number in 2.."),
    (["--autoterm-pct", "0"], "autoterm_pct: expected a number in 0.1..100"),
    (["--rate-limit", "fast"], "rate_limit: expected a rate such as 500 ops/s"),
    (["--rate-limit", "0 ops/s"], "a rate limit must be above 0"),
    (["--rate-limit", "10 ops/min"], "rate_limit: expected a rate"),
    (["--sleep=-1"], "sleep_s: expected a number in 0..86400"),
    (["--endpoint", "ftp://host"], "endpoint: expected an http:// or https:// URL"),
    (["--endpoint", "http://127.0.0.1:99999"], "with a port in 1..65535"),
    (["--endpoint", "http://127.0.0.1:abc"], "with a port in 1..65535"),
    (["--endpoint", "not a url"], "endpoint: expected an http:// or https:// URL"),
    (["--endpoint", "http://127.0.0.1:9000/path"], "endpoint: expected an http:// or https://"),
    (["--endpoint", "http://s3.us-east-1.amazonaws.com"], "plain http:// to AWS"),
    (["--endpoint", "http://a:1", "--endpoint", "http://a:1"], "http://a:1 is listed twice"),
    (["--endpoint", "http://gw{9...1}:9000"], "counts down; write the smaller number first"),
    (["--endpoint-policy", "random"], "endpoint_policy: expected one of round-robin, least-busy"),
    (["--bind-addresses", "eth0;rm"], "is neither an IP address nor an interface name"),
    (["--bind-addresses", "nic9"], "bind_addresses: this node"),
    (["--bind-addresses", "192.0.2.1"], "192.0.2.1 is not an address of this node"),
    (["--client", "boto3", "--bind-addresses", "127.0.0.2"], "boto3 baseline cannot choose"),
    (["--phases", "get", "--source", "existing"], "reads a bucket that holds data: set bucket"),
    (["--phases", "put", "--source", "existing", "--bucket", "data"], "put cannot use source"),
    (
        ["--phases", "delete", "--source", "existing", "--bucket", "data"],
        "set allow_delete_existing: true",
    ),
    (
        ["--phases", "get", "--source", "existing", "--bucket", "data", "--manifest", "/no/such"],
        "manifest: /no/such is not a readable file",
    ),
    (["--page-size", "5000"], "page_size: expected an integer in 1..1000"),
    (["--phases", "put,list", "--objects", "200000000"], "index order up to 100,000,000 objects"),
    (["--delete-batch", "0"], "delete_batch: expected an integer in 1..1000"),
    (["--epochs", "0"], "epochs: expected an integer in 1..1000000"),
    (["--bucket", "UPPER"], "bucket: expected 3-63 lowercase letters"),
    (["--bucket", "ab"], "bucket: expected 3-63 lowercase letters"),
    (["--bucket", "a_b"], "bucket: expected 3-63 lowercase letters"),
    (["--bucket=-abc"], "bucket: expected 3-63 lowercase letters"),
    (["--endpoint", AWS, "--bucket", "192.168.1.1"], "not formatted as an IP address"),
    (["--bucket", "192.168.1.1"], "bucket: a bucket name is not formatted as an IP address"),
    (["--endpoint", AWS, "--bucket", "a..b"], "no two dots in a row"),
    (["--endpoint", AWS, "--bucket", "xn--abc"], "no reserved prefix"),
    (["--remove-bucket", "sometimes"], "remove_bucket: expected one of created, always, never"),
    (["--executor", "spark"], "executor: expected one of auto, ray, local"),
    (["--client", "curl"], "client: expected one of engine, boto3"),
    (["--actors-per-node", "0"], "actors_per_node: expected an integer in 1..1024"),
    (["--metrics-port", "70000"], "metrics_port: expected off or a port in 0..65535"),
    (["--metrics-port", "http"], "metrics_port: expected off or a port"),
    (["--metrics-scrape-interval", "0"], "metrics_scrape_interval_s: expected a number"),
    (["--pushgateway-url", "gateway"], "pushgateway_url: expected an http:// or https:// URL"),
    (["--op-log", "out.txt"], "op_log: expected a path ending in .tsv.zst"),
    (["--op-log", "x.tsv.zst", "--client", "boto3"], "the boto3 baseline keeps no op-log"),
    (["--timeout", "0"], "timeout_s: expected a number in 0.1..3600"),
    (["--connect-timeout", "0"], "connect_timeout_s: expected a number in 0.1..600"),
    (["--max-attempts", "0"], "max_attempts: expected an integer in 1..20"),
    (["--max-attempts", "100"], "max_attempts: expected an integer in 1..20"),
    (["--set", "http2=maybe"], "http2: expected true or false"),
    (["--objects", "-1"], "objects: expected an integer in 1.."),
    (["--epochs", "many"], "epochs: expected an integer in 1..1000000"),
    (["--autoterm-window", "0"], "autoterm_window_s: expected a number in 2..86400"),
    (["--target-gbps", "-1"], "target_gbps: expected a number in 0.001..10000"),
    (["--cluster-target-gbps", "0"], "cluster_target_gbps: expected a number in 0.001.."),
    (["--connect-timeout", "601"], "connect_timeout_s: expected a number in 0.1..600"),
    (["--timeout", "4000"], "timeout_s: expected a number in 0.1..3600"),
    (["--rate-limit", "5 GB/h"], "rate_limit: expected a rate such as 500 ops/s"),
    (["--seed", "1.5"], "seed: expected an integer"),
    (["--set", "accelerators_per_node=many"], "accelerators_per_node: expected an integer"),
    (["--set", "au_threshold=high"], "au_threshold: expected a number in 0..1"),
    (["--set", "num_samples_per_file=0"], "num_samples_per_file: expected an integer in 1.."),
    (["--silence", "0"], "silence_s: expected a number in 0.1..3600"),
    (["--repeat", "1001"], "repeat: expected an integer in 1..1000"),
    (["--units", "GiB/min"], "units: expected one of GB/s"),
    (["--sleep", "-1"], "sleep_s: expected a number in 0..86400"),
    (["--au-threshold", "2"], "au_threshold: expected a number in 0..1"),
    (["--accelerators-per-node", "0"], "accelerators_per_node: expected an integer in 1..4096"),
    (["--metrics-linger", "-1"], "metrics_linger_s: expected a number in 0..3600"),
    (["--pushgateway-url", "ftp://x"], "pushgateway_url: expected an http:// or https:// URL"),
    (["--delete-batch", "1001"], "delete_batch: expected an integer in 1..1000"),
    (["--page-size", "0"], "page_size: expected an integer in 1..1000"),
    (["--max-concurrency", "0"], "max_concurrency: expected an integer in 1..4096"),
    (["--part-size-mb", "ten"], "part_size_mb: expected an integer in 5..5120"),
    (["--endpoint", "http://[::1"], "endpoint: Invalid IPv6 URL"),
    (["--set", "computation_time=-1"], "computation_time: expected a number in 0..3600"),
    (["--set", "reader.batch_size=0"], "batch_size: expected an integer in 1..1000000"),
    (["--set", "train.epochs=0"], "epochs: expected an integer in 1..1000000"),
    (["--set", "exclude_start_steps=-1"], "exclude_start_steps: expected an integer in 0.."),
    (["--set", "record_length_bytes_stdev=-1"], "record_length_bytes_stdev: expected a size"),
    (["--set", "memory_budget_mb=0"], "memory_budget_mb: expected an integer in 1.."),
    (["--set", "mix=[get]"], "mix: expected a mapping of operation to weight"),
    (["--set", "phases=[]"], "phases: expected a list of phases"),
    (["--metrics-host", "203.0.113.9"], "metrics_host 203.0.113.9: this machine cannot listen"),
    (["--run-id", "../../etc"], "run_id: expected letters, digits and '-'"),
    (["--run-id", "a/b"], "run_id: expected letters, digits and '-'"),
    (["--run-id", "x" * 49], "at most 48"),
    (["--output", "http://x/y"], "output: expected a local path or s3://BUCKET/PREFIX/"),
    (["--repeat", "2"], "repeat: 1, or at least 3"),
    (["--units", "kb"], "units: expected one of GB/s, MB/s, GiB/s, MiB/s, decimal, binary"),
    (["--set", "allow_http=perhaps"], "allow_http: expected true or false"),
    (["--set", "verify=perhaps"], "verify: expected true or false"),
    (["--set", "seed=abc"], "seed: expected an integer"),
    (["--set", "adapt_interval_s=0"], "adapt_interval_s: expected a number in 0.05..60"),
    (["--set", "colour=blue"], "unknown key 'colour'"),
    (["--set", "objets=3"], "unknown key 'objets'; did you mean objects"),
    (
        ["--set", "dataset.num_file_train=3"],
        "dataset.num_file_train: not a key of DLIO's dataset section; did you mean num_files_train",
    ),
    (["--set", "controller=central"], "controller: expected one of actor, cluster"),
    (["--set", "cluster_target_gbps=-1"], "cluster_target_gbps: expected a number in"),
    (
        ["--set", "cluster_target_gbps=2", "--set", "controller=actor"],
        "cluster_target_gbps: the driver steers the cluster to it",
    ),
    (["--set", "controller=cluster", "--set", "concurrency=8"], "a fixed concurrency leaves"),
    (["--set", "cluster_target_gbps=2", "--set", "target_gbps=1"], "target_gbps is each actor's"),
    (["--set", "dataset.num_files_train=0"], "num_files_train: expected an integer in 1.."),
    (["--set", "trainer.epochs=2"], "unknown key 'trainer'"),
    (["--set", "reader=4"], "reader: expected a mapping of DLIO's reader keys"),
    (["--set", "objects"], "--set 'objects': expected KEY=VALUE"),
    (["--set", "=5"], "--set '=5': expected KEY=VALUE"),
    (["--set", "mix={get: 1"], "the value is not valid YAML"),
    (["--set", "mix={fly: 1}"], "unknown operation 'fly'"),
    (["--set", "mix={get: 0, put: 0}"], "the weights must not all be zero"),
    (["--set", "phases=[{get: {objects: 3}}]"], "'objects' cannot be set per phase"),
    (["--set", "phases=[{get: 3}]"], "phase 'get': expected a mapping of options"),
    (["--set", "phases=[{get: {}, put: {}}]"], "a phase entry is a name or one mapping"),
    (["--set", "configurations=[{name: a, bucket: b}]"], "configuration 'a': 'bucket' cannot vary"),
    (["--set", "configurations=[{name: a}, {name: a}]"], "configuration 'a' is named twice"),
    (
        ["--set", "configurations=[{client: boto3}]"],
        "expected a list of mappings, each with a name",
    ),
    (["--run-id", ""], "--run-id: the value is empty (an unset shell variable?)"),
    (["--endpoint", ""], "--endpoint: the value is empty (an unset shell variable?)"),
    (["--bucket", ""], "--bucket: the value is empty (an unset shell variable?)"),
    (["--aws-profile", "no-such-profile"], "AWS profile 'no-such-profile' (aws_profile, AWS_"),
    (["--ca-bundle", "/no/such.pem"], "ca_bundle: /no/such.pem is not a readable file"),
    (["--set", "silence_s=abc"], "silence_s: expected a number in 0.1..3600"),
    (["--run-id", "a b"], "run_id: expected letters, digits and '-'"),
    (["--max-attempts", "many"], "max_attempts: expected an integer in 1..20"),
    (["--actors-per-node", "2000"], "actors_per_node: expected an integer in 1..1024"),
    (["--bucket", "abc-"], "bucket: expected 3-63 lowercase letters"),
    (["--bucket", "x" * 64], "bucket: expected 3-63 lowercase letters"),
    (["--endpoint", "http://127.0.0.1:0"], "with a port in 1..65535"),
    (["--rate-limit", "-5 ops/s"], "rate_limit: expected a rate such as 500 ops/s"),
    (["--set", "output=s3://"], "output: expected a local path or s3://BUCKET/PREFIX/"),
    (["--set", "repeat=0"], "repeat: expected an integer in 1..1000"),
    (["--set", "mix={get: -1}"], "mix: expected a number in 0.."),
    (["--set", "epochs=1.5"], "epochs: expected an integer in 1..1000000"),
    (["--metrics-host", "bad host!"], "metrics_host bad host!: this machine cannot listen"),
]


@pytest.fixture
def endpoint_state(boto3_s3):
    """The endpoint's buckets before a case; the case must leave them as they were."""
    before = {b["Name"] for b in boto3_s3.list_buckets()["Buckets"]}
    yield
    assert {b["Name"] for b in boto3_s3.list_buckets()["Buckets"]} == before


def refused(argv: list[str], capsys) -> str:
    """Run the command line in this process; answer its one error line (exit 2)."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("s3dlio-ray: error: ")]
    assert len(errors) == 1 and not out.strip(), out + err
    return errors[0]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_a_bad_value_is_one_line_exit_2_and_creates_nothing(
    args, message, moto_url, endpoint_state, capsys
):
    base = ["run", "configs/quick.yaml", "--endpoint", moto_url, "--executor", "local"]
    line = refused([*base, "--objects", "1", "--metrics-port", "off", *args], capsys)
    assert message in line


def test_credentials_in_the_endpoint_url_are_refused_and_never_repeated(capsys):
    line = refused(["run", "configs/quick.yaml", "--endpoint", "http://me:Secr3t@h:9000"], capsys)
    assert "credentials do not belong in the URL" in line and "Secr3t" not in line


WORKLOADS = [
    (None, "cannot read workload file"),
    ("objects: [1,\n", "not valid YAML at line"),
    ("- put\n- get\n", "expected a mapping of settings at the top level"),
    ("objects: 5\ncolour: blue\n", "unknown key 'colour' (every key: s3dlio-ray run --help)"),
    ("object_size: {distribution: uniform, min: 1KiB}\n", "object_size: expected a size"),
    ("phases: put\nduration_s: -1\n", "duration_s: expected a number"),
    ("output: s3://results/run/\n", "output: s3:// needs a store that outlives the run"),
]


@pytest.mark.parametrize(("text", "message"), WORKLOADS)
def test_a_bad_workload_file_is_one_line(text, message, tmp_path, capsys):
    path = tmp_path / "w.yaml"
    if text is not None:
        path.write_text(text)
    assert message in refused(["run", str(path), "--executor", "local"], capsys)


ENVIRONMENT = [
    ("S3DLIO_CONCURRENCY", "lots", "environment variable S3DLIO_CONCURRENCY: concurrency"),
    ("S3DLIO_PART_SIZE_MB", "1", "environment variable S3DLIO_PART_SIZE_MB: part_size_mb"),
    ("S3DLIO_ENABLE_HTTP2", "sometimes", "S3DLIO_ENABLE_HTTP2: http2: expected true or false"),
    ("S3DLIO_METRICS_PORT", "-1", "S3DLIO_METRICS_PORT: metrics_port"),
    ("AWS_ENDPOINT_URL", "ftp://x", "environment variable AWS_ENDPOINT_URL: endpoint"),
]


@pytest.mark.parametrize(("variable", "value", "message"), ENVIRONMENT)
def test_a_bad_environment_variable_is_one_line(variable, value, message, monkeypatch, capsys):
    monkeypatch.setenv(variable, value)
    assert message in refused(["run", "configs/quick.yaml", "--executor", "local"], capsys)


def test_a_workload_file_that_is_not_utf8_is_one_line(tmp_path, capsys):
    path = tmp_path / "w.yaml"
    path.write_bytes(b"objects: 3\nname: \xff\xfe\n")
    line = refused(["run", str(path), "--executor", "local"], capsys)
    assert "not UTF-8 text (byte 17)" in line


def test_cp_takes_set_and_refuses_an_unknown_key(tmp_path, capsys):
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    line = refused(["cp", str(source), "s3://some-bucket/p/", "--set", "colour=blue"], capsys)
    assert "unknown key 'colour'" in line


def test_a_ca_bundle_that_holds_no_certificate_is_one_line(credentials, tmp_path, capsys):
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"-----BEGIN X-----\nabc\n")
    argv = ["run", "configs/quick.yaml", "--endpoint", "https://127.0.0.1:9", "--objects", "1"]
    line = refused([*argv, "--ca-bundle", str(bundle), "--executor", "local"], capsys)
    assert f"ca_bundle {bundle}: no PEM certificate" in line


def test_cp_of_a_key_that_does_not_exist_is_bad_input(
    moto_url, bucket, credentials, tmp_path, capsys
):
    argv = ["cp", f"s3://{bucket}/no/such.bin", str(tmp_path / "here.bin")]
    code = main([*argv, "--endpoint", moto_url, "--metrics-port", "off", "--quiet"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("s3dlio-ray: error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err
    assert f"cp: s3://{bucket}/no/such.bin: no such object" in errors[0]
    assert not (tmp_path / "here.bin").exists()


def test_a_damaged_manifest_is_a_fault_of_what_was_stored_not_bad_input(
    moto_url, boto3_s3, bucket, credentials, tmp_path, capsys
):
    boto3_s3.put_object(Bucket=bucket, Key="set/f.bin", Body=b"data")
    boto3_s3.put_object(Bucket=bucket, Key="set/.s3dlio-ray-manifest.json", Body=b'{"obj\x01')
    argv = ["cp", f"s3://{bucket}/set/", str(tmp_path / "down"), "--recursive"]
    code = main([*argv, "--endpoint", moto_url, "--metrics-port", "off", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"s3://{bucket}/set/.s3dlio-ray-manifest.json: damaged, or not a manifest" in err
