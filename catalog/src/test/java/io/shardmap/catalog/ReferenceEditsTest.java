package io.shardmap.catalog;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.ReferenceTable;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Compare;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import java.time.Duration;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Reference-table records on the in-memory store: the declaration, copy and removal plans, the coverage
 * rule of every ownership edit, and the races between a declaration and an edit that makes a new owner
 * (one of them loses and re-plans; never an owner without a copy).
 */
@Tag("unit")
class ReferenceEditsTest {
  private static final Duration T = Duration.ofSeconds(2);
  private static final KeyRange FIRST = KeyRange.parse(KeyType.KEY_TYPE_INT64, "..100", "t");

  private final CatalogPaths paths = new CatalogPaths("/sm");
  private final MapEdits edits = new MapEdits(paths);
  private final ReferenceEdits refEdits = edits.reference();
  private final InMemoryMetaStore store = new InMemoryMetaStore();
  private final CatalogTxns txns = CatalogTxns.builder(store).timeout(T).maxAttempts(8)
      .random(() -> new SplittableRandom(3)).sleeper(n -> { }).build();

  /** Keyspace users (range) over s1 and s2; s3 is registered and owns nothing. */
  @BeforeEach
  void fleet() throws Exception {
    Txn.Builder t = Txn.builder();
    for (String s : new String[] {"s1", "s2", "s3"}) {
      t.put(paths.shard(s), Shard.newBuilder().setName(s).build().toByteArray());
    }
    t.put(paths.spec("users"), KeyspaceSpec.newBuilder().setName("users").setKeyType(KeyType.KEY_TYPE_INT64)
        .setStrategy(Strategy.STRATEGY_RANGE).build().toByteArray());
    range(t, "..100", "s1");
    range(t, "100..", "s2");
    store.commit(t.build()).get();
  }

  private void range(Txn.Builder t, String range, String shard) {
    KeyRange r = KeyRange.parse(KeyType.KEY_TYPE_INT64, range, "t");
    t.put(paths.range("users", r.start()), RangeAssignment.newBuilder().setRange(r.toProto(KeyType.KEY_TYPE_INT64))
        .setShard(shard).setEpoch(1).build().toByteArray());
  }

  private DirectorySnapshot snapshot() throws Exception {
    RangeResult all = store.getPrefix(paths.rootPrefix()).get();
    return DirectorySnapshot.empty(0).apply(all.revision(), new ChangeDecoder(paths).toChanges(all.kvs()));
  }

  private ReferenceTables refs() {
    return ReferenceTables.read(store, paths, T);
  }

  private static ReferenceTable countries(String... copies) {
    return ReferenceTable.newBuilder().setTable("public.countries").addKeyspaces("users").addPrimaryKey("code")
        .addAllCopies(List.of(copies)).setEpoch(1).build();
  }

  /** Declares through the CAS loop, planning on fresh reads each attempt. */
  private ReferenceTable declare(ReferenceTable t) {
    return txns.update("DeclareReference", () -> {
      try {
        return refEdits.declare(snapshot(), refs(), t);
      } catch (ShardmapException e) {
        throw e;
      } catch (Exception e) {
        throw new AssertionError(e);
      }
    }, CatalogTxns.FRESH_READS);
  }

  /** Gives range ..100 to {@code target} through the CAS loop. */
  private void reassign(String target, Runnable beforeCommit) {
    AtomicInteger attempt = new AtomicInteger();
    txns.update("ReassignRange", () -> {
      try {
        MapEdits.Edit<?> e = edits.range().reassignRange(snapshot(), MovingMarkers.read(store, paths, "users", T),
            refs(), "users", FIRST, target, 0);
        if (attempt.incrementAndGet() == 1) {
          beforeCommit.run();
        }
        return new CatalogTxns.Plan<>(e.txn(), rev -> rev);
      } catch (ShardmapException e) {
        throw e;
      } catch (Exception e) {
        throw new AssertionError(e);
      }
    }, CatalogTxns.FRESH_READS);
  }

  private static ShardmapException refused(ErrorCode code, Executable call, String... parts) {
    ShardmapException e = assertThrows(ShardmapException.class, call);
    assertEquals(code, e.code(), e.getMessage());
    for (String p : parts) {
      assertTrue(e.getMessage().contains(p), e.getMessage());
    }
    return e;
  }

  private long revision() throws Exception {
    return store.get("/none").get().revision();
  }

  @Test
  void aDeclarationIsRecordedOnceAndRerunsAreNoOps() throws Exception {
    ReferenceTable t = declare(countries("s2", "s1"));
    assertEquals(List.of("s1", "s2"), t.getCopiesList());
    assertEquals(t, refs().get("public.countries").orElseThrow().table());
    long rev = revision();
    assertNull(declare(countries("s1", "s2")), "the same declaration again writes nothing");
    assertEquals(rev, revision());
    refused(ErrorCode.ALREADY_EXISTS, () -> declare(countries("s1", "s2").toBuilder().clearKeyspaces()
        .setAllKeyspaces(true).build()), "public.countries is already a reference table");
  }

  @Test
  void badDeclarationsAreRefusedAndWriteNothing() throws Exception {
    long rev = revision();
    refused(ErrorCode.INVALID_ARGUMENT, () -> declare(countries("s1", "s2").toBuilder().clearPrimaryKey().build()),
        "primary_key", "public.countries has no primary key");
    refused(ErrorCode.INVALID_ARGUMENT, () -> declare(countries("s1", "s2").toBuilder().setAllKeyspaces(true).build()),
        "keyspaces", "exactly one");
    refused(ErrorCode.INVALID_ARGUMENT, () -> declare(countries("s1", "s2").toBuilder().setTable("countries").build()),
        "table");
    refused(ErrorCode.NOT_FOUND, () -> declare(countries("s1", "s2").toBuilder().addKeyspaces("nope").build()),
        "keyspace 'nope' does not exist");
    refused(ErrorCode.NOT_FOUND, () -> declare(countries("s1", "s2", "s9")), "copies", "s9");
    refused(ErrorCode.FAILED_PRECONDITION, () -> declare(countries("s1")), "shard 's2'", "public.countries");
    assertEquals(rev, revision(), "nothing was written");
  }

  @Test
  void anEditMakingAShardWithoutACopyAnOwnerIsRefusedNamingShardTableAndCommand() throws Exception {
    declare(countries("s1", "s2"));
    long rev = revision();
    refused(ErrorCode.FAILED_PRECONDITION, () -> reassign("s3", () -> { }), "shard 's3'", "public.countries",
        "keyspace 'users'", "shardmap-migrator reference sync --shard s3 --keyspace users");
    assertEquals(rev, revision());
    // Once s3 holds a copy (recorded), the same edit passes.
    ReferenceTables.Versioned v = refs().get("public.countries").orElseThrow();
    txns.update("AddCopy", () -> {
      try {
        return refEdits.rewrite(snapshot(), refs().get("public.countries").orElseThrow(), List.of("s1", "s2", "s3"), 2);
      } catch (Exception e) {
        throw new AssertionError(e);
      }
    }, CatalogTxns.FRESH_READS);
    assertEquals(List.of("s1", "s2", "s3"), refs().get("public.countries").orElseThrow().table().getCopiesList());
    assertTrue(v.modRevision() < refs().get("public.countries").orElseThrow().modRevision());
    reassign("s3", () -> { });
    assertEquals("s3", snapshot().keyspace("users").ranges().get(0).shard());
  }

  @Test
  void aTableOfEveryKeyspaceRefusesANewKeyspaceOverAShardWithoutACopy() throws Exception {
    declare(countries("s1", "s2").toBuilder().clearKeyspaces().setAllKeyspaces(true).build());
    CreateKeyspaceRequest req = CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("orders")
        .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)).addRangeShards("s1")
        .addRangeShards("s3").build();
    Supplier<CatalogTxns.Plan<Long>> create = () -> {
      try {
        Txn.Builder txn = Txn.builder().compare(Compare.absent(paths.spec("orders")))
            .put(paths.spec("orders"), req.getSpec().toByteArray());
        Set<String> owners = new LinkedHashSet<>();
        edits.forStrategy(Strategy.STRATEGY_RANGE).create(snapshot(), req, req.getSpec(), txn, owners, 128);
        edits.guardOwners(txn, "orders", owners, refs());
        return new CatalogTxns.Plan<>(txn.build(), rev -> rev);
      } catch (ShardmapException e) {
        throw e;
      } catch (Exception e) {
        throw new AssertionError(e);
      }
    };
    refused(ErrorCode.FAILED_PRECONDITION, () -> txns.update("CreateKeyspace", create, CatalogTxns.FRESH_READS),
        "shard 's3'", "public.countries", "keyspace 'orders'");
    assertTrue(store.get(paths.spec("orders")).get().kvs().isEmpty());
  }

  @Test
  void aDeclarationRacingAMoveToANewShardLosesAndReplansIntoARefusal() throws Exception {
    // The declaration reads the maps (owners s1, s2), then the edit giving ..100 to s3 commits.
    AtomicInteger attempts = new AtomicInteger();
    refused(ErrorCode.FAILED_PRECONDITION, () -> txns.update("DeclareReference", () -> {
      try {
        int attempt = attempts.incrementAndGet();
        CatalogTxns.Plan<ReferenceTable> p = refEdits.declare(snapshot(), refs(), countries("s1", "s2"));
        if (attempt == 1) {
          reassign("s3", () -> { });
        }
        return p;
      } catch (ShardmapException e) {
        throw e;
      } catch (Exception e) {
        throw new AssertionError(e);
      }
    }, CatalogTxns.FRESH_READS), "shard 's3'", "public.countries");
    assertEquals(2, attempts.get(), "the first commit lost on the owners guard and was re-planned");
    assertTrue(refs().tables().isEmpty(), "no record without a copy on the new owner s3");
    assertEquals("s3", snapshot().keyspace("users").ranges().get(0).shard());
  }

  @Test
  void aMoveToANewShardRacingADeclarationLosesAndReplansIntoARefusal() throws Exception {
    // The edit reads the records (none), then the declaration (copies s1, s2) commits.
    refused(ErrorCode.FAILED_PRECONDITION, () -> reassign("s3", () -> declare(countries("s1", "s2"))),
        "shard 's3'", "public.countries");
    assertEquals("s1", snapshot().keyspace("users").ranges().get(0).shard(), "s3 did not become an owner");
    assertEquals(List.of("s1", "s2"), refs().get("public.countries").orElseThrow().table().getCopiesList());
  }

  @Test
  void rewritesCompareTheRecordAndNeverDropACopyOrLowerTheEpoch() throws Exception {
    declare(countries("s1", "s2"));
    ReferenceTables.Versioned v = refs().get("public.countries").orElseThrow();
    refused(ErrorCode.INVALID_ARGUMENT, () -> refEdits.rewrite(snapshot(), v, List.of("s1"), 2), "copies");
    refused(ErrorCode.INVALID_ARGUMENT, () -> refEdits.rewrite(snapshot(), v, List.of("s1", "s2"), 0), "epoch");
    CatalogTxns.Plan<ReferenceTable> first = refEdits.rewrite(snapshot(), v, List.of("s1", "s2", "s3"), 2);
    CatalogTxns.Plan<ReferenceTable> stale = refEdits.rewrite(snapshot(), v, List.of("s1", "s2"), 5);
    assertTrue(store.commit(first.txn()).get().succeeded());
    assertFalse(store.commit(stale.txn()).get().succeeded(), "planned on the record before the first rewrite");
    ReferenceTable now = refs().get("public.countries").orElseThrow().table();
    assertEquals(2, now.getEpoch());
    assertEquals(List.of("s1", "s2", "s3"), now.getCopiesList());
    // Removal compares the record too, and deletes it.
    assertFalse(store.commit(refEdits.remove(v).txn()).get().succeeded());
    assertTrue(store.commit(refEdits.remove(refs().get("public.countries").orElseThrow()).txn()).get().succeeded());
    assertTrue(refs().tables().isEmpty());
  }
}
