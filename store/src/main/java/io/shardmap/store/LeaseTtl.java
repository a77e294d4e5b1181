package io.shardmap.store;

import java.time.Duration;
import java.util.Objects;

/** The one rule for lease TTLs, shared by every MetaStore so the fake and etcd agree. */
final class LeaseTtl {
  private LeaseTtl() {}

  /**
   * etcd counts TTLs in whole seconds; rounding up means a lease never lives shorter than asked.
   *
   * @throws IllegalArgumentException if {@code ttl} is not positive
   */
  static long wholeSeconds(Duration ttl) {
    Objects.requireNonNull(ttl, "ttl");
    if (ttl.isNegative() || ttl.isZero()) {
      throw new IllegalArgumentException("ttl must be positive: " + ttl);
    }
    return Math.max(1, (ttl.toNanos() + 999_999_999L) / 1_000_000_000L);
  }
}
