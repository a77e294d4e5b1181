package io.shardmap.migrator.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationOptions;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.support.cli.Durations;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.Duration;
import java.util.OptionalLong;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** Progress lines, the status table's numbers and duration syntax, without etcd or PostgreSQL. */
@Tag("unit")
class ProgressTest {
  static final long T0 = 1_700_000_000_000L;

  static Migration.Builder migration(String range) {
    return Migration.newBuilder().setId("mv1").setKeyspace("users").setKeyType(KeyType.KEY_TYPE_INT64)
        .setRange(KeyRange.parse(KeyType.KEY_TYPE_INT64, range, "range").toProto(KeyType.KEY_TYPE_INT64))
        .setSource("s2").setTarget("s3").addTables(ShardedTable.newBuilder().setName("users").setKeyColumn("id"))
        .setOptions(MigrationOptions.newBuilder().setPauseBudgetMs(100).setChunkRows(1000).setCleanupGraceMs(60_000)
            .setMaxCutoverAttempts(5))
        .setCreatedUnixMs(T0).setUpdatedUnixMs(T0);
  }

  static Migration copying(long rows, long after) {
    return migration("0..10000").setState(MigrationState.MIGRATION_STATE_COPYING).setCopyStartedUnixMs(T0)
        .setUpdatedUnixMs(T0 + 2_000).setRowsCopied(rows).setBytesCopied(rows * 100)
        .setCopyAfter(ByteString.copyFrom(Keys.encodeInt64(after))).build();
  }

  @Test
  void linesModePrintsEachStateAndThenAtMostEveryFiveSeconds() {
    StringWriter w = new StringWriter();
    AtomicLong now = new AtomicLong(T0);
    Progress p = new Progress(new PrintWriter(w, true), Progress.Mode.LINES, now::get, null);
    p.show(migration("0..10000").setState(MigrationState.MIGRATION_STATE_PLANNED).build());
    p.show(copying(1000, 999));
    now.addAndGet(1_000);
    p.show(copying(2000, 1999)); // same state, too soon: not printed
    now.addAndGet(5_000);
    p.show(copying(4000, 3999));
    p.show(migration("0..10000").setState(MigrationState.MIGRATION_STATE_CATCHING_UP).setRowsCopied(10_000)
        .setLagKeys(3).build());
    assertEquals("""
        mv1 planned      users range 0..10000 from s2 to s3, recorded
        mv1 copying      1,000 rows, 500 rows/s, 0.1 MB/s
        mv1 copying      4,000 rows, 2,000 rows/s, 0.2 MB/s
        mv1 catching-up  10,000 rows copied; 0 keys replayed, lag 3 keys
        """, w.toString());
  }

  @Test
  void cleanupShowsItsWaitForClientsThenItsDeletes() {
    StringWriter w = new StringWriter();
    AtomicLong now = new AtomicLong(T0);
    Progress p = new Progress(new PrintWriter(w, true), Progress.Mode.LINES, now::get, null);
    Migration.Builder cut = migration("0..10000").setState(MigrationState.MIGRATION_STATE_CLEANING_UP)
        .setRowsCopied(10_000).setCutoverRevision(42).setPauseMs(7).setCutoverUnixMs(T0);
    p.show(cut.build());
    now.addAndGet(6_000);
    p.show(cut.setUpdatedUnixMs(T0 + 6_000).setCleanupWaitingFor("client c1 at revision 40").build());
    now.addAndGet(6_000);
    p.show(cut.clearCleanupWaitingFor().setCleanupReason("every live client acknowledged revision 42")
        .setRowsDeleted(2_500).build());
    assertEquals("""
        mv1 cleaning-up  cut over at revision 42, write pause 7 ms of 100 ms budget; 0 source rows deleted, waiting \
        for clients to see the new owner (at most 1m00s)
        mv1 cleaning-up  cut over at revision 42, write pause 7 ms of 100 ms budget; 0 source rows deleted, waiting \
        for clients to see the new owner (6.0 s of at most 1m00s; still behind: client c1 at revision 40)
        mv1 cleaning-up  cut over at revision 42, write pause 7 ms of 100 ms budget; 2,500 source rows deleted \
        (every live client acknowledged revision 42)
        """, w.toString());
  }

  @Test
  void linesModePrintsALineWhenAnotherWorkerTakesOver() {
    StringWriter w = new StringWriter();
    Progress p = new Progress(new PrintWriter(w, true), Progress.Mode.LINES, () -> T0, null);
    p.show(copying(1000, 999));
    p.show(copying(1000, 999), "driven by worker w1");
    p.show(copying(2000, 1999), "driven by worker w1"); // same state, same worker, too soon
    assertEquals("""
        mv1 copying      1,000 rows, 500 rows/s, 0.1 MB/s
        mv1 copying      1,000 rows, 500 rows/s, 0.1 MB/s (driven by worker w1)
        """, w.toString());
  }

  @Test
  void liveModeRewritesOneLinePerStateAndShowsABarWithAnEstimate() throws Exception {
    StringWriter w = new StringWriter();
    Progress p = new Progress(new PrintWriter(w, true), Progress.Mode.LIVE, () -> T0, m -> OptionalLong.of(10_000));
    p.show(copying(1000, 999)); // asks for the estimate in the background
    for (int i = 0; i < 100 && !p.line(copying(1000, 999)).contains("ETA"); i++) {
      Thread.sleep(10);
    }
    p.show(copying(2500, 2499));
    p.show(migration("0..10000").setState(MigrationState.MIGRATION_STATE_DONE).setRowsCopied(10_000)
        .setBytesCopied(1_000_000).setPauseMs(12).setRowsDeleted(10_000).setFinishedUnixMs(T0 + 4_000).build());
    p.finish();
    String out = w.toString();
    // The first line may or may not have the estimate yet; the ones after it do.
    assertTrue(out.startsWith("\rmv1 copying      "), out);
    assertTrue(out.contains("\rmv1 copying      [#####---------------] 25%  2,500 of ~10,000 rows, 1,250 rows/s, "
        + "0.1 MB/s, ETA 6.0 s"), out);
    assertTrue(out.endsWith("\n\rmv1 done         moved 10,000 rows (1.0 MB) to s3 in 4.0 s; write pause 12 ms of "
        + "100 ms budget; 10,000 source rows deleted\n"), out);
  }

  @Test
  void jsonModePrintsEachNewVersionOnce() {
    StringWriter w = new StringWriter();
    Progress p = new Progress(new PrintWriter(w, true), Progress.Mode.JSON, () -> T0, null);
    p.show(copying(1000, 999));
    p.show(copying(1000, 999));
    p.show(copying(2000, 1999));
    assertEquals(2, w.toString().lines().count(), w::toString);
    assertTrue(w.toString().lines().allMatch(l -> l.startsWith("{\"id\":\"mv1\"") && l.endsWith("}")), w::toString);
  }

  @Test
  void progressPercentFollowsTheStepsAndTheCursor() {
    assertEquals("0%", Show.progress(migration("0..10000").setState(MigrationState.MIGRATION_STATE_PLANNED).build()));
    assertEquals("30%", Show.progress(copying(5000, 4999)));
    assertEquals("60%", Show.progress(migration("0..10000").setState(MigrationState.MIGRATION_STATE_CATCHING_UP)
        .build()));
    assertEquals("75%", Show.progress(migration("0..10000").setState(MigrationState.MIGRATION_STATE_VERIFYING)
        .setVerifyAfter(ByteString.copyFrom(Keys.encodeInt64(4999))).build()));
    assertEquals("90%", Show.progress(migration("0..10000").setState(MigrationState.MIGRATION_STATE_CUTTING_OVER)
        .build()));
    assertEquals("97%", Show.progress(migration("0..10000").setState(MigrationState.MIGRATION_STATE_CLEANING_UP)
        .setRowsCopied(100).setRowsDeleted(50).build()));
    assertEquals("100%", Show.progress(migration("0..10000").setState(MigrationState.MIGRATION_STATE_DONE).build()));
    assertEquals("-", Show.progress(migration("0..10000").setState(MigrationState.MIGRATION_STATE_CANCELLED).build()));
    // An unbounded range: only finished tables count.
    assertEquals("0%", Show.progress(migration("5000..").setState(MigrationState.MIGRATION_STATE_COPYING)
        .setCopyAfter(ByteString.copyFrom(Keys.encodeInt64(9_000_000))).build()));
  }

  @Test
  void tableRowAndPause() {
    Migration m = migration("..0").setState(MigrationState.MIGRATION_STATE_CLEANING_UP).setCutoverRevision(42)
        .setPauseMs(12).setRowsCopied(1_234_567).setLagKeys(0).setOwner("host-1")
        .setLastError("x".repeat(80)).build();
    var row = Show.row(m, false);
    assertEquals(java.util.List.of("mv1", "users", "..0", "s2->s3", "cleaning-up", "95%", "1,234,567", "0", "12/100ms",
        "host-1", "x".repeat(57) + "..."), row);
    assertEquals("-/100ms", Show.pause(migration("0..").build()));
    assertEquals("x".repeat(80), Show.row(m, true).get(10));
  }

  @Test
  void durations() {
    // The options that say what 0 means (--cleanup-grace, --etcd-retry-for...) take this converter.
    Durations.ZeroAllowed c = new Durations.ZeroAllowed();
    assertEquals(Duration.ofMillis(100), c.convert("100ms"));
    assertEquals(Duration.ofSeconds(60), c.convert("60s"));
    assertEquals(Duration.ofMinutes(2), c.convert("2m"));
    assertEquals(Duration.ofHours(1), c.convert("1h"));
    assertEquals(Duration.ZERO, c.convert("0"));
    for (String bad : new String[] {"100", "fast", "-5s", "1.5s", ""}) {
      assertThrows(CommandLine.TypeConversionException.class, () -> c.convert(bad), bad);
    }
    assertEquals("850 ms", Durations.human(850));
    assertEquals("12.3 s", Durations.human(12_300));
    assertEquals("4m05s", Durations.human(245_000));
    assertEquals("2h10m", Durations.human(7_800_000));
    assertFalse(Show.bytes(999).contains("k"));
    assertEquals("1.2 MB", Show.bytes(1_234_567));
  }
}
