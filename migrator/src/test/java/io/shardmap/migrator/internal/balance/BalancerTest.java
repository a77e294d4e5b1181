package io.shardmap.migrator.internal.balance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.BalancerPolicy;
import io.shardmap.proto.v1.FleetServiceGrpc;
import io.shardmap.proto.v1.GetFleetStatusRequest;
import io.shardmap.proto.v1.GetFleetStatusResponse;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.KeyspaceStatus;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.proto.v1.Suggestion;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.Txn;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The balancer on the in-memory store, a fake directory (in process) and fake moves: what a round asks for,
 * starts, records; that the policy it plans with is the stored one; and that bad policies change nothing.
 */
@Tag("unit")
class BalancerTest {
  static final CatalogPaths PATHS = new CatalogPaths("/b");
  final InMemoryMetaStore store = new InMemoryMetaStore();
  final AtomicReference<GetFleetStatusRequest> asked = new AtomicReference<>();
  final List<Suggestion> suggestions = new ArrayList<>();
  final ConcurrentHashMap<String, Migration> migrations = new ConcurrentHashMap<>();
  final List<String> starts = new ArrayList<>();
  Server server;
  ManagedChannel channel;
  ExecutorService drivers;
  Balancer balancer;

  @BeforeEach
  void start() throws Exception {
    String name = InProcessServerBuilder.generateName();
    server = InProcessServerBuilder.forName(name).directExecutor().addService(new FleetServiceGrpc.FleetServiceImplBase() {
      @Override
      public void getFleetStatus(GetFleetStatusRequest req, StreamObserver<GetFleetStatusResponse> out) {
        asked.set(req);
        out.onNext(GetFleetStatusResponse.newBuilder().addKeyspaces(KeyspaceStatus.newBuilder().setKeyspace("users")
            .setStrategy(Strategy.STRATEGY_RANGE).addAllSuggestions(suggestions)).build());
        out.onCompleted();
      }
    }).build().start();
    channel = InProcessChannelBuilder.forName(name).directExecutor().build();
    store.commit(Txn.builder().put(PATHS.spec("users"), KeyspaceSpec.newBuilder().setName("users")
        .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE).build().toByteArray()).build()).get();
    drivers = Executors.newSingleThreadExecutor();
    Balancer.Moves moves = new Balancer.Moves() {
      @Override
      public String start(String keyspace, String range, Integer bucket, boolean split, String target, long pause) {
        String id = "m" + (starts.size() + 1);
        starts.add(keyspace + " " + range + " split=" + split + " -> " + target + " pause=" + pause);
        migrations.put(id, Migration.newBuilder().setId(id).setKeyspace(keyspace)
            .setState(MigrationState.MIGRATION_STATE_PLANNED).build());
        return id;
      }

      @Override
      public Migration drive(String id, BooleanSupplier stop) {
        return migrations.get(id); // left running: the test ends moves itself
      }

      @Override
      public List<Migration> list() {
        return List.copyOf(migrations.values());
      }
    };
    balancer = new Balancer(store, PATHS, moves, channel, "test-balancer",
        Clock.fixed(Instant.parse("2026-12-08T12:00:00Z"), ZoneOffset.UTC), System::nanoTime, Duration.ofSeconds(2),
        Duration.ofSeconds(5), drivers);
  }

  @AfterEach
  void stop() throws Exception {
    drivers.shutdownNow();
    channel.shutdownNow();
    server.shutdownNow();
    drivers.awaitTermination(5, TimeUnit.SECONDS);
  }

  static Suggestion split(long start, long end, long at, String source, String target) {
    return Suggestion.newBuilder().setKind(Suggestion.Kind.KIND_SPLIT_AND_MOVE)
        .setStart(ByteString.copyFrom(Keys.encodeInt64(start))).setEnd(ByteString.copyFrom(Keys.encodeInt64(end)))
        .setSplitAt(Key.newBuilder().setIntKey(at)).setLabel("[" + start + ", " + end + ")").setSource(source)
        .setTarget(target).setText("split and move").build();
  }

  @Test
  void aDisabledBalancerStartsNothingButItsDryRunAsksWithItsPolicy() {
    suggestions.add(split(0, 1000, 420, "s1", "s2"));
    balancer.updatePolicy(p -> p.toBuilder().setTargetSkew(0.1).setWindowSeconds(120).build());
    Balancer.Round r = balancer.round();
    assertEquals(BalancerRound.DISABLED, r.idleReason());
    assertTrue(starts.isEmpty());
    assertEquals(1, balancer.plan(balancer.policy()).size());
    assertEquals(0.1, asked.get().getPolicy().getTargetSkew(), "the plan is asked with the stored policy");
    assertEquals(120, asked.get().getWindowSeconds());
    assertEquals("disabled", balancer.state().getIdleReason());
  }

  @Test
  void aRoundStartsTheFirstStepRecordsItAndWaitsForItBeforeTheNext() {
    suggestions.add(split(0, 1000, 420, "s1", "s2"));
    suggestions.add(split(5000, 6000, 5500, "s1", "s3"));
    balancer.updatePolicy(p -> p.toBuilder().setEnabled(true).setPauseBudgetMs(50).build());
    Balancer.Round r = balancer.round();
    assertEquals(List.of("users 420..1000 split=true -> s2 pause=50"), starts,
        "the upper part, from the load split point, moves; one move per keyspace");
    assertEquals(1, r.started().size());
    assertEquals("m1", balancer.state().getMoves(0).getMigrationId());
    assertEquals(Keys.encodeInt64(420).length, balancer.state().getMoves(0).getStart().size());

    r = balancer.round();
    assertEquals(1, starts.size(), "m1 still runs: nothing more starts");
    assertEquals(BalancerRound.BUSY, r.idleReason());

    migrations.computeIfPresent("m1", (k, m) -> m.toBuilder().setState(MigrationState.MIGRATION_STATE_DONE).build());
    // The directory still suggests the unit just moved (its load has not shifted in the window yet): cooled.
    suggestions.remove(1);
    suggestions.set(0, split(420, 1000, 700, "s2", "s1"));
    r = balancer.round();
    assertEquals(1, starts.size(), "the unit moved within the cooldown is not moved back");
    assertEquals(BalancerRound.COOLING, r.idleReason());
  }

  @Test
  void anImpossiblePolicyIsRefusedAndNothingIsWritten() throws Exception {
    balancer.updatePolicy(p -> p.toBuilder().setEnabled(true).setTargetSkew(0.3).build());
    long before = store.get(PATHS.balancerPolicy()).get().kvs().get(0).modRevision();
    ShardmapException e = assertThrows(ShardmapException.class,
        () -> balancer.updatePolicy(p -> p.toBuilder().setHysteresis(2).build()));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().contains("policy.hysteresis"), e.getMessage());
    e = assertThrows(ShardmapException.class,
        () -> balancer.updatePolicy(p -> p.toBuilder().setLoadWeight(0).setSizeWeight(0).build()));
    assertTrue(e.getMessage().contains("policy.load_weight"), e.getMessage());
    assertEquals(before, store.get(PATHS.balancerPolicy()).get().kvs().get(0).modRevision());
    assertEquals(0.3, balancer.policy().getTargetSkew());
  }
}
