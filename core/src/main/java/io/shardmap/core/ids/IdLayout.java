package io.shardmap.core.ids;

import io.shardmap.core.ShardmapException;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;

/**
 * The bit layout of a 64-bit global id: the sign bit is always 0 (ids are positive), then {@code timeBits}
 * of milliseconds since {@link #epoch()}, {@code workerBits} of worker id and {@code sequenceBits} of
 * per-millisecond sequence, 63 bits in all. Immutable; built by {@link #builder()}, which refuses a layout
 * whose time bits run out less than {@link #minYears()} from now (Baidu's uid-generator default ran out on
 * 2024-11-20 and produced negative ids).
 *
 * <p>With {@code spreadBits = k > 0} the id is not time-ordered: its top {@code k} bits (below the sign bit)
 * are a bucket number, the low {@code k} bits of the ordered id plus a hash of the rest (mod 2^k), and the
 * other 63 - k bits are the ordered id shifted right by {@code k}. The map is a bijection (the rest is kept
 * verbatim, so the added hash can be subtracted again), so ids stay unique; consecutive ids of one
 * generator land in the 2^k equal slices of {@code [0, 2^63)} evenly, and within one slice they are still in
 * time order. See docs/ids.md for the trade-off.
 */
public final class IdLayout {
  /** Usable bits: 64 minus the sign bit, which stays 0 so that every id is positive. */
  public static final int USABLE_BITS = 63;

  /** The default epoch, 2026-01-01T00:00:00Z: recent, so the 41 default time bits last until 2095-09-07. */
  public static final Instant DEFAULT_EPOCH = Instant.parse("2026-01-01T00:00:00Z");

  private final int timeBits;
  private final int workerBits;
  private final int sequenceBits;
  private final int spreadBits;
  private final Instant epoch;
  private final long epochMillis;
  private final int minYears;
  private final long workerMask;
  private final long sequenceMask;
  private final long spreadMask;

  private IdLayout(Builder b) {
    this.timeBits = b.timeBits;
    this.workerBits = b.workerBits;
    this.sequenceBits = b.sequenceBits;
    this.spreadBits = b.spreadBits;
    this.epoch = b.epoch;
    this.epochMillis = b.epoch.toEpochMilli();
    this.minYears = b.minYears;
    this.workerMask = (1L << workerBits) - 1;
    this.sequenceMask = (1L << sequenceBits) - 1;
    this.spreadMask = (1L << spreadBits) - 1;
  }

  /** Twitter's 41/10/12 split from {@link #DEFAULT_EPOCH}, time-ordered, at least 10 years left. */
  public static IdLayout defaults() {
    return builder().build();
  }

  public static Builder builder() {
    return new Builder();
  }

  public int timeBits() {
    return timeBits;
  }

  public int workerBits() {
    return workerBits;
  }

  public int sequenceBits() {
    return sequenceBits;
  }

  /** 0 for time-ordered ids; k > 0 spreads consecutive ids over 2^k slices of the key space. */
  public int spreadBits() {
    return spreadBits;
  }

  public Instant epoch() {
    return epoch;
  }

  public long epochMillis() {
    return epochMillis;
  }

  public int minYears() {
    return minYears;
  }

  /** The largest worker id: 2^workerBits - 1. */
  public long maxWorker() {
    return workerMask;
  }

  /** The largest sequence number within one millisecond: 2^sequenceBits - 1. */
  public long maxSequence() {
    return sequenceMask;
  }

  /** The largest time field: 2^timeBits - 1 ms after the epoch. */
  public long maxTime() {
    return (1L << timeBits) - 1;
  }

  /** The first instant whose time field does not fit: epoch + 2^timeBits ms. */
  public Instant runsOutAt() {
    return epoch.plusMillis(1L << timeBits);
  }

  /**
   * The id of {@code time} ms after the epoch, {@code worker} and {@code sequence}, spread if the layout
   * spreads.
   *
   * @throws ShardmapException INVALID_ARGUMENT naming the field if one does not fit its bits
   */
  public long compose(long time, long worker, long sequence) {
    if (time < 0 || time > maxTime()) {
      throw ShardmapException.invalid("time", "must be within 0.." + maxTime() + " ms after the epoch, got " + time);
    }
    if (worker < 0 || worker > workerMask) {
      throw ShardmapException.invalid("worker", "must be within 0.." + workerMask + ", got " + worker);
    }
    if (sequence < 0 || sequence > sequenceMask) {
      throw ShardmapException.invalid("sequence", "must be within 0.." + sequenceMask + ", got " + sequence);
    }
    return spread(ordered(time, worker, sequence));
  }

  /** The time field of {@code id}: ms after the epoch. */
  public long timeOf(long id) {
    return unspread(id) >>> (workerBits + sequenceBits);
  }

  /** The wall-clock ms (Unix epoch) of {@code id}'s time field. */
  public long unixMillisOf(long id) {
    return timeOf(id) + epochMillis;
  }

  public long workerOf(long id) {
    return (unspread(id) >>> sequenceBits) & workerMask;
  }

  public long sequenceOf(long id) {
    return unspread(id) & sequenceMask;
  }

  /** The time-ordered form (no spread), unchecked: the generator's fast path. */
  long ordered(long time, long worker, long sequence) {
    return (time << (workerBits + sequenceBits)) | (worker << sequenceBits) | sequence;
  }

  /** The id as issued from its time-ordered form; the identity when the layout does not spread. */
  public long spread(long ordered) {
    if (spreadBits == 0) {
      return ordered;
    }
    long rest = ordered >>> spreadBits;
    long bucket = (ordered + mix(rest)) & spreadMask;
    return (bucket << (USABLE_BITS - spreadBits)) | rest;
  }

  /** The inverse of {@link #spread}: the time-ordered form of an issued id. */
  public long unspread(long id) {
    if (spreadBits == 0) {
      return id;
    }
    long rest = id & ((1L << (USABLE_BITS - spreadBits)) - 1);
    long bucket = id >>> (USABLE_BITS - spreadBits);
    long low = (bucket - mix(rest)) & spreadMask;
    return (rest << spreadBits) | low;
  }

  /**
   * MurmurHash3's 64-bit finalizer: every input bit flips each output bit with probability about 1/2, so
   * the bucket of a generator issuing one id per ms (sequence always 0) still moves on every id.
   */
  private static long mix(long z) {
    z ^= z >>> 33;
    z *= 0xff51afd7ed558ccdL;
    z ^= z >>> 33;
    z *= 0xc4ceb9fe1a85ec53L;
    z ^= z >>> 33;
    return z;
  }

  @Override
  public String toString() {
    return "IdLayout{time=" + timeBits + ", worker=" + workerBits + ", sequence=" + sequenceBits
        + (spreadBits == 0 ? "" : ", spread=" + spreadBits) + ", epoch=" + epoch + ", runsOutAt=" + runsOutAt() + "}";
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof IdLayout l && l.timeBits == timeBits && l.workerBits == workerBits
        && l.sequenceBits == sequenceBits && l.spreadBits == spreadBits && l.epochMillis == epochMillis
        && l.minYears == minYears;
  }

  @Override
  public int hashCode() {
    return java.util.Objects.hash(timeBits, workerBits, sequenceBits, spreadBits, epochMillis, minYears);
  }

  /** Validating builder; every refusal is a {@link ShardmapException} INVALID_ARGUMENT naming the field. */
  public static final class Builder {
    /** Fewer time bits cannot last the shortest allowed lifetime of one year (2^34 ms is 199 days). */
    public static final int MIN_TIME_BITS = 35;

    private int timeBits = 41;
    private int workerBits = 10;
    private int sequenceBits = 12;
    private int spreadBits = 0;
    private Instant epoch = DEFAULT_EPOCH;
    private int minYears = 10;
    private Clock clock = Clock.systemUTC();

    private Builder() {}

    public Builder timeBits(int n) {
      this.timeBits = n;
      return this;
    }

    public Builder workerBits(int n) {
      this.workerBits = n;
      return this;
    }

    public Builder sequenceBits(int n) {
      this.sequenceBits = n;
      return this;
    }

    /** 0 (the default) keeps ids time-ordered; 1..sequenceBits spreads them over 2^k slices. */
    public Builder spreadBits(int n) {
      this.spreadBits = n;
      return this;
    }

    /** The instant the time field counts from; must not be in the future nor before 1970. */
    public Builder epoch(Instant epoch) {
      this.epoch = epoch;
      return this;
    }

    /** The layout must not run out sooner than this many years from now (default 10, at least 1). */
    public Builder minYears(int years) {
      this.minYears = years;
      return this;
    }

    /** The clock "now" is read from, for the epoch and lifetime checks (tests inject a fixed one). */
    public Builder clock(Clock clock) {
      this.clock = clock;
      return this;
    }

    /**
     * @throws ShardmapException INVALID_ARGUMENT naming the field and the rule it breaks
     */
    public IdLayout build() {
      if (timeBits < MIN_TIME_BITS) {
        throw ShardmapException.invalid("timeBits", "must be at least " + MIN_TIME_BITS
            + " (2^35 ms is 1.09 years; fewer cannot last a year), got " + timeBits);
      }
      if (workerBits < 1) {
        throw ShardmapException.invalid("workerBits", "must be at least 1, got " + workerBits);
      }
      if (sequenceBits < 1) {
        throw ShardmapException.invalid("sequenceBits", "must be at least 1, got " + sequenceBits);
      }
      if ((long) timeBits + workerBits + sequenceBits != USABLE_BITS) {
        throw ShardmapException.invalid("timeBits + workerBits + sequenceBits", "must add up to 63 (the sign bit "
            + "stays 0 so ids are positive), got " + timeBits + " + " + workerBits + " + " + sequenceBits + " = "
            + ((long) timeBits + workerBits + sequenceBits));
      }
      if (spreadBits < 0 || spreadBits > sequenceBits) {
        throw ShardmapException.invalid("spreadBits", "must be within 0..sequenceBits (" + sequenceBits + "), got "
            + spreadBits);
      }
      if (clock == null) {
        throw ShardmapException.invalid("clock", "must not be null");
      }
      if (minYears < 1) {
        throw ShardmapException.invalid("minYears", "must be at least 1, got " + minYears);
      }
      Instant now = clock.instant();
      if (epoch == null || epoch.isBefore(Instant.EPOCH) || epoch.isAfter(now)) {
        throw ShardmapException.invalid("epoch", "must be within 1970-01-01T00:00:00Z.." + now
            + " (ids before the epoch cannot be issued), got " + epoch);
      }
      IdLayout layout = new IdLayout(this);
      Instant needed = now.atOffset(ZoneOffset.UTC).plusYears(minYears).toInstant();
      if (layout.runsOutAt().isBefore(needed)) {
        throw ShardmapException.invalid("timeBits", timeBits + " time bits from epoch " + epoch + " run out at "
            + layout.runsOutAt() + ", sooner than minYears (" + minYears + ") from now (" + needed
            + "): give the time more bits or a later epoch");
      }
      return layout;
    }
  }
}
