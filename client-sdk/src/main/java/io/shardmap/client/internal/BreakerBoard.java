package io.shardmap.client.internal;

import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;

/**
 * The live circuit breakers of a client's single-key pools (every {@code ShardmapData} opened on it) and the
 * count of calls they refused, for the metrics binder: breakers come and go with their pools, so the binder
 * is told ({@link #onChange}) to re-read {@link #breakers()}. Not API.
 */
public final class BreakerBoard {
  /** One endpoint's breaker as the metrics name it. */
  public record Entry(String shard, String endpoint, CircuitBreaker breaker) {}

  /** A breaker's state as a gauge value: 0 closed, 1 open, 2 half-open (forced or disabled states: -1). */
  public static double stateCode(CircuitBreaker breaker) {
    return switch (breaker.getState()) {
      case CLOSED -> 0;
      case OPEN -> 1;
      case HALF_OPEN -> 2;
      default -> -1;
    };
  }

  private final LongAdder refusals = new LongAdder();
  private final List<Entry> entries = new ArrayList<>();
  private Runnable listener = () -> {};

  synchronized void add(EndpointBreaker b) {
    entries.add(new Entry(b.shard(), b.endpoint(), b.breaker()));
    listener.run();
  }

  synchronized void remove(EndpointBreaker b) {
    if (entries.removeIf(e -> e.breaker() == b.breaker())) {
      listener.run();
    }
  }

  /** The breakers now in use; at most one per (shard, endpoint), the newest. */
  public synchronized List<Entry> breakers() {
    List<Entry> out = new ArrayList<>();
    for (int i = entries.size() - 1; i >= 0; i--) {
      Entry e = entries.get(i);
      if (out.stream().noneMatch(o -> o.shard().equals(e.shard()) && o.endpoint().equals(e.endpoint()))) {
        out.add(e);
      }
    }
    return out;
  }

  /** Runs {@code r} now and after every change of {@link #breakers()}, under this board's lock; null: none. */
  public synchronized void onChange(Runnable r) {
    listener = r == null ? () -> {} : r;
    listener.run();
  }

  void refused() {
    refusals.increment();
  }

  /** Calls refused by an open breaker so far. */
  public long refusals() {
    return refusals.sum();
  }
}
