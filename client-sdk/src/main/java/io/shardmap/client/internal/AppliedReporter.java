package io.shardmap.client.internal;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.shardmap.client.internal.load.LoadMeter;
import io.shardmap.proto.v1.KeyspaceLoad;
import io.shardmap.proto.v1.ReportAppliedRequest;
import io.shardmap.proto.v1.ReportAppliedResponse;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;
import java.util.logging.Logger;

/**
 * Tells the directory server the client's watch stream follows which revision the client's map is current
 * to ({@code ReportApplied}), so that the migrator can wait until every live client has applied a cutover.
 *
 * <p>One daemon thread of its own: a report is sent when the applied revision (or the followed server)
 * changed and the previous report is at least {@value #DEBOUNCE_MS} ms old, and in any case every report
 * interval, as a heartbeat. Nothing here touches the lookup path or the follower thread beyond an unpark;
 * a failed report is counted and logged once per run of failures, never thrown. A server that answers
 * UNIMPLEMENTED (older than the RPC) is not asked again.
 *
 * <p>With load accounting on, each report carries the load counted since the last accepted one
 * ({@link LoadMeter#takeReport}): accepted, it is never sent again; failed, it is merged into the next; refused
 * as INVALID_ARGUMENT (a server that validates the load and finds it wrong), it is dropped, logged once, and
 * the report is sent again at once without it, so that the applied revision is still recorded.
 */
public final class AppliedReporter implements AutoCloseable {
  private static final Logger log = Logger.getLogger(AppliedReporter.class.getName());

  /** Reports after new revisions are at least this far apart. */
  public static final long DEBOUNCE_MS = 100;

  private final String clientId;
  private final long maxStalenessMs;
  private final List<String> targets;
  private final List<ManagedChannel> channels;
  private final IntSupplier target;
  private final LongSupplier applied;
  private final Counters stats;
  /** Null when load accounting is off. */
  private final LoadMeter load;
  private final LongSupplier nanoTime;
  private final long intervalNanos;
  private final long debounceNanos = TimeUnit.MILLISECONDS.toNanos(DEBOUNCE_MS);
  private final long deadlineNanos;
  private final boolean[] unimplemented;
  private final Thread thread;
  private volatile boolean closed;
  /** The revision of the last report a server accepted (0 before the first). */
  private volatile long lastAccepted;
  /** Reports due so far, sent or not (a server known not to support the RPC is skipped). */
  private volatile long due;
  private String failing;
  private boolean warnedTimeout;
  private boolean warnedLoadRefused;

  public AppliedReporter(String clientId, long maxStalenessMs, long intervalNanos, long rpcTimeoutNanos,
                         List<String> targets, List<ManagedChannel> channels, IntSupplier target,
                         LongSupplier applied, Counters stats, LongSupplier nanoTime) {
    this(clientId, maxStalenessMs, intervalNanos, rpcTimeoutNanos, targets, channels, target, applied, stats,
        nanoTime, null);
  }

  /** As above, sending the load of {@code load} (null: none) with each report. */
  public AppliedReporter(String clientId, long maxStalenessMs, long intervalNanos, long rpcTimeoutNanos,
                         List<String> targets, List<ManagedChannel> channels, IntSupplier target,
                         LongSupplier applied, Counters stats, LongSupplier nanoTime, LoadMeter load) {
    this.load = load;
    this.clientId = clientId;
    this.maxStalenessMs = maxStalenessMs;
    this.intervalNanos = intervalNanos;
    // A report stuck on a hung server must not delay the next heartbeat (to another server, perhaps).
    this.deadlineNanos = Math.min(rpcTimeoutNanos, intervalNanos);
    this.targets = targets;
    this.channels = channels;
    this.target = target;
    this.applied = applied;
    this.stats = stats;
    this.nanoTime = nanoTime;
    this.unimplemented = new boolean[channels.size()];
    this.thread = new Thread(this::run, "shardmap-client-reporter");
    this.thread.setDaemon(true);
  }

  public void start() {
    thread.start();
  }

  /** The applied revision or the followed server changed: report soon (never blocks). */
  public void advanced() {
    LockSupport.unpark(thread);
  }

  /** Reports that came due so far, including those skipped for a server without the RPC (for tests). */
  public long due() {
    return due;
  }

  /** The revision of the last report a directory server accepted; 0 before the first. */
  public long lastAccepted() {
    return lastAccepted;
  }

  private void run() {
    long lastSent = nanoTime.getAsLong() - intervalNanos;
    long lastRevision = -1;
    int lastTarget = -1;
    while (!closed) {
      long revision = applied.getAsLong();
      int t = target.getAsInt();
      long since = nanoTime.getAsLong() - lastSent;
      boolean news = revision != lastRevision || t != lastTarget;
      if (revision > 0 && (since >= intervalNanos || (news && since >= debounceNanos))) {
        send(t, revision);
        due++;
        lastSent = nanoTime.getAsLong();
        lastRevision = revision;
        lastTarget = t;
        continue;
      }
      long wait = revision <= 0 ? intervalNanos : news ? debounceNanos - since : intervalNanos - since;
      LockSupport.parkNanos(this, Math.max(wait, TimeUnit.MILLISECONDS.toNanos(1)));
    }
  }

  private void send(int t, long revision) {
    if (unimplemented[t]) {
      if (load != null) {
        load.takeReport(); // no server to take it: keep the windows fresh, count the calls as dropped
        load.dropPending();
      }
      return;
    }
    send(t, revision, load == null ? List.of() : load.takeReport());
  }

  private void send(int t, long revision, List<KeyspaceLoad> loads) {
    String server = targets.get(t);
    try {
      ReportAppliedResponse r = ShardMapServiceGrpc.newBlockingStub(channels.get(t))
          .withDeadlineAfter(deadlineNanos, TimeUnit.NANOSECONDS)
          .reportApplied(ReportAppliedRequest.newBuilder().setClientId(clientId).setAppliedRevision(revision)
              .setMaxStalenessMs(maxStalenessMs).addAllLoad(loads).build());
      stats.report();
      if (!loads.isEmpty()) {
        load.accepted();
      }
      lastAccepted = revision;
      if (failing != null) {
        log.info("shardmap client '" + clientId + "': reporting its applied revision to directory " + server
            + " again (revision " + revision + ") after: " + failing);
        failing = null;
      }
      long timeoutMs = r.getClientReportTimeoutMs();
      if (!warnedTimeout && timeoutMs > 0 && 2 * TimeUnit.NANOSECONDS.toMillis(intervalNanos) > timeoutMs) {
        warnedTimeout = true;
        log.warning("shardmap client '" + clientId + "': reportInterval "
            + TimeUnit.NANOSECONDS.toMillis(intervalNanos) + " ms is more than half of directory " + server
            + "'s client report timeout (" + timeoutMs + " ms): a late report gets this client forgotten, and "
            + "the migrator then no longer waits for it");
      }
    } catch (StatusRuntimeException e) {
      if (closed) {
        return;
      }
      Status s = e.getStatus();
      if (s.getCode() == Status.Code.INVALID_ARGUMENT && !loads.isEmpty()) {
        long dropped = load.dropPending();
        if (!warnedLoadRefused) {
          warnedLoadRefused = true;
          log.warning("shardmap client '" + clientId + "': directory " + server + " refused the load report ("
              + s.getDescription() + "); dropped the load of " + dropped + " calls and reporting without it; "
              + "logged once (shardmap.client.load.dropped counts every drop)");
        }
        send(t, revision, List.of());
        return;
      }
      if (s.getCode() == Status.Code.UNIMPLEMENTED) {
        unimplemented[t] = true;
        log.info("shardmap client '" + clientId + "': directory " + server + " does not support ReportApplied "
            + "(an older server); not reporting the applied revision to it");
        return;
      }
      stats.reportFailure();
      if (failing == null) {
        failing = server + " (" + s.getCode() + (s.getDescription() == null ? "" : ": " + s.getDescription()) + ")";
        log.info("shardmap client '" + clientId + "': reporting applied revision " + revision + " to directory "
            + failing + " failed; retrying with the next revision or heartbeat, logged once until it succeeds");
      }
    }
  }

  @Override
  public void close() {
    closed = true;
    LockSupport.unpark(thread);
    if (thread.isAlive()) {
      thread.interrupt();
      try {
        thread.join(2000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
