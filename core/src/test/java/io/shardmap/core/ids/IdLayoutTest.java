package io.shardmap.core.ids;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class IdLayoutTest {
  private static final Instant NOW = Instant.parse("2026-12-07T12:00:00Z");
  private static final Clock CLOCK = Clock.fixed(NOW, ZoneOffset.UTC);

  private static IdLayout.Builder builder() {
    return IdLayout.builder().clock(CLOCK);
  }

  private static void refused(IdLayout.Builder b, String field, String rule) {
    ShardmapException e = assertThrows(ShardmapException.class, b::build);
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().startsWith(field + ": "), e.getMessage());
    assertTrue(e.getMessage().contains(rule), e.getMessage());
  }

  @Test
  void defaultsAreTwitters41_10_12FromARecentEpoch() {
    IdLayout l = builder().build();
    assertEquals(41, l.timeBits());
    assertEquals(10, l.workerBits());
    assertEquals(12, l.sequenceBits());
    assertEquals(0, l.spreadBits());
    assertEquals(Instant.parse("2026-01-01T00:00:00Z"), l.epoch());
    assertEquals(10, l.minYears());
    assertEquals(1023, l.maxWorker());
    assertEquals(4095, l.maxSequence());
    assertEquals(l, IdLayout.defaults());
  }

  @Test
  void runsOutAtIsEpochPlusTwoToTheTimeBitsMillis() {
    assertEquals(Instant.parse("2095-09-07T15:47:35.552Z"), builder().build().runsOutAt());
    IdLayout l = builder().timeBits(39).workerBits(12).sequenceBits(12).epoch(Instant.parse("2020-01-01T00:00:00Z"))
        .build();
    assertEquals(Instant.parse("2020-01-01T00:00:00Z").plusMillis(549_755_813_888L), l.runsOutAt());
    assertEquals(549_755_813_887L, l.maxTime());
    // The last millisecond fits, and its id is still positive.
    long last = l.compose(l.maxTime(), l.maxWorker(), l.maxSequence());
    assertEquals(Long.MAX_VALUE, last);
    assertThrows(ShardmapException.class, () -> l.compose(l.maxTime() + 1, 0, 0));
  }

  @Test
  void aLayoutRunningOutInTwoYearsIsRefusedWithMinYearsTen() {
    // 2^36 ms is 2.18 years; from an epoch 0.1 year ago it runs out about 2.08 years from now.
    Instant epoch = NOW.minus(Duration.ofDays(36));
    IdLayout.Builder b = builder().timeBits(36).workerBits(14).sequenceBits(13).epoch(epoch);
    refused(b.minYears(10), "timeBits", "sooner than minYears (10) from now");
    IdLayout ok = b.minYears(2).build();
    assertTrue(ok.runsOutAt().isAfter(NOW.plus(Duration.ofDays(730))));
    assertTrue(ok.runsOutAt().isBefore(NOW.plus(Duration.ofDays(3 * 365))));
  }

  @Test
  void baiduUidGeneratorsDefaultIsRefused() {
    // Baidu's 28 bits of seconds from 2016-05-20 ran out on 2024-11-20; the nearest ms layout, 38 bits, on 2025-02-03.
    refused(builder().timeBits(38).workerBits(13).sequenceBits(12).epoch(Instant.parse("2016-05-20T00:00:00Z")),
        "timeBits", "run out at 2025-02-03T10:58:26.944Z");
  }

  @Test
  void validationNamesTheFieldAndTheRule() {
    refused(builder().timeBits(41).workerBits(10).sequenceBits(13), "timeBits + workerBits + sequenceBits",
        "must add up to 63");
    refused(builder().timeBits(42).workerBits(10).sequenceBits(12), "timeBits + workerBits + sequenceBits",
        "= 64");
    refused(builder().timeBits(50).workerBits(0).sequenceBits(13), "workerBits", "at least 1");
    refused(builder().timeBits(50).workerBits(13).sequenceBits(0), "sequenceBits", "at least 1");
    refused(builder().timeBits(34).workerBits(16).sequenceBits(13), "timeBits", "at least 35");
    refused(builder().timeBits(-1).workerBits(32).sequenceBits(32), "timeBits", "at least 35");
    refused(builder().epoch(NOW.plusSeconds(1)), "epoch", "must be within");
    refused(builder().epoch(Instant.parse("1969-12-31T23:59:59Z")), "epoch", "must be within");
    refused(builder().epoch(null), "epoch", "must be within");
    refused(builder().minYears(0), "minYears", "at least 1");
    refused(builder().spreadBits(13), "spreadBits", "within 0..sequenceBits (12)");
    refused(builder().spreadBits(-1), "spreadBits", "within 0..sequenceBits");
  }

  @Test
  void composeAndDecomposeRoundTrip() {
    for (int spread : new int[] {0, 3, 12}) {
      IdLayout l = builder().spreadBits(spread).build();
      SplittableRandom r = new SplittableRandom(spread);
      for (int i = 0; i < 10_000; i++) {
        long t = r.nextLong(l.maxTime() + 1);
        long w = r.nextLong(l.maxWorker() + 1);
        long s = r.nextLong(l.maxSequence() + 1);
        long id = l.compose(t, w, s);
        assertTrue(id >= 0);
        assertEquals(t, l.timeOf(id));
        assertEquals(w, l.workerOf(id));
        assertEquals(s, l.sequenceOf(id));
        assertEquals(t + l.epochMillis(), l.unixMillisOf(id));
      }
    }
    IdLayout l = builder().build();
    ShardmapException e = assertThrows(ShardmapException.class, () -> l.compose(0, 1024, 0));
    assertTrue(e.getMessage().startsWith("worker: "), e.getMessage());
    e = assertThrows(ShardmapException.class, () -> l.compose(0, 0, 4096));
    assertTrue(e.getMessage().startsWith("sequence: "), e.getMessage());
    e = assertThrows(ShardmapException.class, () -> l.compose(-1, 0, 0));
    assertTrue(e.getMessage().startsWith("time: "), e.getMessage());
  }

  @Test
  void spreadIsABijectionOfThePositiveLongs() {
    for (int k = 1; k <= 12; k++) {
      IdLayout l = builder().spreadBits(k).build();
      SplittableRandom r = new SplittableRandom(k);
      for (int i = 0; i < 20_000; i++) {
        long x = r.nextLong() >>> 1;
        long s = l.spread(x);
        assertTrue(s >= 0);
        assertEquals(x, l.unspread(s));
        assertEquals(x, l.spread(l.unspread(x)));
      }
      assertEquals(Long.MAX_VALUE, l.unspread(l.spread(Long.MAX_VALUE)));
      assertEquals(0, l.unspread(l.spread(0)));
    }
  }
}
