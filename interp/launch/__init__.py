"""Scale-out: every model stage of a study, sharded by item (`interp.shards`), as Ray tasks (`interp launch`)."""
from .ray_runner import LaunchReport, launch
from .stages import ShardJob, run_shard
from .study import Pipeline, Stage, Study, slug

__all__ = ["LaunchReport", "Pipeline", "ShardJob", "Stage", "Study", "launch", "run_shard", "slug"]
