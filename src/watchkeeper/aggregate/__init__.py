"""Windows over the per-minute mergeable aggregates (engine-neutral)."""
