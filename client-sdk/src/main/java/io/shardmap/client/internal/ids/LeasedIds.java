package io.shardmap.client.internal.ids;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.shardmap.client.internal.DirectoryRpc;
import io.shardmap.core.Backoff;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.ids.IdClock;
import io.shardmap.core.ids.IdGenerator;
import io.shardmap.core.ids.IdLayout;
import io.shardmap.core.ids.WorkerLease;
import io.shardmap.proto.v1.AcquireWorkerRequest;
import io.shardmap.proto.v1.AcquireWorkerResponse;
import io.shardmap.proto.v1.ReleaseWorkerRequest;
import io.shardmap.proto.v1.RenewWorkerRequest;
import io.shardmap.proto.v1.RenewWorkerResponse;
import io.shardmap.proto.v1.ShardMapIdServiceGrpc;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;

/**
 * One SDK id generator: a worker id leased through any directory server, kept by a renewer thread, and a
 * core {@link IdGenerator} per claim (the rules are docs/worker-leases.md's "For the SDK").
 *
 * <p>Guarantees: ids come only from a claim this process can prove ({@code nanoTime <= validUntil}, the send
 * time of the last successful Acquire/Renew + TTL); a claim lost (NOT_FOUND) or not renewed by its validity
 * bound lapses at once and a new claim is acquired, whose generator starts above the old claim's
 * issue-until mark, which bounds every id the old generator issued; so ids returned on one thread strictly
 * increase across re-acquisitions, and {@link #next()} refuses with UNAVAILABLE while no claim is held.
 * Threading: {@link #next()} from any thread; Acquire/Renew run on this generator's one daemon thread.
 */
public final class LeasedIds implements AutoCloseable {
  private static final Logger log = Logger.getLogger(LeasedIds.class.getName());
  /** The server's rule for generator names (WorkerLeases), checked here so bad input costs no RPC. */
  /** The id service's cap on worker bits. */
  public static final int MAX_WORKER_BITS = WorkerLease.MAX_LEASED_WORKER_BITS;

  /** A claim and its generator, replaced together. */
  private record Held(RemoteWorkerLease lease, IdGenerator generator) { }

  private final DirectoryRpc rpc;
  private final String generator;
  private final String ownerId;
  private final IdLayout layout;
  private final long ttlMillis;
  private final long acquireTimeoutNanos;
  private final IdClock clock;
  private final Backoff backoff;
  private final ScheduledExecutorService renewer;
  private volatile Held held;
  /** The issue-until mark of the last claim given up: the next claim's ids start above it. */
  private long floorMillis = Long.MIN_VALUE;
  private Backoff.Attempts failures;
  private volatile boolean closed;

  /**
   * Validates, acquires a worker id (so a refused layout or an exhausted id space fails here) and starts
   * the renewer.
   *
   * @throws ShardmapException INVALID_ARGUMENT naming the field; UNAVAILABLE when every worker id of the
   *     generator is held (the message says so) or no directory server answered within the RPC timeout
   */
  public LeasedIds(DirectoryRpc rpc, String generator, String ownerId, IdLayout layout, Duration ttl,
                   Duration rpcTimeout, Backoff backoff, IdClock clock) {
    io.shardmap.core.Names.idGenerator("generator", generator);
    if (layout == null) {
      throw ShardmapException.invalid("layout", "must not be null");
    }
    if (layout.workerBits() < 1 || layout.workerBits() > MAX_WORKER_BITS) {
      throw ShardmapException.invalid("layout.workerBits", "must be within 1.." + MAX_WORKER_BITS
          + " (the id service leases worker ids in [0, 2^" + MAX_WORKER_BITS + ") at most), got " + layout.workerBits());
    }
    if (ttl == null || ttl.toMillis() < 1000 || ttl.toMillis() > 300_000) {
      throw ShardmapException.invalid("leaseTtl", "must be within 1 s..300 s, got " + ttl);
    }
    this.rpc = rpc;
    this.generator = generator;
    this.ownerId = ownerId;
    this.layout = layout;
    this.ttlMillis = ttl.toMillis();
    this.acquireTimeoutNanos = rpcTimeout.toNanos();
    this.clock = clock;
    this.backoff = backoff;
    this.renewer = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "shardmap-ids-" + generator);
      t.setDaemon(true);
      return t;
    });
    try {
      held = acquire();
    } catch (RuntimeException e) {
      renewer.shutdownNow();
      throw e;
    }
    schedule(renewEveryNanos());
  }

  public String generator() {
    return generator;
  }

  public IdLayout layout() {
    return layout;
  }

  /** The worker id currently held, -1 while none is. */
  public int workerId() {
    Held h = held;
    return h == null || h.lease.lapsed() ? -1 : h.lease.workerId();
  }

  /**
   * @throws ShardmapException UNAVAILABLE while no claim can be proven (closed, lost, not renewed in time:
   *     a new one is being acquired); FAILED_PRECONDITION from the core generator (clock behind too long)
   */
  public long next() {
    for (int attempt = 0; ; attempt++) {
      Held h = held;
      if (h == null) {
        throw new ShardmapException(ErrorCode.UNAVAILABLE, closed
            ? "id generator '" + generator + "' is closed"
            : "id generator '" + generator + "' holds no worker id right now (acquiring one from the directory "
                + "servers); no id is issued until it does");
      }
      try {
        return h.generator.next();
      } catch (ShardmapException e) {
        long wall = clock.wallMillis();
        if (e.code() == ErrorCode.FAILED_PRECONDITION && wall <= h.lease.startAfterMillis()) {
          // Not a broken clock: the worker id's previous holder (or this generator's previous claim) may have
          // issued ids up to its issue-until mark, up to a TTL ahead; this claim issues once the clock passes it.
          throw new ShardmapException(ErrorCode.UNAVAILABLE, "id generator '" + generator + "', worker id "
              + h.lease.workerId() + ": its previous holder may have issued ids up to " + h.lease.startAfterMillis()
              + " ms; ids resume in " + (h.lease.startAfterMillis() - wall + 1) + " ms", e);
        }
        // A claim replaced between reading `held` and issuing: try the new one once.
        if (e.code() != ErrorCode.UNAVAILABLE || attempt > 0 || held == h) {
          throw e;
        }
      }
    }
  }

  private long renewEveryNanos() {
    return TimeUnit.MILLISECONDS.toNanos(ttlMillis) / 3;
  }

  /** How far ahead of the wall clock a renewal records the issue-until mark: the TTL plus slack for clock rate. */
  private long issueUntil(long wall) {
    return wall + ttlMillis + Math.max(100, ttlMillis / 10);
  }

  private void schedule(long delayNanos) {
    if (!closed) {
      try {
        renewer.schedule(this::tick, delayNanos, TimeUnit.NANOSECONDS);
      } catch (java.util.concurrent.RejectedExecutionException e) {
        // close() shut the renewer down: nothing more to keep.
      }
    }
  }

  /** The renewer's step: renew the claim held, or acquire one when none is; reschedules itself. */
  private void tick() {
    if (closed) {
      return;
    }
    try {
      Held h = held;
      if (h == null) {
        Held got = acquire();
        if (closed) {
          // close() ran while this acquire was under way and may have missed it: free it here.
          release(got);
          return;
        }
        held = got;
        failures = null;
        log.info("shardmap ids: generator '" + generator + "' acquired worker id " + held.lease.workerId());
        schedule(renewEveryNanos());
        return;
      }
      long now = clock.nanoTime();
      if (now - h.lease.validUntilNanos() > 0) {
        giveUp(h, "its lease was not renewed within its validity bound");
        schedule(0);
        return;
      }
      renew(h);
      failures = null;
      schedule(renewEveryNanos());
    } catch (ShardmapException e) {
      Held h = held;
      if (e.code() == ErrorCode.NOT_FOUND && h != null) {
        giveUp(h, "the id service no longer has its claim (" + e.getMessage() + ")");
        schedule(0);
        return;
      }
      if (failures == null) {
        failures = backoff.start();
      }
      long pause = Math.min(failures.nextPauseNanos(), renewEveryNanos() / 2);
      log.warning("shardmap ids: generator '" + generator + "': " + e.getMessage() + "; retrying in "
          + TimeUnit.NANOSECONDS.toMillis(pause) + " ms");
      schedule(pause);
    } catch (RuntimeException e) {
      log.severe("shardmap ids: generator '" + generator + "': renewer failed: " + e);
      schedule(renewEveryNanos());
    }
  }

  /** Lapses the claim at once (no more ids from it) and remembers its issue-until as the next claim's floor. */
  private void giveUp(Held h, String why) {
    h.lease.lapse(clock.nanoTime());
    floorMillis = Math.max(floorMillis, h.lease.issueUntilMillis());
    held = null;
    log.warning("shardmap ids: generator '" + generator + "' gave up worker id " + h.lease.workerId() + ": " + why
        + "; acquiring a new one");
  }

  private Held acquire() {
    AcquireWorkerRequest.Builder req = AcquireWorkerRequest.newBuilder().setGenerator(generator).setOwnerId(ownerId)
        .setWorkerBits(layout.workerBits()).setTtlMs(ttlMillis);
    long[] sent = new long[1];
    AcquireWorkerResponse r = rpc.callAny("cannot acquire a worker id for id generator '" + generator + "'",
        acquireTimeoutNanos, (channel, left, target) -> {
          sent[0] = clock.nanoTime();
          try {
            return ShardMapIdServiceGrpc.newBlockingStub(channel).withDeadlineAfter(left, TimeUnit.NANOSECONDS)
                .acquireWorker(req.setIssueUntilMs(issueUntil(clock.wallMillis())).build());
          } catch (StatusRuntimeException e) {
            if (e.getStatus().getCode() == Status.Code.RESOURCE_EXHAUSTED) {
              // Not a server's failure: every server would say the same. UNAVAILABLE (core has no
              // RESOURCE_EXHAUSTED): ids free up as other holders release or their leases expire.
              throw new ShardmapException(ErrorCode.UNAVAILABLE, "id generator '" + generator + "': every worker "
                  + "id is held (" + target + " said: " + e.getStatus().getDescription() + ")");
            }
            throw e;
          }
        });
    long startAfter = Math.max(r.getStartAfterMs(), floorMillis);
    RemoteWorkerLease lease = new RemoteWorkerLease(r.getWorkerId(), r.getLeaseId(), r.getClaimRevision(),
        startAfter, sent[0] + TimeUnit.MILLISECONDS.toNanos(r.getTtlMs()), r.getIssueUntilMs());
    return new Held(lease, IdGenerator.create(layout, lease, clock, IdGenerator.DEFAULT_MAX_WAIT));
  }

  private void renew(Held h) {
    RemoteWorkerLease lease = h.lease;
    long[] sent = new long[1];
    RenewWorkerRequest.Builder req = RenewWorkerRequest.newBuilder().setGenerator(generator).setOwnerId(ownerId)
        .setWorkerId(lease.workerId()).setLeaseId(lease.leaseId()).setClaimRevision(lease.claimRevision());
    // The renewal's budget ends at the claim's validity: past it the claim is given up anyway.
    long budget = Math.max(1, lease.validUntilNanos() - clock.nanoTime());
    RenewWorkerResponse r = rpc.callAny("cannot renew worker id " + lease.workerId() + " of id generator '"
        + generator + "'", budget, (channel, left, target) -> {
          sent[0] = clock.nanoTime();
          return ShardMapIdServiceGrpc.newBlockingStub(channel).withDeadlineAfter(left, TimeUnit.NANOSECONDS)
              .renewWorker(req.setIssueUntilMs(issueUntil(clock.wallMillis())).build());
        });
    lease.renewed(sent[0], r.getTtlMs(), r.getIssueUntilMs());
  }

  /**
   * Stops issuing at once, stops the renewer, then frees the worker id (ReleaseWorker) so another process
   * may take it immediately, and issue with it at once: the release carries the time of the last id issued. A release that no server answers is logged, not thrown: the claim then frees
   * itself when its TTL passes.
   */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    Held h = held;
    held = null;
    if (h != null) {
      h.generator.retire();
      h.lease.lapse(clock.nanoTime());
    }
    renewer.shutdownNow();
    try {
      renewer.awaitTermination(acquireTimeoutNanos, TimeUnit.NANOSECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    // The renewer may have installed a claim between the read above and its shutdown.
    Held late = held;
    held = null;
    for (Held x : new Held[] {h, late}) {
      if (x == null) {
        continue;
      }
      release(x);
    }
  }

  /**
   * Stops the claim's generator for good ({@link IdGenerator#retire()}: no id of it can appear after this,
   * even from a call under way on another thread), then frees the worker id with a clean release carrying
   * the time of the last id it issued: the service lowers the worker's high-water mark to that (never below
   * this claim's start_after_ms), so the next process that takes the worker id issues at once instead of
   * waiting out the issue-until mark the renewals recorded up to a TTL ahead (docs/worker-leases.md).
   */
  private void release(Held held) {
    RemoteWorkerLease lease = held.lease;
    long issued = held.generator.retire().orElse(0);
    lease.lapse(clock.nanoTime());
    ReleaseWorkerRequest req = ReleaseWorkerRequest.newBuilder().setGenerator(generator).setOwnerId(ownerId)
        .setWorkerId(lease.workerId()).setLeaseId(lease.leaseId()).setClaimRevision(lease.claimRevision())
        .setIssuedUntilMs(issued).build();
    try {
      rpc.callAny("cannot release worker id " + lease.workerId() + " of id generator '" + generator + "'",
          acquireTimeoutNanos, (channel, left, target) -> ShardMapIdServiceGrpc.newBlockingStub(channel)
              .withDeadlineAfter(left, TimeUnit.NANOSECONDS).releaseWorker(req));
    } catch (ShardmapException e) {
      log.warning("shardmap ids: " + e.getMessage() + "; it frees itself within its TTL of " + ttlMillis + " ms");
    }
  }

  @Override
  public String toString() {
    Held h = held;
    return "LeasedIds{" + generator + ", " + (h == null ? "no worker" : h.lease) + ", " + layout + "}";
  }
}
