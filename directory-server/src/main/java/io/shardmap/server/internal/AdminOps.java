package io.shardmap.server.internal;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.CatalogTxns;
import io.shardmap.catalog.CatalogTxns.Plan;
import io.shardmap.catalog.MapEdits;
import io.shardmap.catalog.MeteredMetaStore;
import io.shardmap.catalog.MovingMarkers;
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
import java.math.BigInteger;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.function.LongSupplier;

/**
 * Every map change of the admin API, as a pure plan (validation against the current snapshot, then one
 * etcd transaction whose compares pin every record the plan read) executed with optimistic retries by
 * {@link CatalogTxns}. The edits the migrator makes too (ranges, buckets, ring nodes, the ownership guard)
 * are planned by {@link MapEdits}, their one implementation; this class adds the request decoding and the
 * answers, and plans the edits only the admin API makes (shards, create/drop, directory, regions).
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
 * {@link MovingMarkers} and {@link #dropKeyspace}. Markers are not part of the watched maps: planners
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
  private static final int MAX_ATTEMPTS = 32;

  private final MetaStore store;
  private final CatalogPaths paths;
  private final MapEdits edits;
  private final CatalogTxns txns;
  private final DirectoryState state;
  private final Duration timeout;
  private final int maxTxnOps;

  public AdminOps(MetaStore store, CatalogPaths paths, DirectoryState state, Duration timeout, int maxTxnOps,
                  LongSupplier nanoTime, ServerMetrics metrics) {
    // Every etcd round trip of an admin change is timed into shardmap.etcd.requests{op,outcome}.
    this.store = new MeteredMetaStore(store, metrics::etcdRequest, nanoTime);
    this.paths = paths;
    this.edits = new MapEdits(paths);
    this.txns = CatalogTxns.builder(this.store).timeout(timeout).maxTxnOps(maxTxnOps).maxAttempts(MAX_ATTEMPTS)
        .nanoTime(nanoTime).build();
    this.state = state;
    this.timeout = timeout;
    this.maxTxnOps = maxTxnOps;
  }

  private <T> T execute(String op, Function<DirectorySnapshot, Plan<T>> planner) {
    CatalogTxns.View view = new CatalogTxns.View() {
      @Override
      public void beforeAttempt() {
        state.checkWritable();
      }

      @Override
      public void committed(long revision) throws InterruptedException {
        // Read-your-writes on this replica: answer once the change is visible to lookups here.
        state.awaitRevision(revision, timeout);
      }

      @Override
      public void conflicted(long revision) throws InterruptedException {
        // The failed compare's revision may be one made outside our prefix; progress past it is enough.
        if (!state.awaitObserved(revision, timeout)) {
          throw new ShardmapException(ErrorCode.UNAVAILABLE, op + ": this server's copy of the maps "
              + "lags etcd (waiting for revision " + revision + "); nothing was written");
        }
      }
    };
    return txns.update(op, () -> planner.apply(state.snapshot()), view);
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

  private void guardOwners(Txn.Builder txn, Set<String> owners) {
    edits.guardOwners(txn, owners);
  }

  private static String registered(DirectorySnapshot snap, String field, String shard) {
    return MapEdits.registered(snap, field, shard);
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
    MovingMarkers markers = null;
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
    if (suffix.startsWith("region/")) {
      String hex = suffix.substring(7);
      try {
        return b.setUnit("region '" + new String(Keys.fromHex(hex), java.nio.charset.StandardCharsets.UTF_8) + "'").build();
      } catch (IllegalArgumentException e) {
        return b.setUnit("region 0x" + hex).build();
      }
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
      MovingMarkers m = markers(ks);
      m.refuseAny("name");
      Txn txn = Txn.builder().compare(Compare.modRevision(paths.spec(ks), k.specRevision()))
          .compare(m.unchangedSince(paths))
          .deletePrefix(paths.keyspacePrefix(ks)).build();
      return new Plan<>(txn, rev -> DropKeyspaceResponse.newBuilder().setRevision(rev).build());
    });
  }

  // ---------------------------------------------------------------- moving markers

  /** One linearizable read of a keyspace's moving markers (the watched snapshot does not hold them). */
  private MovingMarkers markers(String ks) {
    return MovingMarkers.read(store, paths, ks, timeout);
  }

  // ---------------------------------------------------------------- range strategy (MapEdits)

  public SplitRangeResponse splitRange(SplitRangeRequest req) {
    return execute("SplitRange", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_RANGE);
      KeyType type = k.keyType();
      byte[] at = Keys.canonical(type, req.getSplitKey(), "split_key");
      MapEdits.Edit<MapEdits.Split> e = edits.split(snap, markers(k.name()), k.name(), at, "split_key");
      return new Plan<>(e.txn(), rev -> SplitRangeResponse.newBuilder()
          .setLeft(KeyspaceMap.toProto(type, e.value().left())).setRight(KeyspaceMap.toProto(type, e.value().right()))
          .setRevision(rev).build());
    });
  }

  public MergeRangesResponse mergeRanges(MergeRangesRequest req) {
    return execute("MergeRanges", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_RANGE);
      KeyType type = k.keyType();
      byte[] boundary = Keys.canonical(type, req.getBoundary(), "boundary");
      MapEdits.Edit<Route> e = edits.merge(snap, markers(k.name()), k.name(), boundary);
      return new Plan<>(e.txn(), rev -> MergeRangesResponse.newBuilder()
          .setMerged(KeyspaceMap.toProto(type, e.value())).setRevision(rev).build());
    });
  }

  public ReassignRangeResponse reassignRange(ReassignRangeRequest req) {
    return execute("ReassignRange", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_RANGE);
      KeyType type = k.keyType();
      if (!req.hasRange()) {
        throw ShardmapException.invalid("range", "the range to reassign is required");
      }
      KeyRange range = KeyRange.fromProto(type, req.getRange(), "range");
      Names.shard("shard", req.getShard());
      MapEdits.Edit<Route> e = edits.reassignRange(snap, markers(k.name()), k.name(), range, req.getShard(),
          req.getExpectedEpoch());
      return new Plan<>(e.txn(), rev -> ReassignRangeResponse.newBuilder()
          .setRange(KeyspaceMap.toProto(type, e.value())).setRevision(rev).build());
    });
  }

  // ---------------------------------------------------------------- layouts held in one record

  private Txn.Builder layoutTxn(KeyspaceMap k, MessageLite newLayout) {
    return edits.layoutTxn(k, newLayout);
  }

  public ReassignBucketResponse reassignBucket(ReassignBucketRequest req) {
    return execute("ReassignBucket", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_HASH);
      MapEdits.Edit<BucketAssignment> e = edits.reassignBucket(snap, markers(k.name()), k.name(), req.getBucket(),
          req.getShard(), req.getExpectedEpoch());
      return new Plan<>(e.txn(), rev -> ReassignBucketResponse.newBuilder().setBucket(e.value())
          .setRevision(rev).build());
    });
  }

  public ReshardHashResponse reshardHash(ReshardHashRequest req) {
    return execute("ReshardHash", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_HASH);
      MapEdits.Edit<MapEdits.LayoutChange<HashLayout>> e = edits.reshardHash(snap, markers(k.name()), k.name(),
          req.getBucketsList());
      return new Plan<>(e.txn(), rev -> ReshardHashResponse.newBuilder().setHash(e.value().layout())
          .setMovedFraction(e.value().movedFraction()).setRevision(rev).build());
    });
  }

  public AddRingNodesResponse addRingNodes(AddRingNodesRequest req) {
    return execute("AddRingNodes", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_CONSISTENT_HASH);
      int count = req.getVnodes() == 0 ? k.spec().getDefaultVnodes() : req.getVnodes();
      MapEdits.Edit<MapEdits.LayoutChange<RingLayout>> e = edits.addRingNodes(snap, markers(k.name()), k.name(),
          req.getShard(), count, "keyspace");
      return new Plan<>(e.txn(), rev -> AddRingNodesResponse.newBuilder().setRing(e.value().layout())
          .setMovedFraction(e.value().movedFraction()).setRevision(rev).build());
    });
  }

  public RemoveRingNodesResponse removeRingNodes(RemoveRingNodesRequest req) {
    return execute("RemoveRingNodes", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_CONSISTENT_HASH);
      MapEdits.Edit<MapEdits.LayoutChange<RingLayout>> e = edits.removeRingNodes(snap, markers(k.name()), k.name(),
          req.getShard(), req.getVnodes(), "keyspace");
      return new Plan<>(e.txn(), rev -> RemoveRingNodesResponse.newBuilder().setRing(e.value().layout())
          .setMovedFraction(e.value().movedFraction()).setRevision(rev).build());
    });
  }

  // ---------------------------------------------------------------- directory strategy (MapEdits)

  public PutDirectoryEntriesResponse putDirectoryEntries(PutDirectoryEntriesRequest req) {
    return execute("PutDirectoryEntries", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_DIRECTORY);
      MapEdits.Edit<List<DirectoryEntry>> e = edits.putEntries(snap, markers(k.name()), k.name(), req.getEntriesList());
      return new Plan<>(e.txn(), rev -> PutDirectoryEntriesResponse.newBuilder().addAllEntries(e.value())
          .setRevision(rev).build());
    });
  }

  public DeleteDirectoryEntriesResponse deleteDirectoryEntries(DeleteDirectoryEntriesRequest req) {
    return execute("DeleteDirectoryEntries", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_DIRECTORY);
      MapEdits.Edit<Integer> e = edits.deleteEntries(snap, markers(k.name()), k.name(), req.getKeysList());
      return new Plan<>(e.txn(), rev -> DeleteDirectoryEntriesResponse.newBuilder().setDeleted(e.value())
          .setRevision(rev).build());
    });
  }

  public SetDirectoryFallbackResponse setDirectoryFallback(SetDirectoryFallbackRequest req) {
    return execute("SetDirectoryFallback", snap -> {
      MapEdits.Edit<DirectoryLayout> e = edits.setFallback(snap, req.getKeyspace(), req.getShard());
      return new Plan<>(e.txn(), rev -> SetDirectoryFallbackResponse.newBuilder().setDirectory(e.value())
          .setRevision(rev).build());
    });
  }

  // ---------------------------------------------------------------- geographic strategy (MapEdits)

  public SetRegionResponse setRegion(SetRegionRequest req) {
    return execute("SetRegion", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_GEOGRAPHIC);
      MapEdits.Edit<GeoLayout> e = edits.setRegion(snap, markers(k.name()), k.name(), req.getRegion(), req.getShard(),
          req.getMakeDefault());
      return new Plan<>(e.txn(), rev -> SetRegionResponse.newBuilder().setGeo(e.value()).setRevision(rev).build());
    });
  }

  public RemoveRegionResponse removeRegion(RemoveRegionRequest req) {
    return execute("RemoveRegion", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_GEOGRAPHIC);
      MapEdits.Edit<GeoLayout> e = edits.removeRegion(snap, markers(k.name()), k.name(), req.getRegion());
      return new Plan<>(e.txn(), rev -> RemoveRegionResponse.newBuilder().setGeo(e.value()).setRevision(rev).build());
    });
  }
}
