"""Checkpoints as a training job writes them: every actor its shard of the model at once, read
back byte-exact by a restore, removed by cleanup; through the suite's three Ray nodes."""

from __future__ import annotations

import asyncio

import pytest
from conftest import (
    TEST_CREDENTIALS,
    incomplete_uploads,
    settings_for,
    stored_objects,
    valid_result,
)
from rich.console import Console

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.keys import checkpoint_shards, run_prefix
from s3dlio_ray._internal.reports.files import print_summary
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.storage.journal import owned_key

MIB = 1024 * 1024


def test_shards_share_the_model_to_the_byte():
    shards = checkpoint_shards("p/r/", 2, 10 * MIB + 1, 3)
    assert list(shards) == ["p/r/ckpt-0002-00000", "p/r/ckpt-0002-00001", "p/r/ckpt-0002-00002"]
    assert shards.sizes.tolist() == [3_495_254, 3_495_254, 3_495_253]
    assert sum(shards.sizes) == 10 * MIB + 1
    assert all(owned_key("p", "r").fullmatch(key) for key in shards)


def test_every_actor_writes_its_shard_and_a_restore_reads_them_back(
    ray_cluster, moto_url, boto3_s3, bucket
):
    model = 33 * MIB + 5
    settings = settings_for(
        bucket,
        phases=["checkpoint", "checkpoint", "restore"],
        model_size=str(model),
        part_size_mb=5,
        ray_address=ray_cluster.address,
    )
    result = valid_result(
        asyncio.run(execute(plan_run(settings, (moto_url,), TEST_CREDENTIALS))).to_dict()
    )
    first, second, restore = result.phases
    assert result.ok
    for checkpoint in (first, second):
        assert checkpoint.objects == 3 and checkpoint.stats.bytes == model
        assert {a.summary.objects for a in checkpoint.actors} == {1}  # one shard per actor
    assert restore.objects == restore.verified == 3 and restore.stats.bytes == model
    where = run_prefix(settings.prefix, settings.run_id)
    stored = stored_objects(boto3_s3, bucket, where)
    written = [key for n in (0, 1) for key in checkpoint_shards(where, n, model, 3)]
    assert sorted(stored) == written
    assert sum(stored.values()) == 2 * model and incomplete_uploads(boto3_s3, bucket) == []
    console = Console(record=True, width=200)
    print_summary(result, console)
    assert f"restore: {restore.elapsed_s:.2f} s for {model:,} bytes in 3 shards" in (
        console.export_text()
    )


def test_a_checkpoint_is_cleaned_up_with_the_run(moto_url, boto3_s3, bucket):
    settings = settings_for(
        bucket, executor="local", phases="checkpoint,restore,cleanup", model_size="3MiB"
    )
    result = asyncio.run(execute(plan_run(settings, (moto_url,), TEST_CREDENTIALS)))
    assert result.ok and result.cleanup.deleted == 1
    assert stored_objects(boto3_s3, bucket, settings.prefix, journal=True) == {}


def test_a_restore_needs_a_checkpoint_before_it(bucket):
    with pytest.raises(ConfigError, match="put a checkpoint phase before it"):
        settings_for(bucket, phases="restore,checkpoint")
    with pytest.raises(ConfigError, match="checkpoint cannot use source: existing"):
        settings_for(bucket, phases=[{"checkpoint": {"source": "existing"}}])
