package io.shardmap.migrator;

import io.shardmap.proto.v1.MigrationOptions;
import java.time.Duration;
import java.util.List;
import java.util.Objects;

/**
 * What to move: one unit of a keyspace to a target shard. The unit depends on the keyspace's strategy: a
 * key range (range keyspaces), a bucket (hash), a ring node joining or leaving (consistent hash),
 * directory entries, or a region (geographic). Immutable; {@link #builder()} validates each value as it is set. What can only be
 * checked against etcd and the shards (the keyspace, the unit, the shards, the tables) is checked by
 * {@link Migrator#plan}, before anything is written.
 */
public final class MoveSpec {
  /** Most entries one migration moves: its cutover writes them all in one etcd transaction. */
  public static final int MAX_ENTRIES = 50;

  private final String id;
  private final String keyspace;
  private final String range;
  private final Integer bucket;
  private final boolean ringJoin;
  private final String ringLeave;
  private final List<String> entries;
  private final String region;
  private final String target;
  private final boolean split;
  private final MigrationOptions options;

  private MoveSpec(Builder b) {
    this.id = b.id;
    this.keyspace = Objects.requireNonNull(b.keyspace, "keyspace: required");
    this.range = b.range;
    this.bucket = b.bucket;
    this.ringJoin = b.ringJoin;
    this.ringLeave = b.ringLeave;
    this.entries = b.entries;
    this.region = b.region;
    int units = (range != null ? 1 : 0) + (bucket != null ? 1 : 0) + (ringJoin ? 1 : 0) + (ringLeave != null ? 1 : 0)
        + (entries != null ? 1 : 0) + (region != null ? 1 : 0);
    if (units != 1) {
      throw new IllegalArgumentException("unit: exactly one of range, bucket, ringJoin, ringLeave, entries and region, got "
          + units);
    }
    if (b.target == null && ringLeave == null) {
      throw new NullPointerException("target: required");
    }
    if (b.split && range == null) {
      throw new IllegalArgumentException("split: only applies to a range");
    }
    this.target = b.target;
    this.split = b.split;
    this.options = b.options.build();
  }

  public static Builder builder() {
    return new Builder();
  }

  /** The migration id, or null to have one generated. */
  public String id() { return id; }
  public String keyspace() { return keyspace; }
  /** The range in the CLI's syntax, e.g. {@code 100..200}, {@code ..0}, {@code 5000..}; null for other units. */
  public String range() { return range; }
  /** The hash bucket, or null. */
  public Integer bucket() { return bucket; }
  /** The target's next ring node joins the ring, taking its arc from the node after it. */
  public boolean ringJoin() { return ringJoin; }
  /** The shard whose last ring node leaves the ring, handing its arc to the node after it; or null. */
  public String ringLeave() { return ringLeave; }
  /** Directory keys in the CLI's syntax ({@code 42}, {@code 'name'}, {@code 0x00ff}), or null. */
  public List<String> entries() { return entries; }
  public String region() { return region; }
  /** The target shard; null for a ring node leaving (its successor's shard is the target). */
  public String target() { return target; }
  /** Split the range out of the ranges that contain its bounds first, instead of requiring it to be one. */
  public boolean split() { return split; }
  public MigrationOptions options() { return options; }

  public static final class Builder {
    private String id;
    private String keyspace;
    private String range;
    private Integer bucket;
    private boolean ringJoin;
    private String ringLeave;
    private List<String> entries;
    private String region;
    private String target;
    private boolean split;
    private final MigrationOptions.Builder options = MigrationOptions.newBuilder().setPauseBudgetMs(100)
        .setChunkRows(50_000).setCleanupGraceMs(60_000).setCleanupBatchRows(50_000).setCleanupPauseMs(10)
        .setMaxCutoverAttempts(5).setCreateMissingTables(true);

    private Builder() {}

    public Builder id(String id) {
      if (id != null && !id.matches("[a-z0-9_]{1,40}")) {
        throw new IllegalArgumentException("id: 1 to 40 of lower-case letters, digits and '_', got '" + id + "'");
      }
      this.id = id;
      return this;
    }

    public Builder keyspace(String keyspace) {
      this.keyspace = nonEmpty("keyspace", keyspace);
      return this;
    }

    public Builder range(String range) {
      this.range = nonEmpty("range", range);
      return this;
    }

    /** Moves bucket {@code bucket} of a hash keyspace. */
    public Builder bucket(int bucket) {
      if (bucket < 0) {
        throw new IllegalArgumentException("bucket: must not be negative, got " + bucket);
      }
      this.bucket = bucket;
      return this;
    }

    /** The target's next virtual node joins a consistent-hash ring; the arc it takes moves to the target. */
    public Builder ringJoin() {
      this.ringJoin = true;
      return this;
    }

    /**
     * The last virtual node of {@code shard} leaves a consistent-hash ring; its arc moves to the shard of the
     * node after it (the target, which may be left unset or must name that shard).
     */
    public Builder ringLeave(String shard) {
      this.ringLeave = nonEmpty("ringLeave", shard);
      return this;
    }

    /**
     * Moves region {@code name} of a geographic keyspace: every key that is its name, and for the default
     * region also every key that names no listed region.
     */
    public Builder region(String name) {
      this.region = nonEmpty("region", name);
      return this;
    }

    /** Moves these entries of a directory keyspace (1 to {@value MoveSpec#MAX_ENTRIES}, all of one owner). */
    public Builder entries(List<String> keys) {
      if (keys == null || keys.isEmpty() || keys.size() > MAX_ENTRIES) {
        throw new IllegalArgumentException("entries: 1 to " + MAX_ENTRIES + " keys, got "
            + (keys == null ? 0 : keys.size()));
      }
      for (int i = 0; i < keys.size(); i++) {
        nonEmpty("entries[" + i + "]", keys.get(i));
      }
      this.entries = List.copyOf(keys);
      return this;
    }

    public Builder target(String target) {
      this.target = nonEmpty("target", target);
      return this;
    }

    public Builder split(boolean split) {
      this.split = split;
      return this;
    }

    /** Longest write pause the cutover may cause (default 100 ms; 1 ms to 60 s). */
    public Builder pauseBudget(Duration d) {
      options.setPauseBudgetMs(within("pauseBudget", d, Duration.ofMillis(1), Duration.ofSeconds(60)).toMillis());
      return this;
    }

    /** Rows per copy and verification chunk (default 50,000; 1 to 10,000,000). */
    public Builder chunkRows(int rows) {
      if (rows < 1 || rows > 10_000_000) {
        throw new IllegalArgumentException("chunkRows: must be 1 to 10000000, got " + rows);
      }
      options.setChunkRows(rows);
      return this;
    }

    /** Longest wait after cutover for clients to acknowledge the new map before cleanup (default 60 s). */
    public Builder cleanupGrace(Duration d) {
      options.setCleanupGraceMs(within("cleanupGrace", d, Duration.ZERO, Duration.ofDays(7)).toMillis());
      return this;
    }

    /** Rows per cleanup DELETE (default 50,000) and the pause between two (default 10 ms). */
    public Builder cleanupBatch(int rows, Duration pause) {
      if (rows < 1 || rows > 1_000_000) {
        throw new IllegalArgumentException("cleanupBatchRows: must be 1 to 1000000, got " + rows);
      }
      options.setCleanupBatchRows(rows)
          .setCleanupPauseMs(within("cleanupPause", pause, Duration.ZERO, Duration.ofSeconds(10)).toMillis());
      return this;
    }

    /** Cutover attempts that may miss the pause budget before the move cancels itself (default 5). */
    public Builder maxCutoverAttempts(int n) {
      if (n < 1 || n > 1000) {
        throw new IllegalArgumentException("maxCutoverAttempts: must be 1 to 1000, got " + n);
      }
      options.setMaxCutoverAttempts(n);
      return this;
    }

    /** Create tables the target lacks from the source's definition (default true); false refuses instead. */
    public Builder createMissingTables(boolean create) {
      options.setCreateMissingTables(create);
      return this;
    }

    public MoveSpec build() {
      return new MoveSpec(this);
    }

    private static String nonEmpty(String field, String v) {
      if (v == null || v.isBlank()) {
        throw new IllegalArgumentException(field + ": must not be empty");
      }
      return v;
    }

    private static Duration within(String field, Duration d, Duration min, Duration max) {
      if (d == null || d.compareTo(min) < 0 || d.compareTo(max) > 0) {
        throw new IllegalArgumentException(field + ": must be between " + min + " and " + max + ", got " + d);
      }
      return d;
    }
  }
}
