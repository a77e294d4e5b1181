package io.shardmap.client;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.sql.ReferenceGuard;
import io.shardmap.proto.v1.ReferenceTable;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.MetaStore;
import io.shardmap.store.Txn;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/**
 * A reference table declared the way the migrator will (tests must not depend on it): the table created on
 * shards, each copy guarded with {@link ReferenceGuard#install}, and its record written to etcd at
 * {@link CatalogPaths#referenceTable}. Closing drops the guards and tables and deletes the record.
 */
final class ReferenceTables implements AutoCloseable {
  final ShardmapFleet fleet;
  /** The table's name as created (unqualified, in schema public). */
  final String name;
  /** Its canonical name: {@code public.<name>}. */
  final String canonical;
  private final String columns;
  private final MetaStore store;
  private final CatalogPaths paths;
  private final List<Integer> created = new ArrayList<>();

  ReferenceTables(ShardmapFleet fleet, String columns) {
    this.fleet = fleet;
    this.name = "ref_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    this.canonical = "public." + name;
    this.columns = columns;
    this.paths = new CatalogPaths(fleet.prefix());
    this.store = EtcdMetaStore.builder().endpoints(fleet.etcd().clientEndpoints()).requestTimeout(Duration.ofSeconds(5))
        .connectTimeout(Duration.ofSeconds(5)).build();
  }

  /** Creates the table on shard {@code i} (index into the fleet's shards). */
  void create(int i) throws SQLException {
    fleet.shard(i).exec("CREATE TABLE " + name + " (" + columns + ")");
    created.add(i);
  }

  /** Guards the copy on shard {@code i} at {@code epoch}. */
  void guard(int i, long epoch) throws SQLException {
    try (Connection c = fleet.shard(i).connect()) {
      ReferenceGuard.install(c, canonical, epoch);
    }
  }

  /** Raises the epoch of the copy on shard {@code i} (waits for writers under the old one). */
  long raise(int i, long epoch) throws SQLException {
    try (Connection c = fleet.shard(i).connect()) {
      return ReferenceGuard.raise(c, canonical, epoch);
    }
  }

  /** Writes the record: copies on {@code shards} (names) at {@code epoch}, of {@code keyspaces}. */
  long record(List<String> keyspaces, boolean all, List<String> shards, long epoch, String... primaryKey)
      throws Exception {
    ReferenceTable t = ReferenceTable.newBuilder().setTable(canonical).addAllKeyspaces(keyspaces)
        .setAllKeyspaces(all).addAllPrimaryKey(List.of(primaryKey)).addAllCopies(shards.stream().sorted().toList())
        .setEpoch(epoch).build();
    return store.commit(Txn.builder().put(paths.referenceTable(canonical), t.toByteArray()).build())
        .get(10, TimeUnit.SECONDS).revision();
  }

  /** Every row of the copy on shard {@code i}, each as text, sorted. */
  List<String> rows(int i) throws SQLException {
    return rows(fleet.shard(i), "SELECT t::text FROM " + name + " t ORDER BY 1");
  }

  static List<String> rows(PgInstance pg, String sql) throws SQLException {
    List<String> out = new ArrayList<>();
    try (Connection c = pg.connect(); Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      int n = rs.getMetaData().getColumnCount();
      while (rs.next()) {
        StringBuilder b = new StringBuilder();
        for (int k = 1; k <= n; k++) {
          b.append(k > 1 ? "|" : "").append(rs.getString(k));
        }
        out.add(b.toString());
      }
    }
    return out;
  }

  /** Runs {@code sql} on shard {@code i}'s copy past its guard (as the migrator's repair does). */
  void bypassed(int i, String sql) throws SQLException {
    try (Connection c = fleet.shard(i).connect()) {
      c.setAutoCommit(false);
      ReferenceGuard.bypass(c);
      try (Statement s = c.createStatement()) {
        s.executeUpdate(sql);
      }
      c.commit();
    }
  }

  @Override
  public void close() throws Exception {
    try {
      store.commit(Txn.builder().delete(paths.referenceTable(canonical)).build()).get(10, TimeUnit.SECONDS);
      for (int i : created) {
        try (Connection c = fleet.shard(i).connect()) {
          ReferenceGuard.uninstall(c, canonical);
        } catch (SQLException e) {
          // Never guarded there: the table still goes.
        }
        fleet.shard(i).exec("DROP TABLE IF EXISTS " + name);
      }
    } finally {
      store.close();
    }
  }
}
