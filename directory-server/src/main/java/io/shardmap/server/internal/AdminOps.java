package io.shardmap.server.internal;

import io.shardmap.catalog.CatalogPaths;
import com.google.protobuf.MessageLite;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.DirectoryTable;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.GeoTable;
import io.shardmap.core.HashTable;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Names;
import io.shardmap.core.RangeTable;
import io.shardmap.core.Ring;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.*;
import io.shardmap.store.Compare;
import io.shardmap.store.MetaStore;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import java.math.BigInteger;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.LongFunction;
import java.util.function.LongSupplier;

/**
 * Every map change, as a pure plan (validation against the current snapshot, then one etcd transaction
 * whose compares pin every record the plan read) executed with optimistic retries.
 *
 * <p>Why this is safe with any number of admins on any replicas: each transaction compares the mod
 * revision of every record it derived its writes from, so a concurrent change to any of them makes it
 * fail as a whole; it is then re-planned against a snapshot that includes the winner. Invariants hold
 * because every plan checks them against the records it pins. Ownership has one extra guard: every write
 * that makes a shard an owner also rewrites {@code shardrefs/{shard}}, and deregistration requires that
 * key unchanged since the snapshot that showed the shard owns nothing.
 *
 * <p>Ranges being moved by the migrator carry a marker, {@code keyspaces/{ks}/moving/{hex start}} (value:
 * the migration id), which the migrator writes in a transaction that compares the mod revision of the
 * range record it marks (and of the keyspace spec), and which also rewrites
 * {@code keyspaces/{ks}/moving-guard}. Split, merge and reassign refuse to change a marked range, and
 * DropKeyspace refuses while any marker exists; why neither can race past a marker is argued at
 * {@link #refuseIfMoving} and {@link #dropKeyspace}. Markers are not part of the watched maps: planners
 * read them from etcd (one linearizable prefix read) on every attempt.
 *
 * <p>Other units have markers too ({@code moving/bucket/N}, {@code moving/ring}, {@code moving/entry/HEX}):
 * ReassignBucket refuses a marked bucket and compares its marker's absence, Add/RemoveRingNodes compare
 * {@code moving/ring} absent, ReshardHash (while anything moves) and Put/DeleteDirectoryEntries (of a
 * marked key) compare the moving guard unchanged since their marker read, like a drop. The migrator's
 * marker transactions compare the layout's or the entries' mod revisions, so either side commits second
 * and fails (docs/migrator-design.md, "Units in etcd").
 */
public final class AdminOps {
  public static final int DEFAULT_VNODES = 1024;
  public static final int MAX_DIRECTORY_BATCH = 100;
  private static final int MAX_ATTEMPTS = 32;

  private final MetaStore store;
  private final CatalogPaths paths;
  private final DirectoryState state;
  private final Duration timeout;
  private final int maxTxnOps;
  private final LongSupplier nanoTime;
  private final ServerMetrics metrics;

  public AdminOps(MetaStore store, CatalogPaths paths, DirectoryState state, Duration timeout, int maxTxnOps,
                  LongSupplier nanoTime, ServerMetrics metrics) {
    this.store = store;
    this.paths = paths;
    this.state = state;
    this.timeout = timeout;
    this.maxTxnOps = maxTxnOps;
    this.nanoTime = nanoTime;
    this.metrics = metrics;
  }

  private record Plan<T>(Txn txn, LongFunction<T> result) {}

  private <T> T execute(String op, Function<DirectorySnapshot, Plan<T>> planner) {
    for (int attempt = 1; ; attempt++) {
      state.checkWritable();
      Plan<T> plan;
      try {
        plan = planner.apply(state.snapshot());
      } catch (ShardmapException e) {
        if (e.code() != ErrorCode.UNAVAILABLE) {
          throw e;
        }
        // Only a planning read fails a plan with UNAVAILABLE, and its message says nothing was written.
        throw new ShardmapException(ErrorCode.UNAVAILABLE, op + ": " + e.getMessage(), e);
      }
      Txn txn = plan.txn();
      if (txn.compares().size() > maxTxnOps || txn.writes().size() > maxTxnOps) {
        throw ShardmapException.invalid("request", "the change needs " + Math.max(txn.compares().size(),
            txn.writes().size()) + " operations in one etcd transaction, more than the limit of "
            + maxTxnOps + " (etcd --max-txn-ops); make it in smaller steps");
      }
      TxnResult r;
      try {
        r = commit(op, txn);
      } catch (ShardmapException unknown) {
        if (unknown.code() != ErrorCode.UNAVAILABLE) {
          throw unknown;
        }
        // The outcome is unknown (e.g. the etcd leader died with the request in flight). Retrying
        // blindly could apply it twice; find out instead.
        Outcome o = verify(op, txn, unknown);
        if (o.applied) {
          r = new TxnResult(true, o.revision);
        } else if (attempt < MAX_ATTEMPTS) {
          continue;
        } else {
          throw unknown;
        }
      }
      try {
        if (r.succeeded()) {
          // Read-your-writes on this replica: answer once the change is visible to lookups here.
          state.awaitRevision(r.revision(), timeout);
          return plan.result().apply(r.revision());
        }
        if (attempt >= MAX_ATTEMPTS) {
          throw new ShardmapException(ErrorCode.ABORTED, op + ": gave up after " + attempt
              + " attempts; concurrent changes kept invalidating it. Nothing was written; retry.");
        }
        // The failed compare's revision may be one made outside our prefix; progress past it is enough.
        if (!state.awaitObserved(r.revision(), timeout)) {
          throw new ShardmapException(ErrorCode.UNAVAILABLE, op + ": this server's copy of the maps "
              + "lags etcd (waiting for revision " + r.revision() + "); nothing was written");
        }
        // Writers contending for one record would otherwise retry in lockstep and starve each other.
        long capMs = Math.min(100, 1L << Math.min(attempt, 7));
        Thread.sleep(java.util.concurrent.ThreadLocalRandom.current().nextLong(capMs + 1));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new ShardmapException(ErrorCode.UNAVAILABLE, op + ": interrupted");
      }
    }
  }

  /** What a transaction with an unknown outcome did: applied at {@code revision}, or provably not. */
  private record Outcome(boolean applied, long revision) {}

  /**
   * Reads back every key a transaction compared or wrote. If all its compares still hold, it did not
   * apply (each of our transactions writes a key it compares), so re-planning is safe. If every put
   * holds exactly our value, written at one revision, and every delete is gone, it applied. Anything
   * else means another writer touched the same records: the outcome stays unknown and the caller gets
   * UNAVAILABLE saying so.
   */
  private Outcome verify(String op, Txn txn, ShardmapException unknown) {
    long deadline = nanoTime.getAsLong() + 3 * timeout.toNanos();
    while (true) {
      try {
        return verifyOnce(txn);
      } catch (ShardmapException e) {
        if (e.code() != ErrorCode.UNAVAILABLE) {
          throw new ShardmapException(ErrorCode.UNAVAILABLE, unknown.getMessage() + "; reading it back could "
              + "not tell: " + e.getMessage() + " since", e);
        }
        if (nanoTime.getAsLong() > deadline) {
          throw new ShardmapException(ErrorCode.UNAVAILABLE, unknown.getMessage()
              + "; could not read back whether it was applied (" + e.getMessage() + ")", e);
        }
      }
      try {
        Thread.sleep(100);
      } catch (InterruptedException ie) {
        Thread.currentThread().interrupt();
        throw unknown;
      }
    }
  }

  private Outcome verifyOnce(Txn txn) {
    Map<String, io.shardmap.store.KeyValue> current = new HashMap<>();
    Set<String> keys = new LinkedHashSet<>();
    txn.compares().forEach(c -> keys.add(c.key()));
    for (Txn.Write w : txn.writes()) {
      if (w instanceof Txn.Put p) {
        keys.add(p.key());
      } else if (w instanceof Txn.Delete d) {
        keys.add(d.key());
      }
    }
    long readRevision = 0;
    for (String k : keys) {
      io.shardmap.store.RangeResult rr = read("reading back an unconfirmed change", k, false, false);
      readRevision = Math.max(readRevision, rr.revision());
      rr.kvs().forEach(kv -> current.put(kv.key(), kv));
    }
    boolean comparesHold = true;
    for (Compare c : txn.compares()) {
      io.shardmap.store.KeyValue kv = current.get(c.key());
      if (kv == null ? !c.test(0, 0, 0) : !c.test(kv.version(), kv.createRevision(), kv.modRevision())) {
        comparesHold = false;
      }
    }
    if (comparesHold) {
      return new Outcome(false, 0);
    }
    long putRevision = 0;
    for (Txn.Write w : txn.writes()) {
      if (w instanceof Txn.Put p) {
        io.shardmap.store.KeyValue kv = current.get(p.key());
        if (kv == null || !java.util.Arrays.equals(kv.value(), p.value())
            || (putRevision != 0 && kv.modRevision() != putRevision)) {
          throw unknownOutcome();
        }
        putRevision = kv.modRevision();
      } else if (w instanceof Txn.Delete d) {
        if (current.containsKey(d.key())) {
          throw unknownOutcome();
        }
      } else if (w instanceof Txn.DeletePrefix dp
          && !read("reading back an unconfirmed change", dp.prefix(), true, false).kvs().isEmpty()) {
        throw unknownOutcome();
      }
    }
    return new Outcome(true, putRevision != 0 ? putRevision : readRevision);
  }

  private static ShardmapException unknownOutcome() {
    return new ShardmapException(ErrorCode.INTERNAL, "another writer changed the same records");
  }

  /**
   * One linearizable read. {@code planning}: a read that decides a change before anything is sent, so a
   * failure says nothing was written ({@code what} names the data); otherwise {@code what} names the
   * activity and the caller says what the failure means.
   */
  private io.shardmap.store.RangeResult read(String what, String key, boolean prefix, boolean planning) {
    long t0 = nanoTime.getAsLong();
    try {
      io.shardmap.store.RangeResult r = (prefix ? store.getPrefix(key) : store.get(key))
          .get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      metrics.etcdRequest("get", "ok", nanoTime.getAsLong() - t0);
      return r;
    } catch (Exception e) {
      metrics.etcdRequest("get", "error", nanoTime.getAsLong() - t0);
      throw planning ? Errors.fromStoreRead(what, e) : Errors.fromStore(what, e);
    }
  }

  private TxnResult commit(String op, Txn txn) {
    long t0 = nanoTime.getAsLong();
    try {
      TxnResult r = store.commit(txn).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      metrics.etcdRequest("txn", r.succeeded() ? "ok" : "conflict", nanoTime.getAsLong() - t0);
      return r;
    } catch (Exception e) {
      metrics.etcdRequest("txn", "error", nanoTime.getAsLong() - t0);
      throw Errors.fromStoreWrite(op, e);
    }
  }

  private static byte[] bytes(MessageLite m) {
    return m.toByteArray();
  }

  // ---------------------------------------------------------------- shards

  public RegisterShardResponse registerShard(RegisterShardRequest req) {
    Shard shard = validShard("shard", req.getShard());
    return execute("RegisterShard", snap -> {
      if (snap.shards().containsKey(shard.getName())) {
        throw new ShardmapException(ErrorCode.ALREADY_EXISTS, "shard '" + shard.getName()
            + "' is already registered (use UpdateShard to change it)");
      }
      Txn txn = Txn.builder().compare(Compare.absent(paths.shard(shard.getName())))
          .put(paths.shard(shard.getName()), bytes(shard)).build();
      return new Plan<>(txn, rev -> RegisterShardResponse.newBuilder()
          .setShard(shard.toBuilder().setRevision(rev)).setRevision(rev).build());
    });
  }

  public UpdateShardResponse updateShard(UpdateShardRequest req) {
    Shard shard = validShard("shard", req.getShard());
    return execute("UpdateShard", snap -> {
      Shard old = snap.shard(shard.getName());
      if (req.getExpectedRevision() != 0 && req.getExpectedRevision() != old.getRevision()) {
        throw ShardmapException.precondition("expected_revision: shard '" + shard.getName()
            + "' is at revision " + old.getRevision() + ", not " + req.getExpectedRevision());
      }
      Txn txn = Txn.builder().compare(Compare.modRevision(paths.shard(shard.getName()), old.getRevision()))
          .put(paths.shard(shard.getName()), bytes(shard)).build();
      return new Plan<>(txn, rev -> UpdateShardResponse.newBuilder()
          .setShard(shard.toBuilder().setRevision(rev)).setRevision(rev).build());
    });
  }

  public DeregisterShardResponse deregisterShard(DeregisterShardRequest req) {
    String name = Names.shard("name", req.getName());
    return execute("DeregisterShard", snap -> {
      Shard old = snap.shard(name);
      for (KeyspaceMap k : snap.keyspaces().values()) {
        if (k.owners().contains(name)) {
          throw ShardmapException.precondition("shard '" + name + "' owns data in keyspace '" + k.name()
              + "'; move its ranges, buckets, ring nodes, entries or regions away first");
        }
      }
      Txn txn = Txn.builder()
          .compare(Compare.modRevision(paths.shard(name), old.getRevision()))
          // No write made the shard an owner after the snapshot that shows it owns nothing.
          .compare(new Compare(paths.shardRef(name), Compare.Target.MOD_REVISION, Compare.Op.LESS,
              snap.revision() + 1))
          .delete(paths.shard(name)).delete(paths.shardRef(name)).build();
      return new Plan<>(txn, rev -> DeregisterShardResponse.newBuilder().setRevision(rev).build());
    });
  }

  private static Shard validShard(String field, Shard s) {
    Names.shard(field + ".name", s.getName());
    if (!s.hasPrimary()) {
      throw ShardmapException.invalid(field + ".primary", "a shard needs its primary endpoint");
    }
    validEndpoint(field + ".primary", s.getPrimary());
    for (int i = 0; i < s.getReplicasCount(); i++) {
      validEndpoint(field + ".replicas[" + i + "]", s.getReplicas(i));
    }
    if (!s.getRegion().isEmpty()) {
      Names.region(field + ".region", s.getRegion());
    }
    if (s.getState() == ShardState.UNRECOGNIZED) {
      throw ShardmapException.invalid(field + ".state", "unknown shard state");
    }
    Shard.Builder b = s.toBuilder().setRevision(0);
    if (s.getState() == ShardState.SHARD_STATE_UNSPECIFIED) {
      b.setState(ShardState.SHARD_STATE_ACTIVE);
    }
    return b.build();
  }

  private static void validEndpoint(String field, Endpoint e) {
    Names.host(field + ".host", e.getHost());
    if (e.getPort() < 1 || e.getPort() > 65535) {
      throw ShardmapException.invalid(field + ".port", "must be 1-65535, got " + e.getPort());
    }
    if (e.getDatabase().isEmpty() || e.getDatabase().length() > 63) {
      throw ShardmapException.invalid(field + ".database", "a PostgreSQL database name of 1-63 characters "
          + "is required");
    }
  }

  // ---------------------------------------------------------------- keyspaces

  public CreateKeyspaceResponse createKeyspace(CreateKeyspaceRequest req) {
    KeyspaceSpec spec = validSpec(req.getSpec());
    String ks = spec.getName();
    KeyType type = spec.getKeyType();
    return execute("CreateKeyspace", snap -> {
      if (snap.keyspaces().containsKey(ks)) {
        throw new ShardmapException(ErrorCode.ALREADY_EXISTS, "keyspace '" + ks + "' already exists");
      }
      Txn.Builder txn = Txn.builder().compare(Compare.absent(paths.spec(ks))).put(paths.spec(ks), bytes(spec));
      Set<String> owners = new LinkedHashSet<>();
      switch (spec.getStrategy()) {
        case STRATEGY_RANGE -> {
          List<Route> routes = initialRanges(type, req, snap);
          RangeTable.build(type, routes, "ranges");
          for (Route r : routes) {
            owners.add(r.shard());
            txn.put(paths.range(ks, r.range().start()), bytes(KeyspaceMap.toProto(type, r)));
          }
        }
        case STRATEGY_HASH -> {
          requireOnly(req, "hash_buckets");
          if (req.getHashBucketsCount() == 0 || req.getHashBucketsCount() > HashTable.MAX_BUCKETS) {
            throw ShardmapException.invalid("hash_buckets", "a hash keyspace needs 1 to "
                + HashTable.MAX_BUCKETS + " buckets (one shard name each), got " + req.getHashBucketsCount());
          }
          HashLayout.Builder h = HashLayout.newBuilder();
          for (int i = 0; i < req.getHashBucketsCount(); i++) {
            String s = registered(snap, "hash_buckets[" + i + "]", req.getHashBuckets(i));
            owners.add(s);
            h.addBuckets(BucketAssignment.newBuilder().setShard(s).setEpoch(1));
          }
          txn.put(paths.layout(ks), bytes(h.build()));
        }
        case STRATEGY_CONSISTENT_HASH -> {
          requireOnly(req, "ring_shards");
          if (req.getRingShardsCount() == 0) {
            throw ShardmapException.invalid("ring_shards", "a consistent-hash keyspace needs at least one shard");
          }
          RingLayout.Builder ring = RingLayout.newBuilder();
          for (int i = 0; i < req.getRingShardsCount(); i++) {
            String s = registered(snap, "ring_shards[" + i + "]", req.getRingShards(i));
            if (!owners.add(s)) {
              throw ShardmapException.invalid("ring_shards[" + i + "]", "shard '" + s + "' is listed twice");
            }
            RingShard.Builder rs = RingShard.newBuilder().setShard(s);
            for (int v = 0; v < spec.getDefaultVnodes(); v++) {
              rs.addVnodeEpochs(1);
            }
            ring.addShards(rs);
          }
          Ring.of(ring.build(), 0);
          txn.put(paths.layout(ks), bytes(ring.build()));
        }
        case STRATEGY_DIRECTORY -> {
          requireOnly(req, "fallback_shard");
          DirectoryLayout.Builder d = DirectoryLayout.newBuilder();
          if (!req.getFallbackShard().isEmpty()) {
            owners.add(registered(snap, "fallback_shard", req.getFallbackShard()));
            d.setFallbackShard(req.getFallbackShard()).setFallbackEpoch(1);
          }
          txn.put(paths.layout(ks), bytes(d.build()));
        }
        case STRATEGY_GEOGRAPHIC -> {
          requireOnly(req, "regions");
          if (req.getRegionsCount() == 0) {
            throw ShardmapException.invalid("regions", "a geographic keyspace needs at least one region");
          }
          GeoLayout.Builder g = GeoLayout.newBuilder();
          for (int i = 0; i < req.getRegionsCount(); i++) {
            RegionAssignment r = req.getRegions(i);
            Names.region("regions[" + i + "].region", r.getRegion());
            owners.add(registered(snap, "regions[" + i + "].shard", r.getShard()));
            g.addRegions(RegionAssignment.newBuilder().setRegion(r.getRegion()).setShard(r.getShard())
                .setEpoch(1));
          }
          String def = req.getDefaultRegion().isEmpty() ? req.getRegions(0).getRegion() : req.getDefaultRegion();
          Names.region("default_region", def);
          g.setDefaultRegion(def);
          GeoTable.of(g.build(), 0);
          txn.put(paths.layout(ks), bytes(g.build()));
        }
        default -> throw new IllegalStateException("validated strategy " + spec.getStrategy());
      }
      guardOwners(txn, owners);
      return new Plan<>(txn.build(), rev -> CreateKeyspaceResponse.newBuilder().setSpec(spec)
          .setRevision(rev).build());
    });
  }

  /** Requires every owner to be registered at commit time, and marks it as an owner (see class doc). */
  private void guardOwners(Txn.Builder txn, Set<String> owners) {
    for (String s : owners) {
      txn.compare(Compare.present(paths.shard(s)));
      txn.put(paths.shardRef(s), new byte[0]);
    }
  }

  private static String registered(DirectorySnapshot snap, String field, String shard) {
    Names.shard(field, shard);
    if (!snap.shards().containsKey(shard)) {
      throw ShardmapException.notFound(field + ": shard '" + shard + "' is not registered");
    }
    return shard;
  }

  private static void requireOnly(CreateKeyspaceRequest req, String allowed) {
    Map<String, Boolean> set = new TreeMap<>();
    set.put("ranges", req.getRangesCount() > 0);
    set.put("range_shards", req.getRangeShardsCount() > 0);
    set.put("hash_buckets", req.getHashBucketsCount() > 0);
    set.put("ring_shards", req.getRingShardsCount() > 0);
    set.put("fallback_shard", !req.getFallbackShard().isEmpty());
    set.put("regions", req.getRegionsCount() > 0);
    set.put("default_region", !req.getDefaultRegion().isEmpty());
    Set<String> ok = new HashSet<>(List.of(allowed.split(",")));
    if (allowed.equals("regions")) {
      ok.add("default_region");
    }
    for (Map.Entry<String, Boolean> e : set.entrySet()) {
      if (e.getValue() && !ok.contains(e.getKey())) {
        throw ShardmapException.invalid(e.getKey(), "does not apply to " + req.getSpec().getStrategy()
            + " keyspaces (use " + String.join(" or ", ok) + ")");
      }
    }
  }

  private List<Route> initialRanges(KeyType type, CreateKeyspaceRequest req, DirectorySnapshot snap) {
    requireOnly(req, "ranges,range_shards");
    if (req.getRangesCount() > 0 && req.getRangeShardsCount() > 0) {
      throw ShardmapException.invalid("ranges", "give either ranges or range_shards, not both");
    }
    List<Route> routes = new ArrayList<>();
    if (req.getRangesCount() > 0) {
      for (int i = 0; i < req.getRangesCount(); i++) {
        RangeAssignment a = req.getRanges(i);
        String field = "ranges[" + i + "]";
        registered(snap, field + ".shard", a.getShard());
        routes.add(new Route(a.getShard(), 1, KeyRange.fromProto(type, a.getRange(), field + ".range"), 0));
      }
    } else if (req.getRangeShardsCount() > 0) {
      int n = req.getRangeShardsCount();
      if (n > 1024) {
        throw ShardmapException.invalid("range_shards", "at most 1024 initial ranges, got " + n);
      }
      byte[] prev = new byte[0];
      for (int i = 0; i < n; i++) {
        String s = registered(snap, "range_shards[" + i + "]", req.getRangeShards(i));
        byte[] end = i == n - 1 ? new byte[0] : evenBoundary(type, i + 1, n);
        routes.add(new Route(s, 1, KeyRange.of(prev, end, "range_shards"), 0));
        prev = end;
      }
    } else {
      throw ShardmapException.invalid("ranges", "a range keyspace needs its initial ranges: ranges, or "
          + "range_shards to split the key space evenly");
    }
    int limit = maxTxnOps - 2;
    if (routes.size() > limit) {
      throw ShardmapException.invalid("ranges", "at most " + limit + " initial ranges fit one etcd "
          + "transaction (etcd --max-txn-ops " + maxTxnOps + "); create fewer and split later");
    }
    return routes;
  }

  /** The i-th of n equal cut points of the key space. */
  static byte[] evenBoundary(KeyType type, int i, int n) {
    if (type == KeyType.KEY_TYPE_INT64) {
      long u = BigInteger.ONE.shiftLeft(64).multiply(BigInteger.valueOf(i))
          .divide(BigInteger.valueOf(n)).longValue();
      return Keys.encodeInt64(u ^ Long.MIN_VALUE);
    }
    int v = (int) ((long) i * 65536 / n);
    return (v & 0xFF) == 0 ? new byte[] {(byte) (v >>> 8)} : new byte[] {(byte) (v >>> 8), (byte) v};
  }

  private static KeyspaceSpec validSpec(KeyspaceSpec s) {
    Names.keyspace("spec.name", s.getName());
    if (s.getStrategy() == Strategy.STRATEGY_UNSPECIFIED || s.getStrategy() == Strategy.UNRECOGNIZED) {
      throw ShardmapException.invalid("spec.strategy", "choose one of STRATEGY_RANGE, STRATEGY_HASH, "
          + "STRATEGY_CONSISTENT_HASH, STRATEGY_DIRECTORY, STRATEGY_GEOGRAPHIC");
    }
    KeyspaceSpec.Builder b = s.toBuilder();
    if (s.getStrategy() == Strategy.STRATEGY_GEOGRAPHIC) {
      if (s.getKeyType() == KeyType.KEY_TYPE_INT64) {
        throw ShardmapException.invalid("spec.key_type", "a geographic keyspace's keys are region names: "
            + "use KEY_TYPE_BYTES (or leave it unset)");
      }
      b.setKeyType(KeyType.KEY_TYPE_BYTES);
    } else if (s.getKeyType() == KeyType.KEY_TYPE_UNSPECIFIED || s.getKeyType() == KeyType.UNRECOGNIZED) {
      throw ShardmapException.invalid("spec.key_type", "choose KEY_TYPE_INT64 or KEY_TYPE_BYTES");
    }
    Set<String> tables = new HashSet<>();
    for (int i = 0; i < s.getTablesCount(); i++) {
      ShardedTable t = s.getTables(i);
      Names.sqlIdentifier("spec.tables[" + i + "].name", t.getName());
      Names.sqlIdentifier("spec.tables[" + i + "].key_column", t.getKeyColumn());
      if (!tables.add(t.getName())) {
        throw ShardmapException.invalid("spec.tables[" + i + "].name", "table '" + t.getName()
            + "' is listed twice");
      }
    }
    if (s.getStrategy() == Strategy.STRATEGY_CONSISTENT_HASH) {
      if (s.getDefaultVnodes() == 0) {
        b.setDefaultVnodes(DEFAULT_VNODES);
      } else if (s.getDefaultVnodes() < 1 || s.getDefaultVnodes() > Ring.MAX_VNODES_PER_SHARD) {
        throw ShardmapException.invalid("spec.default_vnodes", "must be 1-" + Ring.MAX_VNODES_PER_SHARD
            + ", got " + s.getDefaultVnodes());
      }
    } else if (s.getDefaultVnodes() != 0) {
      throw ShardmapException.invalid("spec.default_vnodes", "only applies to STRATEGY_CONSISTENT_HASH");
    }
    return b.build();
  }

  public DescribeKeyspaceResponse describeKeyspace(DescribeKeyspaceRequest req) {
    String ks = Names.keyspace("name", req.getName());
    state.snapshot().keyspace(ks);
    // The moving markers are not in the map: read them from etcd, then describe a map that includes the
    // last marker write, and so the range records each marker pinned. (Not the read's revision: that is
    // etcd's, which keys outside our prefix advance too, and the watch would never deliver it.) Without
    // etcd the rest is still answered.
    Markers markers = null;
    if (state.etcdReachable()) {
      try {
        markers = markers(ks);
        state.awaitRevision(markers.lastWrite(), timeout);
      } catch (ShardmapException e) {
        if (e.code() != ErrorCode.UNAVAILABLE) {
          throw e;
        }
        markers = null;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new ShardmapException(ErrorCode.UNAVAILABLE, "DescribeKeyspace: interrupted");
      }
    }
    DirectorySnapshot snap = state.snapshot();
    KeyspaceMap k = snap.keyspace(ks);
    DescribeKeyspaceResponse.Builder out = DescribeKeyspaceResponse.newBuilder().setSpec(k.spec())
        .setRevision(snap.revision());
    if (markers == null) {
      out.setMovingUnknown(true);
    } else {
      markers.ids().forEach((key, id) -> out.addMoving(moving(k, key.substring(paths.movingPrefix(ks).length()), id)));
    }
    Map<String, double[]> shares = new TreeMap<>();
    switch (k.strategy()) {
      case STRATEGY_RANGE -> {
        RangeTable t = k.ranges();
        out.setLayoutEntries(t.size());
        for (Route r : t.routes()) {
          double f = position(k.keyType(), r.range().end(), 1.0) - position(k.keyType(), r.range().start(), 0.0);
          add(shares, r.shard(), f);
        }
      }
      case STRATEGY_HASH -> {
        HashTable t = k.hash();
        out.setLayoutEntries(t.size());
        for (int i = 0; i < t.size(); i++) {
          add(shares, t.bucket(i).shard(), 1.0 / t.size());
        }
      }
      case STRATEGY_CONSISTENT_HASH -> {
        Ring r = k.ring();
        out.setLayoutEntries(r.size());
        r.shares().forEach((s, f) -> add(shares, s, f));
        for (RingShard rs : r.layout().getShardsList()) {
          shares.get(rs.getShard())[1] = rs.getVnodeEpochsCount();
        }
      }
      case STRATEGY_DIRECTORY -> {
        DirectoryTable d = k.directory();
        out.setLayoutEntries(d.size());
        if (d.size() > 0) {
          d.forEach((key, r) -> add(shares, r.shard(), 1.0 / d.size()));
        }
      }
      case STRATEGY_GEOGRAPHIC -> {
        GeoTable g = k.geo();
        out.setLayoutEntries(g.regions().size());
        g.regions().values().forEach(r -> add(shares, r.shard(), 1.0 / g.regions().size()));
      }
      default -> { }
    }
    shares.forEach((s, v) -> out.addShares(ShardShare.newBuilder().setShard(s).setFraction(v[0])
        .setEntries((long) v[1])));
    return out.build();
  }

  /**
   * What a marker marks: a range (its key suffix is the hex of the range's start), or a bucket, the ring or a
   * directory entry (suffix {@code bucket/N}, {@code ring}, {@code entry/HEX}; see CatalogPaths), whose
   * migration the marker's value names.
   */
  private MovingRange moving(KeyspaceMap k, String suffix, String id) {
    MovingRange.Builder b = MovingRange.newBuilder().setMigrationId(id);
    if (suffix.startsWith("bucket/")) {
      return b.setUnit("bucket " + suffix.substring(7)).build();
    }
    if (suffix.equals("ring")) {
      return b.setUnit("ring node (migration " + id + ")").build();
    }
    if (suffix.startsWith("entry/")) {
      String hex = suffix.substring(6);
      try {
        return b.setUnit("entry " + Keys.describe(k.keyType(), Keys.fromHex(hex))).build();
      } catch (IllegalArgumentException e) {
        return b.setUnit("entry 0x" + hex).build();
      }
    }
    return b.setRange(markedRange(k, suffix)).build();
  }

  /** The range of the map that starts where a marker says, or the empty range at that key if none does. */
  private static io.shardmap.proto.v1.KeyRange markedRange(KeyspaceMap k, String hexStart) {
    byte[] start;
    try {
      start = Keys.fromHex(hexStart);
    } catch (IllegalArgumentException e) {
      throw new ShardmapException(ErrorCode.INTERNAL, "moving marker '" + hexStart + "' of keyspace '"
          + k.name() + "' is not the hex of a key");
    }
    if (k.strategy() == Strategy.STRATEGY_RANGE) {
      int i = k.ranges().indexOfStart(start);
      if (i >= 0) {
        return k.ranges().get(i).range().toProto(k.keyType());
      }
    }
    Key at = Keys.toProto(k.keyType(), start);
    return start.length == 0 ? io.shardmap.proto.v1.KeyRange.getDefaultInstance()
        : io.shardmap.proto.v1.KeyRange.newBuilder().setStart(at).setEnd(at).build();
  }

  private static void add(Map<String, double[]> shares, String shard, double f) {
    double[] v = shares.computeIfAbsent(shard, s -> new double[2]);
    v[0] += f;
    v[1] += 1;
  }

  /** Where a bound lies in the key space, as a fraction (exact for INT64, by the first 8 bytes otherwise). */
  private static double position(KeyType type, byte[] bound, double ifUnbounded) {
    if (bound.length == 0) {
      return ifUnbounded;
    }
    if (type == KeyType.KEY_TYPE_INT64) {
      long u = Keys.decodeInt64(bound) ^ Long.MIN_VALUE;
      return (u >= 0 ? (double) u : (double) u + 0x1p64) / 0x1p64;
    }
    double f = 0;
    double scale = 1.0 / 256;
    for (int i = 0; i < Math.min(8, bound.length); i++) {
      f += (bound[i] & 0xFF) * scale;
      scale /= 256;
    }
    return f;
  }

  /**
   * Drops a keyspace unless one of its ranges is being moved.
   *
   * <p>Why a drop and a migrator's marker can never both succeed. The marker's transaction compares the
   * mod revision of the range record it marks (and of the spec) as the migrator read them, and rewrites
   * {@code moving-guard}. This transaction compares the spec's mod revision and
   * {@code mod_revision(moving-guard) <= R}, R being the revision of the marker read that found none, and
   * deletes the whole keyspace, spec, ranges and guard included. etcd applies one transaction at a time:
   * <ul>
   *   <li>a marker committed at or before R was seen by the read (unless already removed again, which is
   *       fine): the drop is refused;
   *   <li>a marker committed after R and before the drop raised the guard's mod revision above R: the drop
   *       fails its compare, re-plans, reads the marker and is refused;
   *   <li>a marker transaction evaluated after the drop finds the records it read gone (mod revision 0;
   *       a re-created keyspace has new revisions, as etcd never reuses one): it fails.
   * </ul>
   * The spec compare alone would not do: a marker written between our read and our commit changes no key
   * we compare, and the drop would then delete it with everything else while its migration runs on.
   * Nor can we compare the absence of each marker key we might meet: a marker's key is only known once the
   * range it marks exists, and comparing all of them would not fit etcd's limit on compares.
   */
  public DropKeyspaceResponse dropKeyspace(DropKeyspaceRequest req) {
    String ks = Names.keyspace("name", req.getName());
    return execute("DropKeyspace", snap -> {
      KeyspaceMap k = snap.keyspace(ks);
      Markers m = markers(ks);
      if (!m.ids().isEmpty()) {
        Set<String> ids = new java.util.TreeSet<>(m.ids().values());
        String quoted = "'" + String.join("', '", ids) + "'";
        String cancel = "migrator cancel " + String.join("; migrator cancel ", ids);
        throw ShardmapException.precondition("name: keyspace '" + ks + "' has " + m.ids().size()
            + (m.ids().size() == 1 ? " range (or bucket, ring node, entry)" : " ranges (or buckets, ring nodes, entries)")
            + " being moved by "
            + (ids.size() == 1 ? "migration " : "migrations ") + quoted + "; wait for "
            + (ids.size() == 1 ? "it" : "them") + " or cancel " + (ids.size() == 1 ? "it" : "them")
            + " (" + cancel + ")");
      }
      Txn txn = Txn.builder().compare(Compare.modRevision(paths.spec(ks), k.specRevision()))
          .compare(new Compare(paths.movingGuard(ks), Compare.Target.MOD_REVISION, Compare.Op.LESS,
              m.revision() + 1))
          .deletePrefix(paths.keyspacePrefix(ks)).build();
      return new Plan<>(txn, rev -> DropKeyspaceResponse.newBuilder().setRevision(rev).build());
    });
  }

  // ---------------------------------------------------------------- moving markers

  /**
   * A keyspace's moving markers as etcd held them at {@code revision}: marker key → migration id, and the
   * largest of their mod revisions.
   */
  private record Markers(Map<String, String> ids, long revision, long lastWrite) {}

  /** One linearizable read of a keyspace's moving markers (the watched snapshot does not hold them). */
  private Markers markers(String ks) {
    io.shardmap.store.RangeResult rr = read("the moving markers of keyspace '" + ks + "'",
        paths.movingPrefix(ks), true, true);
    Map<String, String> ids = new TreeMap<>();
    long lastWrite = 0;
    for (io.shardmap.store.KeyValue kv : rr.kvs()) {
      ids.put(kv.key(), new String(kv.value(), java.nio.charset.StandardCharsets.UTF_8));
      lastWrite = Math.max(lastWrite, kv.modRevision());
    }
    return new Markers(ids, rr.revision(), lastWrite);
  }

  /**
   * Refuses a change of {@code range} (a range of {@code k} starting where a record is rewritten or
   * deleted) while the migrator moves it. The plan must also compare
   * {@code Compare.absent(paths.moving(ks, range.start()))}: that compare, not this read, is what makes the
   * refusal race-free.
   *
   * <p>Why a change of a range and the migrator's marker on it can never both succeed: our transaction
   * compares the range record's mod revision (pinned from the snapshot) and the marker's absence, and
   * rewrites or deletes the range record; the marker's transaction compares the range record's mod
   * revision as the migrator read it, and puts the marker. etcd applies one transaction at a time. If the
   * marker's comes first, the marker exists when ours is evaluated and ours fails; its re-plan reads the
   * marker here and refuses (FAILED_PRECONDITION, not a retry until ABORTED). If ours comes first, the
   * range record now has a new mod revision (put) or none (delete), and etcd never reuses a revision, so
   * the migrator's compare fails and it must re-read the range before marking it.
   */
  private static void refuseIfMoving(Markers m, CatalogPaths paths, String field, KeyspaceMap k, KeyRange range) {
    String id = m.ids().get(paths.moving(k.name(), range.start()));
    if (id != null) {
      throw ShardmapException.precondition(field + ": " + range.format(k.keyType()) + " of keyspace '"
          + k.name() + "' is being moved by migration '" + id + "'; wait for it or cancel it (migrator cancel "
          + id + ")");
    }
  }

  /**
   * Refuses a change of a whole layout (ReshardHash) while any unit of the keyspace moves. The plan must
   * also compare {@link #unmarkedSince}: a marker written after this read then fails the transaction, whose
   * re-plan reads the marker here and refuses.
   */
  private static void refuseIfAnyMoving(Markers m, String field, String ks) {
    if (!m.ids().isEmpty()) {
      Set<String> ids = new java.util.TreeSet<>(m.ids().values());
      throw ShardmapException.precondition(field + ": keyspace '" + ks + "' has units being moved by migration"
          + (ids.size() == 1 ? " '" : "s '") + String.join("', '", ids) + "'; wait for them or cancel them");
    }
  }

  /**
   * "No marker of {@code ks} was written since the read {@code m}": every marker transaction rewrites the
   * moving guard (see {@link #dropKeyspace} for why one compare on it is enough).
   */
  private Compare unmarkedSince(String ks, Markers m) {
    return new Compare(paths.movingGuard(ks), Compare.Target.MOD_REVISION, Compare.Op.LESS, m.revision() + 1);
  }

  /** Refuses a change of a marked bucket, ring or entry (marker key {@code marker}). */
  private static void refuseIfMarked(Markers m, String marker, String field, String what, String ks) {
    String id = m.ids().get(marker);
    if (id != null) {
      throw ShardmapException.precondition(field + ": " + what + " of keyspace '" + ks + "' is being moved by "
          + "migration '" + id + "'; wait for it or cancel it (migrator cancel " + id + ")");
    }
  }

  // ---------------------------------------------------------------- range strategy

  private KeyspaceMap keyspaceOf(DirectorySnapshot snap, String field, String name, Strategy strategy) {
    Names.keyspace(field, name);
    KeyspaceMap k = snap.keyspace(name);
    if (k.strategy() != strategy) {
      throw ShardmapException.precondition("keyspace '" + name + "' uses " + k.strategy() + "; this call "
          + "only applies to " + strategy + " keyspaces");
    }
    return k;
  }

  public SplitRangeResponse splitRange(SplitRangeRequest req) {
    return execute("SplitRange", snap -> {
      KeyspaceMap k = keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_RANGE);
      KeyType type = k.keyType();
      byte[] at = Keys.canonical(type, req.getSplitKey(), "split_key");
      Route r = k.ranges().route(at);
      KeyRange range = r.range();
      if (java.util.Arrays.equals(range.start(), at)) {
        throw ShardmapException.precondition("split_key: " + Keys.describe(type, at)
            + " is already a range boundary");
      }
      String ks = k.name();
      Markers m = markers(ks);
      refuseIfMoving(m, paths, "split_key", k, range);
      String stray = m.ids().get(paths.moving(ks, at));
      if (stray != null) {
        // No range starts there, so no migration can be moving one; but the new range would look marked.
        throw ShardmapException.precondition("split_key: keyspace '" + ks + "' has a moving marker of "
            + "migration '" + stray + "' at " + Keys.describe(type, at) + ", where no range starts; cancel "
            + "that migration (migrator cancel " + stray + ")");
      }
      Route left = new Route(r.shard(), r.epoch(), KeyRange.of(range.start(), at, "split_key"), 0);
      Route right = new Route(r.shard(), r.epoch(), KeyRange.of(at, range.end(), "split_key"), 0);
      Txn txn = Txn.builder()
          .compare(Compare.modRevision(paths.spec(ks), k.specRevision()))
          .compare(Compare.modRevision(paths.range(ks, range.start()), r.modRevision()))
          .compare(Compare.absent(paths.range(ks, at)))
          .compare(Compare.absent(paths.moving(ks, range.start())))
          .compare(Compare.absent(paths.moving(ks, at)))
          .put(paths.range(ks, range.start()), bytes(KeyspaceMap.toProto(type, left)))
          .put(paths.range(ks, at), bytes(KeyspaceMap.toProto(type, right))).build();
      return new Plan<>(txn, rev -> SplitRangeResponse.newBuilder().setLeft(KeyspaceMap.toProto(type, left))
          .setRight(KeyspaceMap.toProto(type, right)).setRevision(rev).build());
    });
  }

  public MergeRangesResponse mergeRanges(MergeRangesRequest req) {
    return execute("MergeRanges", snap -> {
      KeyspaceMap k = keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_RANGE);
      KeyType type = k.keyType();
      byte[] boundary = Keys.canonical(type, req.getBoundary(), "boundary");
      RangeTable t = k.ranges();
      int i = t.indexOfStart(boundary);
      if (i <= 0) {
        throw ShardmapException.notFound("boundary: no range starts at " + Keys.describe(type, boundary)
            + " in keyspace '" + k.name() + "'");
      }
      Route left = t.get(i - 1);
      Route right = t.get(i);
      Markers m = markers(k.name());
      refuseIfMoving(m, paths, "boundary", k, left.range());
      refuseIfMoving(m, paths, "boundary", k, right.range());
      if (!left.shard().equals(right.shard())) {
        throw ShardmapException.precondition("boundary: the ranges on both sides of "
            + Keys.describe(type, boundary) + " have different owners ('" + left.shard() + "' and '"
            + right.shard() + "'); reassign one first");
      }
      Route merged = new Route(left.shard(), Math.max(left.epoch(), right.epoch()),
          KeyRange.of(left.range().start(), right.range().end(), "boundary"), 0);
      String ks = k.name();
      Txn txn = Txn.builder()
          .compare(Compare.modRevision(paths.spec(ks), k.specRevision()))
          .compare(Compare.modRevision(paths.range(ks, left.range().start()), left.modRevision()))
          .compare(Compare.modRevision(paths.range(ks, boundary), right.modRevision()))
          .compare(Compare.absent(paths.moving(ks, left.range().start())))
          .compare(Compare.absent(paths.moving(ks, boundary)))
          .delete(paths.range(ks, boundary))
          .put(paths.range(ks, left.range().start()), bytes(KeyspaceMap.toProto(type, merged))).build();
      return new Plan<>(txn, rev -> MergeRangesResponse.newBuilder()
          .setMerged(KeyspaceMap.toProto(type, merged)).setRevision(rev).build());
    });
  }

  public ReassignRangeResponse reassignRange(ReassignRangeRequest req) {
    return execute("ReassignRange", snap -> {
      KeyspaceMap k = keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_RANGE);
      KeyType type = k.keyType();
      if (!req.hasRange()) {
        throw ShardmapException.invalid("range", "the range to reassign is required");
      }
      KeyRange range = KeyRange.fromProto(type, req.getRange(), "range");
      String target = registered(snap, "shard", req.getShard());
      int i = k.ranges().indexOfStart(range.start());
      if (i < 0 || !k.ranges().get(i).range().equals(range)) {
        Route containing = k.ranges().route(range.start());
        throw ShardmapException.notFound("range: " + range.format(type) + " is not a range of keyspace '"
            + k.name() + "' (the range containing its start is " + containing.range().format(type)
            + "); split first so that it is one");
      }
      Route r = k.ranges().get(i);
      refuseIfMoving(markers(k.name()), paths, "range", k, range);
      if (req.getExpectedEpoch() != 0 && req.getExpectedEpoch() != r.epoch()) {
        throw ShardmapException.precondition("expected_epoch: range " + range.format(type) + " is at epoch "
            + r.epoch() + ", not " + req.getExpectedEpoch());
      }
      if (r.shard().equals(target)) {
        throw ShardmapException.precondition("shard: range " + range.format(type) + " is already owned by '"
            + target + "'");
      }
      Route moved = new Route(target, r.epoch() + 1, range, 0);
      String ks = k.name();
      Txn.Builder txn = Txn.builder()
          .compare(Compare.modRevision(paths.spec(ks), k.specRevision()))
          .compare(Compare.modRevision(paths.range(ks, range.start()), r.modRevision()))
          .compare(Compare.absent(paths.moving(ks, range.start())))
          .put(paths.range(ks, range.start()), bytes(KeyspaceMap.toProto(type, moved)));
      guardOwners(txn, Set.of(target));
      return new Plan<>(txn.build(), rev -> ReassignRangeResponse.newBuilder()
          .setRange(KeyspaceMap.toProto(type, moved)).setRevision(rev).build());
    });
  }

  // ---------------------------------------------------------------- layouts held in one record

  private Txn.Builder layoutTxn(KeyspaceMap k, MessageLite newLayout) {
    return Txn.builder()
        .compare(Compare.modRevision(paths.spec(k.name()), k.specRevision()))
        .compare(Compare.modRevision(paths.layout(k.name()), k.layoutRevision()))
        .put(paths.layout(k.name()), bytes(newLayout));
  }

  public ReassignBucketResponse reassignBucket(ReassignBucketRequest req) {
    return execute("ReassignBucket", snap -> {
      KeyspaceMap k = keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_HASH);
      HashLayout h = k.hash().layout();
      if (req.getBucket() < 0 || req.getBucket() >= h.getBucketsCount()) {
        throw ShardmapException.invalid("bucket", "must be 0-" + (h.getBucketsCount() - 1) + ", got "
            + req.getBucket());
      }
      String target = registered(snap, "shard", req.getShard());
      BucketAssignment b = h.getBuckets(req.getBucket());
      String marker = paths.movingBucket(k.name(), req.getBucket());
      refuseIfMarked(markers(k.name()), marker, "bucket", "bucket " + req.getBucket(), k.name());
      if (req.getExpectedEpoch() != 0 && req.getExpectedEpoch() != b.getEpoch()) {
        throw ShardmapException.precondition("expected_epoch: bucket " + req.getBucket() + " is at epoch "
            + b.getEpoch() + ", not " + req.getExpectedEpoch());
      }
      if (b.getShard().equals(target)) {
        throw ShardmapException.precondition("shard: bucket " + req.getBucket() + " is already owned by '"
            + target + "'");
      }
      BucketAssignment nb = BucketAssignment.newBuilder().setShard(target).setEpoch(b.getEpoch() + 1).build();
      HashLayout next = h.toBuilder().setBuckets(req.getBucket(), nb).build();
      // Race-free like a range's: the migrator's marker transaction compares the layout's mod revision.
      Txn.Builder txn = layoutTxn(k, next).compare(Compare.absent(marker));
      guardOwners(txn, Set.of(target));
      return new Plan<>(txn.build(), rev -> ReassignBucketResponse.newBuilder().setBucket(nb)
          .setRevision(rev).build());
    });
  }

  public ReshardHashResponse reshardHash(ReshardHashRequest req) {
    return execute("ReshardHash", snap -> {
      KeyspaceMap k = keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_HASH);
      HashLayout h = k.hash().layout();
      Markers marked = markers(k.name());
      refuseIfAnyMoving(marked, "buckets", k.name());
      int n = req.getBucketsCount();
      if (n == 0 || n > HashTable.MAX_BUCKETS) {
        throw ShardmapException.invalid("buckets", "1 to " + HashTable.MAX_BUCKETS + " buckets, got " + n);
      }
      Set<String> owners = new LinkedHashSet<>();
      List<String> before = new ArrayList<>();
      long maxEpoch = 0;
      for (BucketAssignment b : h.getBucketsList()) {
        before.add(b.getShard());
        maxEpoch = Math.max(maxEpoch, b.getEpoch());
      }
      List<String> after = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        owners.add(registered(snap, "buckets[" + i + "]", req.getBuckets(i)));
        after.add(req.getBuckets(i));
      }
      if (before.equals(after)) {
        throw ShardmapException.precondition("buckets: the keyspace already has exactly these buckets");
      }
      // Every bucket's keys may have changed owner, so every epoch moves past all previous ones.
      HashLayout.Builder next = HashLayout.newBuilder();
      for (String s : after) {
        next.addBuckets(BucketAssignment.newBuilder().setShard(s).setEpoch(maxEpoch + 1));
      }
      double moved = HashTable.movedFraction(before, after);
      HashLayout layout = next.build();
      Txn.Builder txn = layoutTxn(k, layout).compare(unmarkedSince(k.name(), marked));
      guardOwners(txn, owners);
      return new Plan<>(txn.build(), rev -> ReshardHashResponse.newBuilder().setHash(layout)
          .setMovedFraction(moved).setRevision(rev).build());
    });
  }

  public AddRingNodesResponse addRingNodes(AddRingNodesRequest req) {
    return execute("AddRingNodes", snap -> {
      KeyspaceMap k = keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_CONSISTENT_HASH);
      String target = registered(snap, "shard", req.getShard());
      refuseIfMarked(markers(k.name()), paths.movingRing(k.name()), "keyspace", "a ring node", k.name());
      int count = req.getVnodes() == 0 ? k.spec().getDefaultVnodes() : req.getVnodes();
      if (count < 1 || count > Ring.MAX_VNODES_PER_SHARD) {
        throw ShardmapException.invalid("vnodes", "must be 1-" + Ring.MAX_VNODES_PER_SHARD + ", got " + count);
      }
      Ring before = k.ring();
      RingLayout layout = before.withAddedNodes(target, count);
      Ring after = Ring.of(layout, 0);
      double moved = Ring.movedFraction(before, after);
      Txn.Builder txn = layoutTxn(k, layout).compare(Compare.absent(paths.movingRing(k.name())));
      guardOwners(txn, Set.of(target));
      return new Plan<>(txn.build(), rev -> AddRingNodesResponse.newBuilder().setRing(layout)
          .setMovedFraction(moved).setRevision(rev).build());
    });
  }

  public RemoveRingNodesResponse removeRingNodes(RemoveRingNodesRequest req) {
    return execute("RemoveRingNodes", snap -> {
      KeyspaceMap k = keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_CONSISTENT_HASH);
      Names.shard("shard", req.getShard());
      refuseIfMarked(markers(k.name()), paths.movingRing(k.name()), "keyspace", "a ring node", k.name());
      if (req.getVnodes() < 0) {
        throw ShardmapException.invalid("vnodes", "must be 0 (all) or a positive count, got " + req.getVnodes());
      }
      Ring before = k.ring();
      RingLayout layout = before.withRemovedNodes(req.getShard(), req.getVnodes());
      double moved = Ring.movedFraction(before, Ring.of(layout, 0));
      Txn txn = layoutTxn(k, layout).compare(Compare.absent(paths.movingRing(k.name()))).build();
      return new Plan<>(txn, rev -> RemoveRingNodesResponse.newBuilder().setRing(layout)
          .setMovedFraction(moved).setRevision(rev).build());
    });
  }

  // ---------------------------------------------------------------- directory strategy

  public PutDirectoryEntriesResponse putDirectoryEntries(PutDirectoryEntriesRequest req) {
    return execute("PutDirectoryEntries", snap -> {
      KeyspaceMap k = keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_DIRECTORY);
      int n = req.getEntriesCount();
      if (n == 0 || n > MAX_DIRECTORY_BATCH) {
        throw ShardmapException.invalid("entries", "1 to " + MAX_DIRECTORY_BATCH + " entries per call, got " + n);
      }
      KeyType type = k.keyType();
      DirectoryTable d = k.directory();
      Route fallback = d.fallback();
      // Entries being moved by the migrator are refused; one compare on the moving guard (not one per key,
      // which would not fit etcd's limit with a full batch) makes that race-free.
      Markers marked = markers(k.name());
      Txn.Builder txn = Txn.builder()
          .compare(Compare.modRevision(paths.spec(k.name()), k.specRevision()))
          // New entries take their epoch from the fallback's, so the fallback must not move meanwhile.
          .compare(Compare.modRevision(paths.layout(k.name()), k.layoutRevision()))
          .compare(unmarkedSince(k.name(), marked));
      Set<String> owners = new LinkedHashSet<>();
      Map<String, Integer> seen = new HashMap<>();
      List<DirectoryEntry> written = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        DirectoryEntry e = req.getEntries(i);
        String field = "entries[" + i + "]";
        byte[] key = Keys.canonical(type, e.getKey(), field + ".key");
        Integer dup = seen.put(Keys.hex(key), i);
        if (dup != null) {
          throw ShardmapException.invalid(field + ".key", "the same key as entries[" + dup + "]");
        }
        refuseIfMarked(marked, paths.movingEntry(k.name(), key), field + ".key", "entry "
            + Keys.describe(type, key), k.name());
        String shard = registered(snap, field + ".shard", e.getShard());
        owners.add(shard);
        Route old = d.entry(key);
        long epoch;
        if (old != null) {
          txn.compare(Compare.modRevision(paths.entry(k.name(), key), old.modRevision()));
          epoch = old.shard().equals(shard) ? old.epoch() : old.epoch() + 1;
        } else {
          txn.compare(Compare.absent(paths.entry(k.name(), key)));
          // Without a fallback the layout still keeps the last fallback epoch (raised past every deleted
          // entry), and the key may have routed at it before: start above it.
          epoch = fallback == null ? d.layout().getFallbackEpoch() + 1
              : fallback.shard().equals(shard) ? fallback.epoch() : fallback.epoch() + 1;
        }
        DirectoryEntry stored = DirectoryEntry.newBuilder().setKey(Keys.toProto(type, key)).setShard(shard)
            .setEpoch(epoch).build();
        txn.put(paths.entry(k.name(), key), bytes(stored));
        written.add(stored);
      }
      guardOwners(txn, owners);
      return new Plan<>(txn.build(), rev -> PutDirectoryEntriesResponse.newBuilder().addAllEntries(written)
          .setRevision(rev).build());
    });
  }

  public DeleteDirectoryEntriesResponse deleteDirectoryEntries(DeleteDirectoryEntriesRequest req) {
    return execute("DeleteDirectoryEntries", snap -> {
      KeyspaceMap k = keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_DIRECTORY);
      int n = req.getKeysCount();
      if (n == 0 || n > MAX_DIRECTORY_BATCH) {
        throw ShardmapException.invalid("keys", "1 to " + MAX_DIRECTORY_BATCH + " keys per call, got " + n);
      }
      DirectoryTable d = k.directory();
      Markers marked = markers(k.name());
      Txn.Builder txn = Txn.builder()
          .compare(Compare.modRevision(paths.spec(k.name()), k.specRevision()))
          .compare(Compare.modRevision(paths.layout(k.name()), k.layoutRevision()))
          .compare(unmarkedSince(k.name(), marked));
      int deleted = 0;
      long maxEpoch = 0;
      Set<String> seen = new HashSet<>();
      for (int i = 0; i < n; i++) {
        byte[] key = Keys.canonical(k.keyType(), req.getKeys(i), "keys[" + i + "]");
        if (!seen.add(Keys.hex(key))) {
          continue;
        }
        refuseIfMarked(marked, paths.movingEntry(k.name(), key), "keys[" + i + "]", "entry "
            + Keys.describe(k.keyType(), key), k.name());
        Route old = d.entry(key);
        if (old == null) {
          txn.compare(Compare.absent(paths.entry(k.name(), key)));
          continue;
        }
        txn.compare(Compare.modRevision(paths.entry(k.name(), key), old.modRevision()));
        txn.delete(paths.entry(k.name(), key));
        maxEpoch = Math.max(maxEpoch, old.epoch());
        deleted++;
      }
      if (deleted > 0) {
        // The deleted keys now route to the fallback, or to no one until a fallback or a new entry comes;
        // either takes its epoch from the fallback epoch, which must therefore pass theirs so that no
        // key's epoch ever drops. Kept even while there is no fallback shard.
        DirectoryLayout next = d.layout().toBuilder()
            .setFallbackEpoch(Math.max(d.layout().getFallbackEpoch(), maxEpoch) + 1).build();
        txn.put(paths.layout(k.name()), bytes(next));
      }
      int count = deleted;
      return new Plan<>(txn.build(), rev -> DeleteDirectoryEntriesResponse.newBuilder().setDeleted(count)
          .setRevision(rev).build());
    });
  }

  public SetDirectoryFallbackResponse setDirectoryFallback(SetDirectoryFallbackRequest req) {
    return execute("SetDirectoryFallback", snap -> {
      KeyspaceMap k = keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_DIRECTORY);
      DirectoryLayout old = k.directory().layout();
      DirectoryLayout.Builder next = DirectoryLayout.newBuilder();
      Set<String> owners = Set.of();
      if (!req.getShard().isEmpty()) {
        String s = registered(snap, "shard", req.getShard());
        if (s.equals(old.getFallbackShard())) {
          throw ShardmapException.precondition("shard: '" + s + "' is already the fallback");
        }
        next.setFallbackShard(s).setFallbackEpoch(old.getFallbackEpoch() + 1);
        owners = Set.of(s);
      } else if (old.getFallbackShard().isEmpty()) {
        throw ShardmapException.precondition("shard: the keyspace has no fallback to remove");
      } else {
        // Keep the epoch so a fallback set later continues above it.
        next.setFallbackEpoch(old.getFallbackEpoch());
      }
      DirectoryLayout layout = next.build();
      Txn.Builder txn = layoutTxn(k, layout);
      guardOwners(txn, owners);
      return new Plan<>(txn.build(), rev -> SetDirectoryFallbackResponse.newBuilder().setDirectory(layout)
          .setRevision(rev).build());
    });
  }

  // ---------------------------------------------------------------- geographic strategy

  public SetRegionResponse setRegion(SetRegionRequest req) {
    return execute("SetRegion", snap -> {
      KeyspaceMap k = keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_GEOGRAPHIC);
      String region = Names.region("region", req.getRegion());
      String shard = registered(snap, "shard", req.getShard());
      GeoLayout g = k.geo().layout();
      Route current = k.geo().route(region);
      boolean known = k.geo().regions().containsKey(region);
      if (known && current.shard().equals(shard) && (!req.getMakeDefault()
          || g.getDefaultRegion().equals(region))) {
        throw ShardmapException.precondition("region '" + region + "' already routes to '" + shard + "'");
      }
      long epoch = current.shard().equals(shard) ? current.epoch() : current.epoch() + 1;
      GeoLayout.Builder next = GeoLayout.newBuilder().setDefaultRegion(
          req.getMakeDefault() ? region : g.getDefaultRegion());
      boolean replaced = false;
      for (RegionAssignment r : g.getRegionsList()) {
        if (r.getRegion().equals(region)) {
          next.addRegions(RegionAssignment.newBuilder().setRegion(region).setShard(shard).setEpoch(epoch));
          replaced = true;
        } else {
          next.addRegions(r);
        }
      }
      if (!replaced) {
        next.addRegions(RegionAssignment.newBuilder().setRegion(region).setShard(shard).setEpoch(epoch));
      }
      GeoLayout layout = next.build();
      if (req.getMakeDefault() && !g.getDefaultRegion().equals(region)) {
        // Unknown regions change owner with the default: bump past every epoch they could have had.
        long max = 0;
        for (RegionAssignment r : layout.getRegionsList()) {
          max = Math.max(max, r.getEpoch());
        }
        GeoLayout.Builder bumped = layout.toBuilder();
        for (int i = 0; i < bumped.getRegionsCount(); i++) {
          if (bumped.getRegions(i).getRegion().equals(region)) {
            bumped.setRegions(i, bumped.getRegions(i).toBuilder().setEpoch(max + 1));
          }
        }
        layout = bumped.build();
      }
      GeoLayout finalLayout = layout;
      Txn.Builder txn = layoutTxn(k, finalLayout);
      guardOwners(txn, Set.of(shard));
      return new Plan<>(txn.build(), rev -> SetRegionResponse.newBuilder().setGeo(finalLayout)
          .setRevision(rev).build());
    });
  }

  public RemoveRegionResponse removeRegion(RemoveRegionRequest req) {
    return execute("RemoveRegion", snap -> {
      KeyspaceMap k = keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_GEOGRAPHIC);
      String region = Names.region("region", req.getRegion());
      GeoLayout g = k.geo().layout();
      Route removed = k.geo().regions().get(region);
      if (removed == null) {
        throw ShardmapException.notFound("region: '" + region + "' is not a region of keyspace '"
            + k.name() + "'");
      }
      if (g.getDefaultRegion().equals(region)) {
        throw ShardmapException.precondition("region: '" + region + "' is the default region; make "
            + "another region the default first");
      }
      GeoLayout.Builder next = GeoLayout.newBuilder().setDefaultRegion(g.getDefaultRegion());
      for (RegionAssignment r : g.getRegionsList()) {
        if (r.getRegion().equals(region)) {
          continue;
        }
        if (r.getRegion().equals(g.getDefaultRegion())) {
          // The removed region's keys now route here: its epoch passes theirs.
          next.addRegions(r.toBuilder().setEpoch(Math.max(r.getEpoch(), removed.epoch()) + 1));
        } else {
          next.addRegions(r);
        }
      }
      GeoLayout layout = next.build();
      Txn txn = layoutTxn(k, layout).build();
      return new Plan<>(txn, rev -> RemoveRegionResponse.newBuilder().setGeo(layout).setRevision(rev).build());
    });
  }
}
