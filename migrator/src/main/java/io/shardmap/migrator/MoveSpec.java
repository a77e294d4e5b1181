package io.shardmap.migrator;

import io.shardmap.proto.v1.MigrationOptions;
import java.time.Duration;
import java.util.Objects;

/**
 * What to move: a key range of a keyspace to a target shard. Immutable; {@link #builder()} validates
 * each value as it is set. What can only be checked against etcd and the shards (the keyspace, the
 * range, the shards, the tables) is checked by {@link Migrator#plan}, before anything is written.
 */
public final class MoveSpec {
  private final String id;
  private final String keyspace;
  private final String range;
  private final String target;
  private final boolean split;
  private final MigrationOptions options;

  private MoveSpec(Builder b) {
    this.id = b.id;
    this.keyspace = Objects.requireNonNull(b.keyspace, "keyspace: required");
    this.range = Objects.requireNonNull(b.range, "range: required");
    this.target = Objects.requireNonNull(b.target, "target: required");
    this.split = b.split;
    this.options = b.options.build();
  }

  public static Builder builder() {
    return new Builder();
  }

  /** The migration id, or null to have one generated. */
  public String id() { return id; }
  public String keyspace() { return keyspace; }
  /** The range in the CLI's syntax, e.g. {@code 100..200}, {@code ..0}, {@code 5000..}. */
  public String range() { return range; }
  public String target() { return target; }
  /** Split the range out of the ranges that contain its bounds first, instead of requiring it to be one. */
  public boolean split() { return split; }
  public MigrationOptions options() { return options; }

  public static final class Builder {
    private String id;
    private String keyspace;
    private String range;
    private String target;
    private boolean split;
    private final MigrationOptions.Builder options = MigrationOptions.newBuilder().setPauseBudgetMs(100)
        .setChunkRows(50_000).setCleanupGraceMs(60_000).setCleanupBatchRows(5_000).setCleanupPauseMs(10)
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

    /** Rows per cleanup DELETE (default 5,000) and the pause between two (default 10 ms). */
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
