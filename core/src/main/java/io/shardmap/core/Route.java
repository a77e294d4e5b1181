package io.shardmap.core;

import java.util.Objects;
import java.util.function.Function;

/**
 * Where a key lives: the owning shard and the epoch of the map entry that routed it (range, bucket,
 * ring segment, directory entry or region). Immutable and shared: lookups return existing instances,
 * never allocate one. Equal, as a value, to any route with the same four components.
 *
 * <p>A class rather than a record only for {@link #derived}: an API layered on core (the client SDK) hands
 * out its own route type without allocating one per lookup.
 */
public final class Route {
  private final String shard;
  private final long epoch;
  private final KeyRange range;
  private final long modRevision;
  /** See {@link #derived}; written at most a few times (benign race), then only read. */
  private volatile Object derived;

  /**
   * @param range the range, for STRATEGY_RANGE routes; {@code null} for the other strategies
   * @param modRevision the etcd revision that last wrote the entry (0 where unknown, e.g. in an SDK)
   */
  public Route(String shard, long epoch, KeyRange range, long modRevision) {
    if (shard == null || shard.isEmpty()) {
      throw new ShardmapException(ErrorCode.INTERNAL, "a map entry without an owning shard");
    }
    // A map has few shards and many entries: one String per shard name, not one per entry.
    this.shard = shard.intern();
    this.epoch = epoch;
    this.range = range;
    this.modRevision = modRevision;
  }

  public String shard() {
    return shard;
  }

  public long epoch() {
    return epoch;
  }

  /** The range, for STRATEGY_RANGE routes; {@code null} for the other strategies. */
  public KeyRange range() {
    return range;
  }

  /** The etcd revision that last wrote the entry (0 where unknown, e.g. in an SDK). */
  public long modRevision() {
    return modRevision;
  }

  /**
   * A value of {@code type} made from this route by {@code make}, computed on the first call and returned
   * as is afterwards, so that a layer's own route type costs one allocation per map entry rather than one
   * per lookup. {@code make} must be a pure function of the route (and of what the caller knows to be fixed
   * for it, such as its keyspace): two threads racing on the first call may both run it, and either result
   * is kept. One type per route: asking with another type computes without keeping the result.
   */
  public <T> T derived(Class<T> type, Function<? super Route, ? extends T> make) {
    T kept = derived(type);
    return kept != null ? kept : derive(type, make);
  }

  /**
   * The value {@link #derived(Class, Function)} kept, or null when none of {@code type} is kept yet: a lookup
   * path checks this first, so it builds no (capturing) function when the value exists.
   */
  public <T> T derived(Class<T> type) {
    Object d = derived;
    return type.isInstance(d) ? type.cast(d) : null;
  }

  private <T> T derive(Class<T> type, Function<? super Route, ? extends T> make) {
    Object d = derived;
    if (type.isInstance(d)) {
      return type.cast(d);
    }
    T made = make.apply(this);
    if (d == null) {
      derived = made;
    }
    return made;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Route r && epoch == r.epoch && modRevision == r.modRevision && shard.equals(r.shard)
        && Objects.equals(range, r.range);
  }

  @Override
  public int hashCode() {
    return Objects.hash(shard, epoch, range, modRevision);
  }

  @Override
  public String toString() {
    return "Route[shard=" + shard + ", epoch=" + epoch + ", range=" + range + ", modRevision=" + modRevision + "]";
  }
}
