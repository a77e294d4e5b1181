package io.shardmap.migrator;

import io.shardmap.client.ShardKey;
import io.shardmap.client.ShardRoute;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.shardmap.client.ClientOptions;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.client.ShardmapData.Idempotence;
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
 * A directory (real etcd, one directory server) over three real PostgreSQL shards, a keyspace "users"
 * with one sharded table, preloaded rows, and SDK writers that insert, update and delete keys inside and
 * outside the moving unit while keeping an exact model of every acknowledged write (each writer owns the
 * keys congruent to its number, so a key's writes are ordered).
 *
 * <p>The keyspace is one of {@link Layout}: a range keyspace ([..0) on s1, [0..) on s2), a hash keyspace
 * (8 buckets, s1 and s2 alternating), a ring (s1 and s2, 8 nodes each unless told), or a directory (fallback s1, keys
 * {@link #DIRECTORY_KEYS} with entries on s2). Keys are the model's numbers, or with text keys the
 * strings {@code "u" + number} in a text column.
 */
final class MoveHarness implements AutoCloseable {
  enum Layout { RANGE, HASH, RING, DIRECTORY }

  /** The directory keyspace's keys with entries (on s2): multiples of 1000 in [-20000, 20000). */
  static final List<Long> DIRECTORY_KEYS = java.util.stream.LongStream.range(-20, 20).map(i -> i * 1000).boxed().toList();

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
  final boolean textKeys;
  private final int ringVnodes;

  /** key → value of the last acknowledged write, absent when deleted or never written. */
  final Map<Long, Long> model = new ConcurrentHashMap<>();
  /** Keys whose last write had an unknown outcome: checked for "at most once", not for the value. */
  final Map<Long, Boolean> uncertain = new ConcurrentHashMap<>();
  final AtomicLong acknowledged = new AtomicLong();
  /** Calls that failed (not acknowledged), and the first few failures, for tests that allow none. */
  final AtomicLong failed = new AtomicLong();
  final List<String> failures = new CopyOnWriteArrayList<>();
  /** Keys writers pick every fourth write (their own ones), so that a small unit sees writes too. */
  volatile List<Long> hotKeys = List.of();
  final List<Throwable> writerErrors = new CopyOnWriteArrayList<>();
  private final AtomicBoolean stop = new AtomicBoolean();
  private final List<Thread> writers = new ArrayList<>();

  MoveHarness() throws Exception {
    this(Layout.RANGE, false);
  }

  MoveHarness(Layout layout, boolean textKeys) throws Exception {
    this(layout, textKeys, 8);
  }

  /** With {@code ringVnodes} nodes per shard on a ring. */
  MoveHarness(Layout layout, boolean textKeys, int ringVnodes) throws Exception {
    this.textKeys = textKeys;
    this.ringVnodes = ringVnodes;
    fixture = new DirectoryFixture("m");
    pg = fixture.pg;
    etcd = fixture.etcd;
    prefix = fixture.prefix;
    table = "users_" + fixture.uid;
    server = fixture.server;
    channel = fixture.channel;
    if (layout == Layout.RANGE && !textKeys) {
      fixture.rangeKeyspace(KS, table, PRELOAD);
    } else {
      createKeyspace(layout);
    }
    for (long k = -PRELOAD; k < PRELOAD; k++) {
      model.put(k, k);
    }
    client = ShardmapClient.start(ClientOptions.builder().targets("127.0.0.1:" + server.port()).keyspaces(KS)
        .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
    data = ShardmapData.open(client, DataOptions.builder().user(pg.shard(0).user()).password(pg.shard(0).password())
        .maxPoolSize(4).staleRouteTimeout(Duration.ofSeconds(10)).build());
    if (layout != Layout.RANGE || textKeys) {
      preload();
    }
  }

  private void createKeyspace(Layout layout) throws SQLException {
    io.shardmap.proto.v1.KeyspaceSpec.Builder spec = io.shardmap.proto.v1.KeyspaceSpec.newBuilder().setName(KS)
        .setKeyType(textKeys ? io.shardmap.proto.v1.KeyType.KEY_TYPE_BYTES : io.shardmap.proto.v1.KeyType.KEY_TYPE_INT64)
        .addTables(io.shardmap.proto.v1.ShardedTable.newBuilder().setName(table).setKeyColumn("id"));
    io.shardmap.proto.v1.CreateKeyspaceRequest.Builder req = io.shardmap.proto.v1.CreateKeyspaceRequest.newBuilder();
    switch (layout) {
      case RANGE -> {
        spec.setStrategy(io.shardmap.proto.v1.Strategy.STRATEGY_RANGE);
        req.addRangeShards("s1").addRangeShards("s2");
      }
      case HASH -> {
        spec.setStrategy(io.shardmap.proto.v1.Strategy.STRATEGY_HASH);
        for (int b = 0; b < 8; b++) {
          req.addHashBuckets(b % 2 == 0 ? "s1" : "s2");
        }
      }
      case RING -> {
        spec.setStrategy(io.shardmap.proto.v1.Strategy.STRATEGY_CONSISTENT_HASH).setDefaultVnodes(ringVnodes);
        req.addRingShards("s1").addRingShards("s2");
      }
      case DIRECTORY -> {
        spec.setStrategy(io.shardmap.proto.v1.Strategy.STRATEGY_DIRECTORY);
        req.setFallbackShard("s1");
      }
    }
    fixture.keyspace(req.setSpec(spec).build(), table, textKeys ? "text" : "bigint");
    if (layout == Layout.DIRECTORY) {
      io.shardmap.proto.v1.PutDirectoryEntriesRequest.Builder put =
          io.shardmap.proto.v1.PutDirectoryEntriesRequest.newBuilder().setKeyspace(KS);
      for (long k : DIRECTORY_KEYS) {
        put.addEntries(io.shardmap.proto.v1.DirectoryEntry.newBuilder().setKey(protoKey(k)).setShard("s2"));
      }
      fixture.admin().putDirectoryEntries(put.build());
    }
  }

  /** The API form of the model's key {@code k}. */
  io.shardmap.proto.v1.Key protoKey(long k) {
    return textKeys ? io.shardmap.proto.v1.Key.newBuilder().setStringKey("u" + k).build()
        : io.shardmap.proto.v1.Key.newBuilder().setIntKey(k).build();
  }

  /** The key as the CLI and MoveSpec write it. */
  String keyText(long k) {
    return textKeys ? "'u" + k + "'" : Long.toString(k);
  }

  /** Inserts every preloaded key (value = key) on the shard the client routes it to. */
  private void preload() throws SQLException {
    Map<String, List<Long>> byShard = new HashMap<>();
    for (long k = -PRELOAD; k < PRELOAD; k++) {
      byShard.computeIfAbsent(route(k).shard(), s -> new ArrayList<>()).add(k);
    }
    for (Map.Entry<String, List<Long>> e : byShard.entrySet()) {
      try (Connection c = pg.shard(SHARDS.indexOf(e.getKey())).connect(); PreparedStatement ps = c.prepareStatement(
          "INSERT INTO " + table + " SELECT " + (textKeys ? "'u' || g" : "g") + ", g, 'row ' || g FROM unnest(?::bigint[]) g")) {
        ps.setArray(1, c.createArrayOf("bigint", e.getValue().toArray()));
        ps.executeUpdate();
      }
    }
  }

  ShardRoute route(long k) {
    return textKeys ? client.route(KS, ShardKey.of("u" + k)) : client.route(KS, k);
  }

  private <T> T inTransaction(long k, io.shardmap.client.SqlWork<T> work) throws SQLException {
    return textKeys ? data.inTransaction(KS, ShardKey.of("u" + k), work) : data.inTransaction(KS, k, work);
  }

  private void setKey(PreparedStatement ps, int i, long k) throws SQLException {
    if (textKeys) {
      ps.setString(i, "u" + k);
    } else {
      ps.setLong(i, k);
    }
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
      List<Long> mine = hotKeys.stream().filter(x -> Math.floorMod(x, n) == me).toList();
      long k = !mine.isEmpty() && rnd.nextInt(4) == 0 ? mine.get(rnd.nextInt(mine.size()))
          : Math.floorDiv(rnd.nextLong(-WRITE_SPAN, WRITE_SPAN), n) * n + me;
      long value = ++seq;
      int op = rnd.nextInt(10);
      try {
        if (op < 5) {
          inTransaction(k, c -> {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " (id, v, payload) VALUES (?, ?, ?) "
                + "ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, payload = EXCLUDED.payload")) {
              setKey(ps, 1, k);
              ps.setLong(2, value);
              ps.setString(3, "w" + me);
              return ps.executeUpdate();
            }
          });
          model.put(k, value);
        } else if (op < 8) {
          io.shardmap.client.SqlWork<Integer> update = c -> {
            try (PreparedStatement ps = c.prepareStatement("UPDATE " + table + " SET v = ? WHERE id = ?")) {
              ps.setLong(1, value);
              setKey(ps, 2, k);
              return ps.executeUpdate();
            }
          };
          int changed = textKeys ? data.withConnection(KS, ShardKey.of("u" + k), Idempotence.IDEMPOTENT, update)
              : data.withConnection(KS, k, Idempotence.IDEMPOTENT, update);
          if (changed == 1) {
            model.put(k, value);
          } else if (model.containsKey(k)) {
            throw new AssertionError("UPDATE of key " + k + " found no row, but the model has " + model.get(k));
          }
        } else {
          inTransaction(k, c -> {
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM " + table + " WHERE id = ?")) {
              setKey(ps, 1, k);
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
        if (failed.incrementAndGet() <= 5) {
          failures.add("key " + k + ": " + e);
        }
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
      if (textKeys && (lo != null || hi != null)) {
        throw new IllegalArgumentException("text keys are not numbers: no range of them");
      }
      try (ResultSet rs = s.executeQuery("SELECT id, v FROM " + table + " WHERE " + (lo == null ? "true" : "id >= " + lo)
          + " AND " + (hi == null ? "true" : "id < " + hi))) {
        while (rs.next()) {
          long k = textKeys ? Long.parseLong(rs.getString(1).substring(1)) : rs.getLong(1);
          if (out.put(k, rs.getLong(2)) != null) {
            throw new AssertionError("key " + k + " twice on " + SHARDS.get(shard));
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
        ShardRoute owner = route(k);
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
