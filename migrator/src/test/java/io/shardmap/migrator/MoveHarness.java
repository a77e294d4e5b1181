package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.shardmap.client.ClientOptions;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.client.ShardmapData.Idempotence;
import io.shardmap.core.Route;
import io.shardmap.server.DirectoryServer;
import io.shardmap.testkit.EtcdCluster;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A directory (real etcd, one directory server) over three real PostgreSQL shards, a range keyspace
 * "users" ([..0) on s1, [0..) on s2) with one sharded table, preloaded rows, and SDK writers that insert,
 * update and delete keys inside and outside the moving range while keeping an exact model of every
 * acknowledged write (each writer owns the keys congruent to its number, so a key's writes are ordered).
 */
final class MoveHarness implements AutoCloseable {
  static final List<String> SHARDS = DirectoryFixture.SHARDS;
  static final String KS = "users";
  /** Preloaded keys: every key in [-PRELOAD, PRELOAD). Writers touch [-WRITE_SPAN, WRITE_SPAN). */
  static final long PRELOAD = 15_000;
  static final long WRITE_SPAN = 40_000;

  final DirectoryFixture fixture;
  final PostgresFixture pg;
  final EtcdCluster etcd;
  final String prefix;
  final String table;
  final DirectoryServer server;
  final ManagedChannel channel;
  final ShardmapClient client;
  final ShardmapData data;

  /** key → value of the last acknowledged write, absent when deleted or never written. */
  final Map<Long, Long> model = new ConcurrentHashMap<>();
  /** Keys whose last write had an unknown outcome: checked for "at most once", not for the value. */
  final Map<Long, Boolean> uncertain = new ConcurrentHashMap<>();
  final AtomicLong acknowledged = new AtomicLong();
  final List<Throwable> writerErrors = new CopyOnWriteArrayList<>();
  private final AtomicBoolean stop = new AtomicBoolean();
  private final List<Thread> writers = new ArrayList<>();

  MoveHarness() throws Exception {
    fixture = new DirectoryFixture("m");
    pg = fixture.pg;
    etcd = fixture.etcd;
    prefix = fixture.prefix;
    table = "users_" + fixture.uid;
    server = fixture.server;
    channel = fixture.channel;
    fixture.rangeKeyspace(KS, table, PRELOAD);
    for (long k = -PRELOAD; k < PRELOAD; k++) {
      model.put(k, k);
    }
    client = ShardmapClient.start(ClientOptions.builder().targets("127.0.0.1:" + server.port()).keyspaces(KS)
        .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
    data = ShardmapData.open(client, DataOptions.builder().user(pg.shard(0).user()).password(pg.shard(0).password())
        .maxPoolSize(4).staleRouteTimeout(Duration.ofSeconds(10)).build());
  }

  MigratorOptions.Builder migratorOptions() {
    return fixture.migratorOptions();
  }

  /** Starts {@code n} SDK writers, each doing a bounded number of writes for at most {@code limit}. */
  void startWriters(int n, Duration limit) {
    for (int w = 0; w < n; w++) {
      int me = w;
      Thread t = new Thread(() -> write(me, n, limit), "writer-" + w);
      t.start();
      writers.add(t);
    }
  }

  private void write(int me, int n, Duration limit) {
    SplittableRandom rnd = new SplittableRandom(me * 7919L);
    long deadline = System.nanoTime() + limit.toNanos();
    long seq = 1_000_000L * (me + 1);
    for (int i = 0; i < 1_000_000 && !stop.get() && System.nanoTime() < deadline; i++) {
      long k = Math.floorDiv(rnd.nextLong(-WRITE_SPAN, WRITE_SPAN), n) * n + me;
      long value = ++seq;
      int op = rnd.nextInt(10);
      try {
        if (op < 5) {
          data.inTransaction(KS, k, c -> {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " (id, v, payload) VALUES (?, ?, ?) "
                + "ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, payload = EXCLUDED.payload")) {
              ps.setLong(1, k);
              ps.setLong(2, value);
              ps.setString(3, "w" + me);
              return ps.executeUpdate();
            }
          });
          model.put(k, value);
        } else if (op < 8) {
          int changed = data.withConnection(KS, k, Idempotence.IDEMPOTENT, c -> {
            try (PreparedStatement ps = c.prepareStatement("UPDATE " + table + " SET v = ? WHERE id = ?")) {
              ps.setLong(1, value);
              ps.setLong(2, k);
              return ps.executeUpdate();
            }
          });
          if (changed == 1) {
            model.put(k, value);
          } else if (model.containsKey(k)) {
            throw new AssertionError("UPDATE of key " + k + " found no row, but the model has " + model.get(k));
          }
        } else {
          data.inTransaction(KS, k, c -> {
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM " + table + " WHERE id = ?")) {
              ps.setLong(1, k);
              return ps.executeUpdate();
            }
          });
          model.remove(k);
        }
        uncertain.remove(k);
        acknowledged.incrementAndGet();
      } catch (SQLException | RuntimeException e) {
        // Not acknowledged: the write may or may not have happened.
        uncertain.put(k, true);
        if (!(e instanceof SQLException) && !(e instanceof io.shardmap.core.ShardmapException)) {
          writerErrors.add(e);
        }
      } catch (AssertionError e) {
        writerErrors.add(e);
      }
    }
  }

  void stopWriters() throws InterruptedException {
    stop.set(true);
    for (Thread t : writers) {
      t.join(30_000);
    }
    writers.clear();
    stop.set(false);
  }

  /** key → value on one shard, for keys in [lo, hi) (null = unbounded). */
  Map<Long, Long> rows(int shard, Long lo, Long hi) throws SQLException {
    Map<Long, Long> out = new TreeMap<>();
    try (Connection c = pg.shard(shard).connect(); Statement s = c.createStatement()) {
      ResultSet exists = s.executeQuery("SELECT to_regclass('" + table + "') IS NOT NULL");
      exists.next();
      if (!exists.getBoolean(1)) {
        return out;
      }
      try (ResultSet rs = s.executeQuery("SELECT id, v FROM " + table + " WHERE " + (lo == null ? "true" : "id >= " + lo)
          + " AND " + (hi == null ? "true" : "id < " + hi))) {
        while (rs.next()) {
          if (out.put(rs.getLong(1), rs.getLong(2)) != null) {
            throw new AssertionError("key " + rs.getLong(1) + " twice on " + SHARDS.get(shard));
          }
        }
      }
    }
    return out;
  }

  /**
   * Every shard holds exactly the keys the directory routes to it, each exactly once, with the value of
   * its last acknowledged write (keys with an unknown last outcome: at most once, anywhere it is owned).
   */
  void assertEveryAcknowledgedWriteOnItsOwner() throws Exception {
    Map<Long, String> seenOn = new HashMap<>();
    for (int i = 0; i < SHARDS.size(); i++) {
      for (Map.Entry<Long, Long> e : rows(i, null, null).entrySet()) {
        long k = e.getKey();
        String other = seenOn.put(k, SHARDS.get(i));
        assertTrue(other == null, "key " + k + " is on both " + other + " and " + SHARDS.get(i));
        Route owner = client.route(KS, k);
        assertEquals(owner.shard(), SHARDS.get(i), "key " + k + " is on " + SHARDS.get(i) + " but owned by "
            + owner.shard());
        if (!uncertain.containsKey(k)) {
          assertEquals(model.get(k), e.getValue(), "value of key " + k + " on " + SHARDS.get(i));
        }
      }
    }
    for (Map.Entry<Long, Long> e : model.entrySet()) {
      if (!uncertain.containsKey(e.getKey())) {
        assertTrue(seenOn.containsKey(e.getKey()), "acknowledged key " + e.getKey() + " (value " + e.getValue()
            + ") is on no shard");
      }
    }
  }

  static void exec(PgInstance p, String sql) throws SQLException {
    DirectoryFixture.exec(p, sql);
  }

  @Override
  public void close() throws Exception {
    stopWriters();
    data.close();
    client.close();
    fixture.close();
  }
}
