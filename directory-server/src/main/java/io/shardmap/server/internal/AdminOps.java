package io.shardmap.server.internal;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.CatalogTxns;
import io.shardmap.catalog.CatalogTxns.Plan;
import io.shardmap.catalog.MapEdits;
import io.shardmap.catalog.MeteredMetaStore;
import io.shardmap.catalog.MovingMarkers;
import io.shardmap.catalog.ReferenceTables;
import io.shardmap.catalog.StoreErrors;
import com.google.protobuf.MessageLite;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Names;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.strategy.Strategies;
import io.shardmap.core.strategy.StrategyKind;
import io.shardmap.proto.v1.*;
import io.shardmap.store.Compare;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import java.time.Duration;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
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
 * key unchanged since the snapshot that showed the shard owns nothing; and the shard must hold a copy of
 * every reference table of the keyspace (the records are read from etcd on every attempt, like the
 * markers below; docs/reference-tables.md).
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
    Shard given = validShard("shard", req.getShard());
    return execute("RegisterShard", snap -> {
      if (snap.shards().containsKey(given.getName())) {
        throw new ShardmapException(ErrorCode.ALREADY_EXISTS, "shard '" + given.getName()
            + "' is already registered (use UpdateShard to change it)");
      }
      Shard shard = given.hasPatroni() ? withPatroniEndpoints("shard.patroni", given, null) : given;
      Txn txn = Txn.builder().compare(Compare.absent(paths.shard(shard.getName())))
          .put(paths.shard(shard.getName()), bytes(shard)).build();
      return new Plan<>(txn, rev -> RegisterShardResponse.newBuilder()
          .setShard(shard.toBuilder().setRevision(rev)).setRevision(rev).build());
    });
  }

  public UpdateShardResponse updateShard(UpdateShardRequest req) {
    Shard given = validShard("shard", req.getShard());
    return execute("UpdateShard", snap -> {
      Shard old = snap.shard(given.getName());
      if (req.getExpectedRevision() != 0 && req.getExpectedRevision() != old.getRevision()) {
        throw ShardmapException.precondition("expected_revision: shard '" + given.getName()
            + "' is at revision " + old.getRevision() + ", not " + req.getExpectedRevision());
      }
      Shard shard = given.hasPatroni() ? withPatroniEndpoints("shard.patroni", given, old)
          : given.toBuilder().setPrimaryTerm(old.getPrimaryTerm()).build();
      Txn txn = Txn.builder().compare(Compare.modRevision(paths.shard(shard.getName()), old.getRevision()))
          .put(paths.shard(shard.getName()), bytes(shard)).build();
      return new Plan<>(txn, rev -> UpdateShardResponse.newBuilder()
          .setShard(shard.toBuilder().setRevision(rev)).setRevision(rev).build());
    });
  }

  /**
   * {@code shard} (with a Patroni source) with the primary and replicas that Patroni's keys show now, read
   * from etcd; refused, with nothing written, when the cluster does not exist, has no running leader, or
   * runs without failsafe_mode. The primary term continues {@code old}'s (null: a new shard), one higher
   * when the primary differs.
   */
  private Shard withPatroniEndpoints(String field, Shard shard, Shard old) {
    PatroniSource source = shard.getPatroni();
    PatroniView view = readPatroni(source);
    if (view.isEmpty()) {
      throw ShardmapException.notFound(field + ": no Patroni cluster with scope '" + source.getScope()
          + "' in namespace '" + (source.getNamespace().isEmpty() ? PatroniView.DEFAULT_NAMESPACE
          : source.getNamespace()) + "' in this etcd (no key under " + view.prefix() + "); Shardmap follows "
          + "Patroni clusters that keep their state in the directory's own etcd");
    }
    if (!Boolean.TRUE.equals(view.failsafeMode())) {
      throw ShardmapException.precondition(field + ": Patroni cluster '" + source.getScope() + "' runs without "
          + "failsafe_mode (" + (view.failsafeMode() == null ? "no readable " + view.prefix() + "config key"
          : "failsafe_mode is not true in " + view.prefix() + "config") + "). It keeps its leader key in the "
          + "etcd that Shardmap's maps live in, so losing etcd quorum would demote its primary together with "
          + "every other shard's; set it with `patronictl edit-config -s failsafe_mode=true` and register again "
          + "(docs/patroni.md)");
    }
    PatroniView.Endpoints e = view.endpoints(source.getDatabase());
    if (e == null) {
      throw ShardmapException.precondition(field + ": Patroni cluster '" + source.getScope() + "' has no primary "
          + "to route to: " + view.whyNoPrimary() + "; register it once a leader runs");
    }
    long term = old == null ? 1
        : old.hasPatroni() && old.getPrimary().equals(e.primary()) ? Math.max(1, old.getPrimaryTerm())
        : old.getPrimaryTerm() + 1;
    return shard.toBuilder().setPrimary(e.primary()).clearReplicas().addAllReplicas(e.replicas())
        .setPrimaryTerm(term).setPatroni(source.toBuilder().setObservedRevision(view.revision())).build();
  }

  /** One linearizable read of a Patroni cluster's keys. */
  PatroniView readPatroni(PatroniSource source) {
    String prefix = PatroniView.prefix(source);
    RangeResult rr;
    try {
      rr = store.getPrefix(prefix).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      throw StoreErrors.fromStoreRead("the keys of Patroni cluster '" + source.getScope() + "' (" + prefix + ")", e);
    }
    return PatroniView.parse(prefix, rr.kvs(), rr.revision());
  }

  /** Why {@link #followPatroni} wrote nothing: the record already reflects this or a newer view. */
  static final class Superseded extends RuntimeException {
    Superseded(String why) {
      super(why, null, false, false);
    }
  }

  /**
   * The directory's own write when a followed Patroni cluster's primary or replicas change: one transaction
   * that rewrites the shard's record with the endpoints {@code view} shows (term + 1 when the primary
   * changes), compared against the record it read. Only ever moves forward: a record that already reflects
   * a view at or after {@code view.revision()}, or endpoints equal to these, or a shard no longer following
   * this cluster, ends in {@link Superseded} with nothing written. Returns the written record.
   */
  Shard followPatroni(String name, PatroniView view) {
    return execute("FollowPatroni", snap -> {
      Shard old = snap.shards().get(name);
      if (old == null || !old.hasPatroni() || !PatroniView.prefix(old.getPatroni()).equals(view.prefix())) {
        throw new Superseded("shard '" + name + "' no longer follows " + view.prefix());
      }
      if (old.getPatroni().getObservedRevision() >= view.revision()) {
        throw new Superseded("shard '" + name + "' already reflects revision " + old.getPatroni().getObservedRevision());
      }
      PatroniView.Endpoints e = view.endpoints(old.getPatroni().getDatabase());
      if (e == null) {
        throw new Superseded("no confirmed primary: " + view.whyNoPrimary());
      }
      if (old.getPrimary().equals(e.primary()) && old.getReplicasList().equals(e.replicas())) {
        throw new Superseded("shard '" + name + "' endpoints unchanged");
      }
      boolean newPrimary = !old.getPrimary().equals(e.primary());
      Shard shard = old.toBuilder().setRevision(0).setPrimary(e.primary()).clearReplicas().addAllReplicas(e.replicas())
          .setPrimaryTerm(old.getPrimaryTerm() + (newPrimary ? 1 : 0))
          .setPatroni(old.getPatroni().toBuilder().setObservedRevision(view.revision())).build();
      Txn txn = Txn.builder().compare(Compare.modRevision(paths.shard(name), old.getRevision()))
          .put(paths.shard(name), bytes(shard)).build();
      return new Plan<>(txn, rev -> shard.toBuilder().setRevision(rev).build());
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
    Shard.Builder b = s.toBuilder().setRevision(0).setPrimaryTerm(0);
    if (s.hasPatroni()) {
      // Patroni names the endpoints; a fixed one beside it would be overwritten at the next failover.
      if (s.hasPrimary()) {
        throw ShardmapException.invalid(field + ".primary", "give either a fixed primary or a Patroni source "
            + "(patroni), not both: a Patroni shard's primary and replicas come from Patroni's keys");
      }
      if (s.getReplicasCount() > 0) {
        throw ShardmapException.invalid(field + ".replicas", "a Patroni shard's replicas come from Patroni's "
            + "keys; give none");
      }
      b.setPatroni(PatroniView.valid(field + ".patroni", s.getPatroni()));
    } else {
      if (!s.hasPrimary()) {
        throw ShardmapException.invalid(field + ".primary", "a shard needs its primary endpoint (or a Patroni "
            + "source, patroni)");
      }
      validEndpoint(field + ".primary", s.getPrimary());
      for (int i = 0; i < s.getReplicasCount(); i++) {
        validEndpoint(field + ".replicas[" + i + "]", s.getReplicas(i));
      }
    }
    if (!s.getRegion().isEmpty()) {
      Names.region(field + ".region", s.getRegion());
    }
    if (s.getState() == ShardState.UNRECOGNIZED) {
      throw ShardmapException.invalid(field + ".state", "unknown shard state");
    }
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
      edits.forStrategy(spec.getStrategy()).create(snap, req, spec, txn, owners, maxTxnOps);
      // A new keyspace's shards must hold the tables copied on every keyspace's shards (all_keyspaces).
      edits.guardOwners(txn, ks, owners, references());
      return new Plan<>(txn.build(), rev -> CreateKeyspaceResponse.newBuilder().setSpec(spec)
          .setRevision(rev).build());
    });
  }

  private static String registered(DirectorySnapshot snap, String field, String shard) {
    return MapEdits.registered(snap, field, shard);
  }

  private static KeyspaceSpec validSpec(KeyspaceSpec s) {
    Names.keyspace("spec.name", s.getName());
    KeyspaceSpec.Builder b = s.toBuilder();
    // The strategy's own rules: key type, default_vnodes.
    Strategies.of(s.getStrategy(), "spec.strategy").validate(s, b);
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
    StrategyKind kind = k.kind();
    out.setLayoutEntries(kind.layoutEntries(k));
    kind.shares(k).forEach((s, v) -> out.addShares(ShardShare.newBuilder().setShard(s).setFraction(v.fraction())
        .setEntries(v.units())));
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

  /**
   * One linearizable read of the reference-table records (the watched snapshot does not hold them), which
   * every edit that makes a shard an owner checks and pins ({@link MapEdits#guardOwners}).
   */
  private ReferenceTables references() {
    return ReferenceTables.read(store, paths, timeout);
  }

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
      MapEdits.Edit<MapEdits.Split> e = edits.range().split(snap, markers(k.name()), k.name(), at, "split_key");
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
      MapEdits.Edit<Route> e = edits.range().merge(snap, markers(k.name()), k.name(), boundary);
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
      MapEdits.Edit<Route> e = edits.range().reassignRange(snap, markers(k.name()), references(), k.name(), range, req.getShard(),
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
      MapEdits.Edit<BucketAssignment> e = edits.hash().reassignBucket(snap, markers(k.name()), references(), k.name(), req.getBucket(),
          req.getShard(), req.getExpectedEpoch());
      return new Plan<>(e.txn(), rev -> ReassignBucketResponse.newBuilder().setBucket(e.value())
          .setRevision(rev).build());
    });
  }

  public ReshardHashResponse reshardHash(ReshardHashRequest req) {
    return execute("ReshardHash", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_HASH);
      MapEdits.Edit<MapEdits.LayoutChange<HashLayout>> e = edits.hash().reshardHash(snap, markers(k.name()), references(), k.name(),
          req.getBucketsList());
      return new Plan<>(e.txn(), rev -> ReshardHashResponse.newBuilder().setHash(e.value().layout())
          .setMovedFraction(e.value().movedFraction()).setRevision(rev).build());
    });
  }

  public AddRingNodesResponse addRingNodes(AddRingNodesRequest req) {
    return execute("AddRingNodes", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_CONSISTENT_HASH);
      int count = req.getVnodes() == 0 ? k.spec().getDefaultVnodes() : req.getVnodes();
      MapEdits.Edit<MapEdits.LayoutChange<RingLayout>> e = edits.ring().addRingNodes(snap, markers(k.name()), references(), k.name(),
          req.getShard(), count, "keyspace");
      return new Plan<>(e.txn(), rev -> AddRingNodesResponse.newBuilder().setRing(e.value().layout())
          .setMovedFraction(e.value().movedFraction()).setRevision(rev).build());
    });
  }

  public RemoveRingNodesResponse removeRingNodes(RemoveRingNodesRequest req) {
    return execute("RemoveRingNodes", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_CONSISTENT_HASH);
      MapEdits.Edit<MapEdits.LayoutChange<RingLayout>> e = edits.ring().removeRingNodes(snap, markers(k.name()), k.name(),
          req.getShard(), req.getVnodes(), "keyspace");
      return new Plan<>(e.txn(), rev -> RemoveRingNodesResponse.newBuilder().setRing(e.value().layout())
          .setMovedFraction(e.value().movedFraction()).setRevision(rev).build());
    });
  }

  // ---------------------------------------------------------------- directory strategy (MapEdits)

  public PutDirectoryEntriesResponse putDirectoryEntries(PutDirectoryEntriesRequest req) {
    return execute("PutDirectoryEntries", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_DIRECTORY);
      MapEdits.Edit<List<DirectoryEntry>> e = edits.directory().putEntries(snap, markers(k.name()), references(), k.name(), req.getEntriesList());
      return new Plan<>(e.txn(), rev -> PutDirectoryEntriesResponse.newBuilder().addAllEntries(e.value())
          .setRevision(rev).build());
    });
  }

  public DeleteDirectoryEntriesResponse deleteDirectoryEntries(DeleteDirectoryEntriesRequest req) {
    return execute("DeleteDirectoryEntries", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_DIRECTORY);
      MapEdits.Edit<Integer> e = edits.directory().deleteEntries(snap, markers(k.name()), k.name(), req.getKeysList());
      return new Plan<>(e.txn(), rev -> DeleteDirectoryEntriesResponse.newBuilder().setDeleted(e.value())
          .setRevision(rev).build());
    });
  }

  public SetDirectoryFallbackResponse setDirectoryFallback(SetDirectoryFallbackRequest req) {
    return execute("SetDirectoryFallback", snap -> {
      MapEdits.Edit<DirectoryLayout> e = edits.directory().setFallback(snap, references(), req.getKeyspace(), req.getShard());
      return new Plan<>(e.txn(), rev -> SetDirectoryFallbackResponse.newBuilder().setDirectory(e.value())
          .setRevision(rev).build());
    });
  }

  // ---------------------------------------------------------------- geographic strategy (MapEdits)

  public SetRegionResponse setRegion(SetRegionRequest req) {
    return execute("SetRegion", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_GEOGRAPHIC);
      MapEdits.Edit<GeoLayout> e = edits.geo().setRegion(snap, markers(k.name()), references(), k.name(), req.getRegion(), req.getShard(),
          req.getMakeDefault());
      return new Plan<>(e.txn(), rev -> SetRegionResponse.newBuilder().setGeo(e.value()).setRevision(rev).build());
    });
  }

  public RemoveRegionResponse removeRegion(RemoveRegionRequest req) {
    return execute("RemoveRegion", snap -> {
      KeyspaceMap k = MapEdits.keyspaceOf(snap, "keyspace", req.getKeyspace(), Strategy.STRATEGY_GEOGRAPHIC);
      MapEdits.Edit<GeoLayout> e = edits.geo().removeRegion(snap, markers(k.name()), k.name(), req.getRegion());
      return new Plan<>(e.txn(), rev -> RemoveRegionResponse.newBuilder().setGeo(e.value()).setRevision(rev).build());
    });
  }
}
