package io.shardmap.client;

import io.shardmap.core.ShardmapException;
import io.shardmap.query.Merge;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * One cross-shard SELECT for {@link ShardmapData#query}: an ordinary PostgreSQL SELECT on a sharded table
 * of a keyspace, its {@code ?} parameters, which shards to ask and how. Immutable and reusable; made by
 * {@link #builder(String, String)}, whose setters refuse a bad value at once (a {@link ShardmapException}
 * INVALID_ARGUMENT naming the field and the rule). What needs the map (the keyspace exists, the keys are of
 * its key type, a key range is asked of a range keyspace) and the SQL itself are checked by
 * {@link ShardmapData#query} before anything is sent to a shard.
 *
 * <pre>{@code
 * CrossShardQuery q = CrossShardQuery.builder("users",
 *         "SELECT id, name FROM users WHERE created > ? ORDER BY created DESC LIMIT 20")
 *     .params(since)
 *     .keyRange(ShardKey.of(1000), ShardKey.of(2000))   // optional: default every shard
 *     .deadline(Duration.ofSeconds(2))
 *     .build();
 * }</pre>
 */
public final class CrossShardQuery {
  /** Which shards a query asks. */
  public enum Target {
    /** Every shard that owns part of the keyspace. */
    ALL_SHARDS,
    /** The shards owning keys of [{@link #rangeStart}, {@link #rangeEnd}), restricted to those keys. */
    KEY_RANGE,
    /** The shards owning the {@link #keys}, each asked once, restricted to those keys. */
    KEYS
  }

  /** Defaults: see each setter of {@link Builder}. */
  public static final Duration DEFAULT_DEADLINE = Duration.ofSeconds(30);
  public static final int DEFAULT_FETCH_SIZE = 1000;
  public static final long DEFAULT_MAX_IN_MEMORY_ROWS = 1_000_000;
  public static final int DEFAULT_PARALLELISM = 8;

  private final String keyspace;
  private final String sql;
  private final List<Object> params;
  private final Target target;
  private final ShardKey rangeStart;
  private final ShardKey rangeEnd;
  private final Set<ShardKey> keys;
  private final Duration deadline;
  private final boolean partialResults;
  private final boolean onReplicas;
  private final int fetchSize;
  private final long maxInMemoryRows;
  private final int parallelism;
  private final Merge merge;

  private CrossShardQuery(Builder b) {
    keyspace = b.keyspace;
    sql = b.sql;
    params = Collections.unmodifiableList(new ArrayList<>(b.params));
    target = b.target;
    rangeStart = b.rangeStart;
    rangeEnd = b.rangeEnd;
    keys = Collections.unmodifiableSet(new LinkedHashSet<>(b.keys));
    deadline = b.deadline;
    partialResults = b.partialResults;
    onReplicas = b.onReplicas;
    fetchSize = b.fetchSize;
    maxInMemoryRows = b.maxInMemoryRows;
    parallelism = b.parallelism;
    merge = b.merge;
  }

  /**
   * A query of {@code keyspace} running {@code sql}: one PostgreSQL SELECT with JDBC {@code ?} placeholders
   * on a table the keyspace shards (its spec's {@code tables}).
   */
  public static Builder builder(String keyspace, String sql) {
    return new Builder(keyspace, sql);
  }

  public String keyspace() { return keyspace; }
  public String sql() { return sql; }
  /** The values of the statement's placeholders, in order (SQL NULL as null). */
  public List<Object> params() { return params; }
  public Target target() { return target; }
  /** {@link Target#KEY_RANGE}: the first key asked; empty when unbounded below (or another target). */
  public Optional<ShardKey> rangeStart() { return Optional.ofNullable(rangeStart); }
  /** {@link Target#KEY_RANGE}: the key the range ends before; empty when unbounded above (or another target). */
  public Optional<ShardKey> rangeEnd() { return Optional.ofNullable(rangeEnd); }
  /** {@link Target#KEYS}: the keys asked (distinct, in the order given); empty for other targets. */
  public Set<ShardKey> keys() { return keys; }
  /** The longest the query may take, from {@link ShardmapData#query} until its result is read. */
  public Duration deadline() { return deadline; }
  /** Whether a failed shard leaves the others' rows to return (see {@link QueryResult#partial()}). */
  public boolean partialResults() { return partialResults; }
  /** Whether shards' replicas answer (they may lag their primary) rather than their primaries. */
  public boolean onReplicas() { return onReplicas; }
  /** Rows fetched from a shard at a time (what a shard's part holds in memory). */
  public int fetchSize() { return fetchSize; }
  /** The most rows the merge may hold where it must hold them (groups, distinct values). */
  public long maxInMemoryRows() { return maxInMemoryRows; }
  /** The most shards whose part starts at once. */
  public int parallelism() { return parallelism; }
  /** The caller's merge (the statement then runs on the shards as written); empty: derived from the SQL. */
  public Optional<Merge> merge() { return Optional.ofNullable(merge); }

  @Override
  public String toString() {
    String t = switch (target) {
      case ALL_SHARDS -> "all shards";
      case KEY_RANGE -> "keys [" + (rangeStart == null ? "" : rangeStart) + ", " + (rangeEnd == null ? "" : rangeEnd) + ")";
      case KEYS -> keys.size() + " keys";
    };
    return "CrossShardQuery{" + keyspace + ", " + t + ", " + sql + "}";
  }

  /** Settings of one {@link CrossShardQuery}; every setter checks its value at once. */
  public static final class Builder {
    private final String keyspace;
    private final String sql;
    private List<Object> params = List.of();
    private Target target = Target.ALL_SHARDS;
    private ShardKey rangeStart;
    private ShardKey rangeEnd;
    private Set<ShardKey> keys = Set.of();
    private Duration deadline = DEFAULT_DEADLINE;
    private boolean partialResults;
    private boolean onReplicas;
    private int fetchSize = DEFAULT_FETCH_SIZE;
    private long maxInMemoryRows = DEFAULT_MAX_IN_MEMORY_ROWS;
    private int parallelism = DEFAULT_PARALLELISM;
    private Merge merge;

    private Builder(String keyspace, String sql) {
      if (keyspace == null || keyspace.isBlank()) {
        throw ShardmapException.invalid("keyspace", "a keyspace name is required");
      }
      if (sql == null || sql.isBlank()) {
        throw ShardmapException.invalid("sql", "a SELECT statement is required");
      }
      this.keyspace = keyspace;
      this.sql = sql;
    }

    /** The placeholders' values, in order (null for SQL NULL). Default none. */
    public Builder params(Object... values) {
      if (values == null) {
        throw ShardmapException.invalid("params", "pass no values rather than a null array");
      }
      this.params = Arrays.asList(values.clone());
      return this;
    }

    /** The placeholders' values, in order (null elements for SQL NULL). */
    public Builder params(List<?> values) {
      if (values == null) {
        throw ShardmapException.invalid("params", "pass an empty list rather than null");
      }
      this.params = new ArrayList<>(values);
      return this;
    }

    /** Ask every shard of the keyspace (the default). */
    public Builder allShards() {
      this.target = Target.ALL_SHARDS;
      this.rangeStart = null;
      this.rangeEnd = null;
      this.keys = Set.of();
      return this;
    }

    /**
     * Ask only the shards owning keys in [{@code start}, {@code end}), for the rows with keys in it; null
     * for a side without a bound. Range keyspaces only (checked by {@link ShardmapData#query}): keys
     * order there as the map orders them (integers numerically, byte strings by their bytes).
     */
    public Builder keyRange(ShardKey start, ShardKey end) {
      if (start != null && end != null) {
        if (start.isInteger() != end.isInteger()) {
          throw ShardmapException.invalid("keyRange", "both bounds must be integer keys or both byte-string keys");
        }
        if (io.shardmap.core.Keys.compare(start.canonical(), end.canonical()) >= 0) {
          throw ShardmapException.invalid("keyRange", "start " + start + " must be below end " + end
              + " (the range is [start, end))");
        }
      }
      this.target = Target.KEY_RANGE;
      this.rangeStart = start;
      this.rangeEnd = end;
      this.keys = Set.of();
      return this;
    }

    /**
     * Ask only the shards owning these keys, each once, for the rows with one of them (any strategy). At
     * least one key; at most 100,000 (the keys travel as SQL literals).
     */
    public Builder keys(Collection<ShardKey> keys) {
      if (keys == null || keys.isEmpty()) {
        throw ShardmapException.invalid("keys", "at least one key is required");
      }
      if (keys.size() > 100_000) {
        throw ShardmapException.invalid("keys", "at most 100000 keys, got " + keys.size());
      }
      Set<ShardKey> set = new LinkedHashSet<>();
      Boolean integer = null;
      for (ShardKey k : keys) {
        if (k == null) {
          throw ShardmapException.invalid("keys", "a key is null");
        }
        if (integer != null && integer != k.isInteger()) {
          throw ShardmapException.invalid("keys", "mixes integer and byte-string keys");
        }
        integer = k.isInteger();
        set.add(k);
      }
      this.target = Target.KEYS;
      this.keys = set;
      this.rangeStart = null;
      this.rangeEnd = null;
      return this;
    }

    /** {@link #keys(Collection)} of the given keys. */
    public Builder keys(ShardKey... keys) {
      return keys(keys == null ? null : Arrays.asList(keys));
    }

    /**
     * The longest the whole query may take, and each shard's statement (PostgreSQL's
     * {@code statement_timeout}); past it every shard's statement is cancelled and the query fails with
     * DEADLINE_EXCEEDED. Default 30 s; 1 ms to 24 h.
     */
    public Builder deadline(Duration d) {
      if (d == null || d.compareTo(Duration.ofMillis(1)) < 0 || d.compareTo(Duration.ofHours(24)) > 0) {
        throw ShardmapException.invalid("deadline", "must be between 1 ms and 24 h, got " + d);
      }
      this.deadline = d;
      return this;
    }

    /**
     * False (default): a failed shard fails the query, naming every failed shard. True: the healthy
     * shards' rows are returned and {@link QueryResult#shards()} says which shard failed and why.
     */
    public Builder partialResults(boolean partial) {
      this.partialResults = partial;
      return this;
    }

    /**
     * True: each shard's part runs on one of its replicas (a random one; the primary when it has none or
     * none gives a connection in time), which may lag the primary by the replication delay, as
     * {@link ShardmapData#read} documents. Default false (primaries).
     */
    public Builder onReplicas(boolean replicas) {
      this.onReplicas = replicas;
      return this;
    }

    /** Rows fetched from a shard per round trip; default 1000, 1..1,000,000. */
    public Builder fetchSize(int n) {
      if (n < 1 || n > 1_000_000) {
        throw ShardmapException.invalid("fetchSize", "must be 1..1000000, got " + n);
      }
      this.fetchSize = n;
      return this;
    }

    /**
     * The most rows the merge may hold at once where it must (GROUP BY groups, DISTINCT values, ORDER BY
     * over aggregates); past it the query fails with INVALID_ARGUMENT naming the clause. Default 1,000,000.
     */
    public Builder maxInMemoryRows(long n) {
      if (n < 1) {
        throw ShardmapException.invalid("maxInMemoryRows", "must be at least 1, got " + n);
      }
      this.maxInMemoryRows = n;
      return this;
    }

    /** The most shards whose statements start at once for this query; default 8, 1..1024. */
    public Builder parallelism(int n) {
      if (n < 1 || n > 1024) {
        throw ShardmapException.invalid("parallelism", "must be 1..1024, got " + n);
      }
      this.parallelism = n;
      return this;
    }

    /**
     * Runs the statement on every shard as written (only the ownership predicate is added to its WHERE) and
     * combines the shards' rows by {@code merge}, instead of deriving the merge from the SQL: for statements
     * whose merge SQL cannot say, such as a window function or {@code DISTINCT ON} by the shard key, or an
     * aggregate the planner does not merge grouped by it ({@link Merge}). The caller vouches that the shards'
     * rows, combined so, are the answer; ShardmapData still refuses what is not a read the predicate can reach,
     * and a merge that does not fit the statement's columns (INVALID_ARGUMENT, field {@code merge}).
     */
    public Builder merge(Merge merge) {
      if (merge == null) {
        throw ShardmapException.invalid("merge", "a Merge is required (leave it unset to derive it from the SQL)");
      }
      this.merge = merge;
      return this;
    }

    public CrossShardQuery build() {
      return new CrossShardQuery(this);
    }
  }
}
