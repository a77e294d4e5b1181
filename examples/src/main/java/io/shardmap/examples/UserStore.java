package io.shardmap.examples;

import io.shardmap.client.CrossShardQuery;
import io.shardmap.client.QueryResult;
import io.shardmap.client.RowMapper;
import io.shardmap.client.ShardKey;
import io.shardmap.client.ShardStatus;
import io.shardmap.client.ShardmapData;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;

/**
 * The data access of a small service: users by id in a table sharded by the keyspace. Every method is
 * one {@link ShardmapData} call keyed by the user's id, so it runs on whichever shard owns that id in the
 * current map; when a range moves, the SDK re-runs a refused call on the new owner (the SQL below may
 * therefore run more than once per call, which {@link #workRuns()} shows).
 *
 * <p>The table is {@code <table>(id bigint PRIMARY KEY, name text NOT NULL)} on every shard.
 */
public final class UserStore {
  private final ShardmapData data;
  private final String keyspace;
  private final String upsertSql;
  private final String selectSql;
  private final String table;
  private final LongAdder calls = new LongAdder();
  private final LongAdder workRuns = new LongAdder();

  public UserStore(ShardmapData data, String keyspace, String table) {
    if (!table.matches("[a-z_][a-z0-9_]{0,62}")) {
      throw new IllegalArgumentException("table: '" + table + "' is not a plain lower-case SQL name");
    }
    this.data = data;
    this.keyspace = keyspace;
    this.table = table;
    // RETURNING (xmax = 0): true when the row was inserted, false when an existing row was updated.
    this.upsertSql = "INSERT INTO " + table + " (id, name) VALUES (?, ?) "
        + "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name RETURNING (xmax = 0)";
    this.selectSql = "SELECT name FROM " + table + " WHERE id = ?";
  }

  /**
   * Creates or renames a user, in a transaction on the primary of the shard that owns {@code id}.
   *
   * @return true when the user was created, false when it existed and was updated
   */
  public boolean upsert(long id, String name) throws SQLException {
    calls.increment();
    return data.inTransaction(keyspace, ShardKey.of(id), c -> {
      workRuns.increment();
      try (PreparedStatement ps = c.prepareStatement(upsertSql)) {
        ps.setLong(1, id);
        ps.setString(2, name);
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          return rs.getBoolean(1);
        }
      }
    });
  }

  /** The user's name, or null when there is no such user; read on a replica of the owning shard if it has one. */
  public String name(long id) throws SQLException {
    calls.increment();
    return data.read(keyspace, ShardKey.of(id), c -> {
      workRuns.increment();
      try (PreparedStatement ps = c.prepareStatement(selectSql)) {
        ps.setLong(1, id);
        try (ResultSet rs = ps.executeQuery()) {
          return rs.next() ? rs.getString(1) : null;
        }
      }
    });
  }

  /** A user as a cross-shard query returns it. */
  public record User(long id, String name) {}

  /**
   * The answer of a cross-shard query and where it came from: the map revision it counted each row at, and
   * the shards it asked with the rows each gave.
   */
  public record Answer<T>(List<T> rows, long revision, List<ShardStatus> shards) {}

  /** How many users there are and their lowest and highest ids: one query over every shard. */
  public Answer<long[]> totals() throws SQLException {
    return query(CrossShardQuery.builder(keyspace, "SELECT count(*), min(id), max(id) FROM " + table).build(),
        r -> new long[] {r.getLong(1), r.getLong(2) == null ? 0 : r.getLong(2), r.getLong(3) == null ? 0 : r.getLong(3)});
  }

  /** Users per length of their name, shortest first: a GROUP BY over every shard, merged by the SDK. */
  public Answer<long[]> usersPerNameLength() throws SQLException {
    return query(CrossShardQuery.builder(keyspace, "SELECT length(name) AS name_length, count(*) AS users FROM "
        + table + " GROUP BY 1 ORDER BY 1").build(), r -> new long[] {r.getLong(1), r.getLong(2)});
  }

  /**
   * The {@code n} users with the lowest ids in [{@code from}, {@code to}): only the shards that own part of that
   * key range are asked, each for its part, and their rows are merged in id order.
   */
  public Answer<User> firstUsersIn(long from, long to, int n) throws SQLException {
    return query(CrossShardQuery.builder(keyspace, "SELECT id, name FROM " + table + " ORDER BY id LIMIT ?")
        .params(n).keyRange(ShardKey.of(from), ShardKey.of(to)).build(), r -> new User(r.getLong(1), r.getString(2)));
  }

  /** Not counted in {@link #calls()}, which counts the single-key calls. */
  private <T> Answer<T> query(CrossShardQuery q, RowMapper<T> mapper) throws SQLException {
    try (QueryResult r = data.query(q)) {
      List<T> rows = new ArrayList<>();
      while (r.next()) {
        rows.add(mapper.map(r));
      }
      return new Answer<>(rows, r.revision(), r.shards());
    }
  }

  /** Calls made through this store. */
  public long calls() {
    return calls.sum();
  }

  /** Runs of the calls' SQL; above {@link #calls()} when the SDK re-ran calls (stale route, lost connection). */
  public long workRuns() {
    return workRuns.sum();
  }
}
