"""The Ray layer: transfer actors on every node, and the driver that shards, watches and merges."""
