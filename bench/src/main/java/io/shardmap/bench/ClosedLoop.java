package io.shardmap.bench;

import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A closed-loop load generator for one unary method: a fixed number of calls in flight, spread over
 * several channels; each completion records its latency and issues the next call from the completion
 * callback. A phase ends at its time limit or its call limit, whichever comes first, so it is bounded
 * both ways.
 *
 * <p>The same driver, with the same pre-built requests, drives every target of a comparison: only the
 * server differs. It uses raw {@link ClientCall}s (no stub wrappers) and, like the servers, runs its
 * callbacks on the transport threads, so its own per-call overhead is small and identical per target.
 */
public final class ClosedLoop<Q, R> {
  /** A phase stops issuing after this many failed calls: something is broken, not slow. */
  private static final int MAX_ERRORS = 100;
  /** How long past its time limit a phase may take to drain its in-flight calls. */
  private static final Duration DRAIN_GRACE = Duration.ofSeconds(30);
  /**
   * Latencies kept per phase at most (64 MiB). Far above what 2 cores complete in a phase of a few
   * seconds; past it, percentiles cover the first calls only, which the result says.
   */
  static final int MAX_RECORDED = 8_000_000;

  private final List<ManagedChannel> channels;
  private final MethodDescriptor<Q, R> method;
  private final Q[] requests;

  public ClosedLoop(List<ManagedChannel> channels, MethodDescriptor<Q, R> method, Q[] requests) {
    if (channels.isEmpty() || requests.length == 0) {
      throw new IllegalArgumentException("need at least one channel and one request");
    }
    this.channels = List.copyOf(channels);
    this.method = method;
    this.requests = requests.clone();
  }

  /**
   * Runs one phase.
   *
   * @param concurrency calls in flight at any time
   * @param duration time limit of the phase
   * @param maxCalls call limit of the phase
   * @param record whether to keep latencies (false for warm-up)
   */
  public PhaseResult run(int concurrency, Duration duration, long maxCalls, boolean record)
      throws InterruptedException {
    if (concurrency < 1 || maxCalls < 1 || duration.isNegative() || duration.isZero()) {
      throw new IllegalArgumentException("concurrency, maxCalls and duration must be positive");
    }
    int capacity = record ? (int) Math.min(maxCalls, MAX_RECORDED) : 0;
    Phase phase = new Phase(concurrency, duration, maxCalls, capacity);
    long gcBefore = gcMillis();
    long cpuBefore = processCpuNanos();
    phase.startNanos = System.nanoTime();
    for (int slot = 0; slot < concurrency; slot++) {
      phase.next(slot);
    }
    boolean drained = phase.done.await(duration.plus(DRAIN_GRACE).toMillis(), TimeUnit.MILLISECONDS);
    long cpu = processCpuNanos() - cpuBefore;
    long gc = gcMillis() - gcBefore;
    if (!drained) {
      throw new IllegalStateException(method.getFullMethodName() + ": " + phase.inFlight()
          + " calls still in flight " + DRAIN_GRACE.toSeconds() + " s after the phase's time limit");
    }
    long completed = phase.completed.get();
    long elapsed = Math.max(1, phase.lastCompletionNanos.get() - phase.startNanos);
    long[] lat = Arrays.copyOf(phase.latencies, Math.min(phase.recorded.get(), capacity));
    return new PhaseResult(completed, phase.errors.get(), phase.firstError.get(), elapsed, lat, cpu, gc);
  }

  /**
   * Outcome of one phase. {@code latencyNanos} is unsorted, one entry per successful call up to
   * {@link #MAX_RECORDED}.
   */
  public record PhaseResult(long completed, long errors, String firstError, long elapsedNanos,
                            long[] latencyNanos, long cpuNanos, long gcMillis) {
    public double callsPerSecond() {
      return completed * 1e9 / elapsedNanos;
    }
  }

  private final class Phase {
    final long deadlineNanos;
    final long maxCalls;
    final long[] latencies;
    final AtomicLong issued = new AtomicLong();
    final AtomicLong completed = new AtomicLong();
    final AtomicInteger recorded = new AtomicInteger();
    final AtomicLong errors = new AtomicLong();
    final AtomicReference<String> firstError = new AtomicReference<>();
    final AtomicLong lastCompletionNanos = new AtomicLong();
    final AtomicInteger activeSlots;
    final CountDownLatch done = new CountDownLatch(1);
    volatile long startNanos;

    Phase(int concurrency, Duration duration, long maxCalls, int capacity) {
      this.deadlineNanos = System.nanoTime() + duration.toNanos();
      this.maxCalls = maxCalls;
      this.latencies = new long[capacity];
      this.activeSlots = new AtomicInteger(concurrency);
    }

    long inFlight() {
      return activeSlots.get();
    }

    /** Issues the next call of a slot, or retires the slot when a limit is reached. */
    void next(int slot) {
      long n = issued.getAndIncrement();
      if (n >= maxCalls || System.nanoTime() - deadlineNanos >= 0 || errors.get() >= MAX_ERRORS) {
        if (activeSlots.decrementAndGet() == 0) {
          done.countDown();
        }
        return;
      }
      ManagedChannel ch = channels.get(slot % channels.size());
      Q req = requests[(int) (n % requests.length)];
      ClientCall<Q, R> call = ch.newCall(method, CallOptions.DEFAULT);
      long t0 = System.nanoTime();
      call.start(new ClientCall.Listener<R>() {
        @Override
        public void onClose(Status status, Metadata trailers) {
          long t1 = System.nanoTime();
          if (status.isOk()) {
            completed.incrementAndGet();
            int i = recorded.getAndIncrement();
            if (i < latencies.length) {
              latencies[i] = t1 - t0;
            }
            lastCompletionNanos.accumulateAndGet(t1, Math::max);
          } else {
            errors.incrementAndGet();
            firstError.compareAndSet(null, status.toString());
          }
          next(slot);
        }
      }, new Metadata());
      // Room for the one response plus the trailers-only path, as the stub's unary helper requests.
      call.request(2);
      call.sendMessage(req);
      call.halfClose();
    }
  }

  static long gcMillis() {
    long sum = 0;
    for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
      sum += Math.max(0, gc.getCollectionTime());
    }
    return sum;
  }

  static long processCpuNanos() {
    if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
      return os.getProcessCpuTime();
    }
    return -1;
  }
}
