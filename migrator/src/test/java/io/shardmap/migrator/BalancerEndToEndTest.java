package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.Keys;
import io.shardmap.migrator.internal.balance.Balancer;
import io.shardmap.migrator.internal.balance.BalancerRound;
import io.shardmap.proto.v1.FleetServiceGrpc;
import io.shardmap.proto.v1.GetFleetStatusRequest;
import io.shardmap.proto.v1.GetHeatmapRequest;
import io.shardmap.proto.v1.GetHeatmapResponse;
import io.shardmap.proto.v1.HeatmapRow;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyspaceStatus;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.SplitRangeRequest;
import io.shardmap.proto.v1.Suggestion;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.MetaStore;
import io.shardmap.testkit.Await;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.BooleanSupplier;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Issue 16's whole loop on real etcd, PostgreSQL and SDK writers with the oracle of acknowledged writes: a
 * skewed workload (a quarter of all writes on 1,000 keys of one range) shows up as the hottest row of the
 * heatmap and the hottest unit of the status within a minute of the load starting; the balancer's dry run
 * proposes to take load off that range's shard; turned on, the balancer moves it, the load skew falls under
 * its target, nothing acknowledged is lost, and later rounds move nothing back.
 */
@Tag("consistency")
@Tag("slow") // minutes: run by `mvn verify -Pslow` and .ci/run, not by the default `mvn verify`
class BalancerEndToEndTest {
  static final long HOT_START = 5_000;
  static final long HOT_END = 10_000;

  @Test
  void aHotRangeIsSeenPlannedAndBalancedWithoutLosingAWrite() throws Exception {
    try (MoveHarness h = new MoveHarness();
         Migrator migrator = Migrator.open(h.migratorOptions().workerName("balancer-test").build());
         MetaStore store = EtcdMetaStore.builder().endpoints(h.etcd.clientEndpoints()).build()) {
      // [..-20000) [-20000..0) on s1, [0..5000) [5000..10000) [10000..20000) [20000..) on s2; s3 registered but
      // owning nothing. Writers spread three quarters of their writes over [-40000, 40000) and a quarter over
      // the hot keys: [5000, 10000) gets about 30 % of the calls, no other range more than 19 %.
      for (long at : new long[] {-20_000, HOT_START, HOT_END, 20_000}) {
        h.fixture.admin().splitRange(SplitRangeRequest.newBuilder().setKeyspace(MoveHarness.KS)
            .setSplitKey(Key.newBuilder().setIntKey(at)).build());
      }
      h.hotKeys = LongStream.range(HOT_START, HOT_START + 1_000).boxed().toList();
      h.startWriters(4, Duration.ofSeconds(300));
      FleetServiceGrpc.FleetServiceBlockingStub fleet = FleetServiceGrpc.newBlockingStub(h.channel);

      long loadStarted = System.nanoTime();
      String hot = "[" + HOT_START + ", " + HOT_END + ")";
      java.util.concurrent.atomic.AtomicReference<String> lastSeen = new java.util.concurrent.atomic.AtomicReference<>();
      try {
        Await.until(Duration.ofSeconds(60), "the heatmap's hottest row is " + hot, () -> {
          GetHeatmapResponse m = fleet.getHeatmap(GetHeatmapRequest.newBuilder().setKeyspace(MoveHarness.KS)
              .setWindowSeconds(600).build());
          HeatmapRow top = null;
          long best = -1;
          StringBuilder seen = new StringBuilder();
          for (HeatmapRow r : m.getRowsList()) {
            long calls = r.getWritesList().stream().mapToLong(Long::longValue).sum()
                + r.getReadsList().stream().mapToLong(Long::longValue).sum();
            seen.append(r.getLabel()).append('=').append(calls).append(' ');
            if (calls > best) {
              best = calls;
              top = r;
            }
          }
          lastSeen.set(seen.toString());
          return top != null && best >= 300 && top.getLabel().equals(hot); // a pattern, not the first few calls
        });
      } catch (AssertionError e) {
        throw new AssertionError(e.getMessage() + "; the heatmap's rows (calls): " + lastSeen.get(), e);
      }
      System.out.println("heatmap rows (calls): " + lastSeen.get());
      KeyspaceStatus ks = fleet.getFleetStatus(GetFleetStatusRequest.newBuilder().setKeyspace(MoveHarness.KS)
          .setWindowSeconds(600).build()).getKeyspaces(0);
      assertEquals(hot, ks.getHottest(0).getLabel(), "status names the hot range first");
      System.out.printf("hot range seen in the heatmap and status %.1f s after the load started%n",
          (System.nanoTime() - loadStarted) / 1e9);

      ExecutorService drivers = Executors.newFixedThreadPool(2);
      Balancer balancer = new Balancer(store, new CatalogPaths(h.prefix), moves(migrator), h.channel, "balancer-test",
          Clock.systemUTC(), System::nanoTime, Duration.ofSeconds(5), Duration.ofSeconds(10), drivers);
      // Load only, over the shortest window, so the test sees the effect of a move within minutes.
      balancer.updatePolicy(p -> p.toBuilder().setTargetSkew(0.5).setSizeWeight(0).setWindowSeconds(60)
          .setCooldownSeconds(3600).setMaxConcurrentMoves(1).build());

      List<BalancerRound.Step> dry = balancer.plan(balancer.policy());
      assertTrue(!dry.isEmpty(), "a skewed keyspace gets a plan");
      Suggestion first = dry.get(0).suggestion();
      System.out.println("dry run: " + dry.stream().map(s -> s.suggestion().getText()).toList());
      assertEquals("s2", first.getSource(), "the plan takes load off the hot range's shard");
      assertTrue(unitOverlapsHot(first), "the first step moves (part of) the hot range: " + first.getText());
      assertTrue(!first.getTarget().equals("s2"));

      balancer.updatePolicy(p -> p.toBuilder().setEnabled(true).build());
      List<String> moved = new ArrayList<>();
      long deadline = System.nanoTime() + Duration.ofSeconds(240).toNanos();
      double skew = Double.MAX_VALUE;
      while (System.nanoTime() < deadline) {
        Balancer.Round r = balancer.round();
        r.started().forEach(m -> moved.add(m.getMigrationId() + " " + m.getLabel() + " -> " + m.getTarget()));
        skew = fleet.getFleetStatus(GetFleetStatusRequest.newBuilder().setKeyspace(MoveHarness.KS)
            .setWindowSeconds(60).build()).getKeyspaces(0).getLoadSkew();
        boolean running = migrator.list().stream().anyMatch(m -> !m.getState().name().endsWith("DONE")
            && !m.getState().name().endsWith("CANCELLED"));
        if (!moved.isEmpty() && !running && skew <= 0.5) {
          break;
        }
        Thread.sleep(5_000);
      }
      System.out.println("balancer moves: " + moved + "; load skew over the last minute " + skew);
      assertTrue(!moved.isEmpty(), "the balancer moved something");
      assertTrue(skew <= 0.5, "load skew " + skew + " is not under the target 0.5 after the balancer's moves");

      // Balanced: more rounds start nothing (and never move the moved unit back).
      int before = moved.size();
      for (int i = 0; i < 3; i++) {
        Balancer.Round r = balancer.round();
        assertTrue(r.started().isEmpty(), "a balanced keyspace got another move: " + r.started());
        Thread.sleep(2_000);
      }
      assertEquals(before, moved.size());

      h.stopWriters();
      drivers.shutdown();
      assertTrue(h.writerErrors.isEmpty(), "writer errors: " + h.writerErrors);
      h.assertEveryAcknowledgedWriteOnItsOwner();
      System.out.println("acknowledged writes " + h.acknowledged.get() + ", failed " + h.failed.get());
    }
  }

  /** Whether the suggestion's unit overlaps the hot range. */
  private static boolean unitOverlapsHot(Suggestion s) {
    byte[] start = s.getStart().toByteArray();
    byte[] end = s.getEnd().toByteArray();
    long lo = start.length == 0 ? Long.MIN_VALUE : Keys.decodeInt64(start);
    long hi = end.length == 0 ? Long.MAX_VALUE : Keys.decodeInt64(end);
    return lo < HOT_END && HOT_START < hi;
  }

  static Balancer.Moves moves(Migrator m) {
    return new Balancer.Moves() {
      @Override
      public String start(String keyspace, String range, Integer bucket, boolean split, String target, long pause) {
        MoveSpec.Builder b = MoveSpec.builder().keyspace(keyspace).target(target)
            .pauseBudget(Duration.ofMillis(pause)).cleanupGrace(Duration.ofSeconds(1));
        if (bucket != null) {
          b.bucket(bucket);
        } else {
          b.range(range).split(split);
        }
        return m.plan(b.build()).getId();
      }

      @Override
      public Migration drive(String id, BooleanSupplier stop) {
        return m.drive(id, x -> { }, Duration.ofSeconds(30), stop);
      }

      @Override
      public List<Migration> list() {
        return m.list();
      }
    };
  }
}
