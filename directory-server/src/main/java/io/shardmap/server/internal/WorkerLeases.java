package io.shardmap.server.internal;

import com.google.protobuf.InvalidProtocolBufferException;
import io.grpc.Status;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.MeteredMetaStore;
import io.shardmap.core.Backoff;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Names;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.ids.WorkerLease;
import io.shardmap.proto.v1.AcquireWorkerRequest;
import io.shardmap.proto.v1.AcquireWorkerResponse;
import io.shardmap.proto.v1.ReleaseWorkerRequest;
import io.shardmap.proto.v1.ReleaseWorkerResponse;
import io.shardmap.proto.v1.RenewWorkerRequest;
import io.shardmap.proto.v1.RenewWorkerResponse;
import io.shardmap.proto.v1.WorkerClaim;
import io.shardmap.proto.v1.WorkerHighWater;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongSupplier;
import java.util.logging.Logger;

/**
 * Worker ids of global id generators, leased from etcd on behalf of SDK clients (docs/worker-leases.md).
 *
 * <p>The server keeps no state: the claim {@code {root}/ids/{gen}/workers/{w}} lives under an etcd lease
 * this server grants at AcquireWorker, and the token (lease id, claim create revision) goes back to the
 * client, so any replica can keep the lease alive ({@code keepAliveOnce}) or release it. Guarantees:
 * <ul>
 *   <li>One live owner per worker id: the claim is created only by a transaction that compares it absent,
 *       and it vanishes only with its lease (expiry or revoke) or by ReleaseWorker.
 *   <li>The high-water mark {@code {root}/ids/{gen}/high-water/{w}} never decreases except by a clean
 *       release: every other write is max(read value, requested) guarded by the mod revision it was read
 *       at. While a claim exists only a transaction that compares the claim's create revision writes it, so
 *       the mark read by an AcquireWorker (with its compare) is the last one any earlier owner recorded.
 *   <li>A clean release (issued_until_ms set) sets the mark to max(issued_until_ms, the claim's recorded
 *       start_after_ms, issue_until_ms) in the transaction that deletes the claim: the holder has stopped
 *       issuing and names the last time it issued, earlier owners issued at most start_after_ms, and once
 *       the claim is deleted no renew of it can raise the mark again (they compare its create revision).
 *   <li>A renew refreshes the lease first and then checks the claim: a success means the lease was alive
 *       when etcd processed the keep-alive (after the client sent the request), so the client's bound "send
 *       time + ttl" is never later than etcd's expiry.
 * </ul>
 */
public final class WorkerLeases {
  private static final Logger log = Logger.getLogger(WorkerLeases.class.getName());

  /** One cap for the service and the SDK: {@link WorkerLease#MAX_LEASED_WORKER_BITS}. */
  public static final int MAX_WORKER_BITS = WorkerLease.MAX_LEASED_WORKER_BITS;
  public static final long MIN_TTL_MS = 1_000;
  public static final long MAX_TTL_MS = 300_000;
  public static final long DEFAULT_TTL_MS = 10_000;
  /** How far ahead of this server's wall clock a high-water mark may be recorded. */
  public static final long MAX_AHEAD_MS = 600_000;
  /** Compare-and-set rounds before a call gives up with ABORTED (only concurrent acquirers cause them). */
  static final int MAX_ATTEMPTS = 40;
  private static final Backoff BACKOFF = Backoff.exponential(Duration.ofMillis(2), Duration.ofMillis(100));

  private final MeteredMetaStore store;
  private final CatalogPaths paths;
  private final Duration timeout;
  private final LongSupplier wallClockMillis;

  public WorkerLeases(MetaStore store, CatalogPaths paths, Duration timeout, LongSupplier nanoTime,
                      LongSupplier wallClockMillis, ServerMetrics metrics) {
    this.store = new MeteredMetaStore(store, metrics::etcdRequest, nanoTime);
    this.paths = paths;
    this.timeout = timeout;
    this.wallClockMillis = wallClockMillis;
  }

  public AcquireWorkerResponse acquire(AcquireWorkerRequest r) {
    String gen = generator(r.getGenerator());
    String owner = Names.processId("owner_id", r.getOwnerId());
    int bits = r.getWorkerBits();
    if (bits < 1 || bits > MAX_WORKER_BITS) {
      throw ShardmapException.invalid("worker_bits", "the worker id space is [0, 2^worker_bits), worker_bits 1-"
          + MAX_WORKER_BITS + "; got " + bits);
    }
    long ttlMs = ttl(r.getTtlMs());
    long wanted = issueUntil(r.getIssueUntilMs());
    long space = 1L << bits;
    long leaseId = await(store.as("worker_lease_grant").grantLease(Duration.ofMillis(ttlMs)));
    boolean claimed = false;
    try {
      Backoff.Attempts pauses = BACKOFF.start();
      for (int attempt = 1; ; attempt++) {
        List<KeyValue> kvs = await(store.as("worker_scan").getPrefix(paths.idGeneratorPrefix(gen))).kvs();
        Set<Integer> held = new HashSet<>();
        Map<Integer, KeyValue> marks = new HashMap<>();
        String claims = paths.workerClaimsPrefix(gen);
        String highWaters = paths.workerHighWaterPrefix(gen);
        for (KeyValue kv : kvs) {
          if (kv.key().startsWith(claims)) {
            held.add(workerOf(kv.key(), claims));
          } else if (kv.key().startsWith(highWaters)) {
            marks.put(workerOf(kv.key(), highWaters), kv);
          }
        }
        // The lowest free id: at most held.size() ids below it are taken, so the loop is bounded by that.
        int worker = -1;
        for (int w = 0; w < space; w++) {
          if (!held.contains(w)) {
            worker = w;
            break;
          }
        }
        if (worker < 0) {
          throw Status.RESOURCE_EXHAUSTED.withDescription("generator '" + gen + "': all " + space
              + " worker ids of its space [0, 2^" + bits + ") are held by live owners; ids free up as owners "
              + "release them or stop renewing (after their ttl)").asRuntimeException();
        }
        KeyValue mark = marks.get(worker);
        long startAfter = mark == null ? 0 : highWater(mark);
        long recorded = Math.max(startAfter, wanted);
        String claimKey = paths.workerClaim(gen, worker);
        String markKey = paths.workerHighWater(gen, worker);
        WorkerClaim claim = WorkerClaim.newBuilder().setOwnerId(owner).setLeaseId(leaseId)
            .setAcquiredUnixMs(wallClockMillis.getAsLong()).setTtlMs(ttlMs).setStartAfterMs(startAfter).build();
        Txn.Builder t = Txn.builder().compare(Compare.absent(claimKey))
            .compare(Compare.modRevision(markKey, mark == null ? 0 : mark.modRevision()))
            .put(claimKey, claim.toByteArray(), leaseId);
        if (recorded > startAfter) {
          t.put(markKey, mark(recorded, owner));
        }
        TxnResult res = await(store.as("worker_claim").commit(t.build()));
        if (res.succeeded()) {
          claimed = true;
          return AcquireWorkerResponse.newBuilder().setWorkerId(worker).setLeaseId(leaseId)
              .setClaimRevision(res.revision()).setTtlMs(ttlMs).setStartAfterMs(startAfter)
              .setIssueUntilMs(recorded).build();
        }
        if (attempt >= MAX_ATTEMPTS) {
          throw new ShardmapException(ErrorCode.ABORTED, "generator '" + gen + "': " + attempt
              + " concurrent acquirers took the free worker id first every time; retry");
        }
        LockSupport.parkNanos(pauses.nextPauseNanos());
      }
    } finally {
      if (!claimed) {
        revokeQuietly(leaseId);
      }
    }
  }

  public RenewWorkerResponse renew(RenewWorkerRequest r) {
    Token tok = token(r.getGenerator(), r.getOwnerId(), r.getWorkerId(), r.getLeaseId(), r.getClaimRevision());
    long wanted = issueUntil(r.getIssueUntilMs());
    WorkerClaim held = checkClaim(tok);
    try {
      await(store.as("worker_keepalive").keepAliveOnce(tok.leaseId));
    } catch (ShardmapException e) {
      throw e;
    } catch (RuntimeException e) {
      if (kind(e) == StoreException.Kind.NOT_FOUND) {
        throw lost(tok, "its etcd lease " + Long.toHexString(tok.leaseId) + " has expired");
      }
      throw e;
    }
    long recorded = raise(tok, wanted, false, -1);
    if (recorded < 0) {
      throw lost(tok, "the claim was released or replaced");
    }
    return RenewWorkerResponse.newBuilder().setTtlMs(held.getTtlMs()).setIssueUntilMs(recorded).build();
  }

  public ReleaseWorkerResponse release(ReleaseWorkerRequest r) {
    Token tok = token(r.getGenerator(), r.getOwnerId(), r.getWorkerId(), r.getLeaseId(), r.getClaimRevision());
    long wanted = issueUntil(r.getIssueUntilMs());
    long issued = r.hasIssuedUntilMs() ? issueUntil("issued_until_ms", r.getIssuedUntilMs()) : -1;
    KeyValue claim = readClaim(tok);
    if (claim == null || mismatch(tok, claim) != null) {
      KeyValue mark = get(paths.workerHighWater(tok.gen, tok.worker));
      return ReleaseWorkerResponse.newBuilder().setReleased(false)
          .setIssueUntilMs(mark == null ? 0 : highWater(mark)).build();
    }
    // The claim read here is the one the transaction below compares (same create revision, and a claim is
    // never rewritten while held), so its start_after_ms is the floor earlier owners left.
    WorkerClaim held = claim(claim);
    long exact = issued >= 0 && held.hasStartAfterMs()
        ? Math.max(Math.max(issued, held.getStartAfterMs()), wanted)
        : -1;
    long recorded = raise(tok, wanted, true, exact);
    if (recorded < 0) {
      KeyValue mark = get(paths.workerHighWater(tok.gen, tok.worker));
      return ReleaseWorkerResponse.newBuilder().setReleased(false)
          .setIssueUntilMs(mark == null ? 0 : highWater(mark)).build();
    }
    // The claim is gone already (deleted above); the lease holds nothing else, so revoking it only tidies.
    revokeQuietly(tok.leaseId);
    return ReleaseWorkerResponse.newBuilder().setReleased(true).setIssueUntilMs(recorded).build();
  }

  /** The validated token of RenewWorker and ReleaseWorker. */
  private record Token(String gen, String owner, int worker, long leaseId, long claimRevision) {}

  private Token token(String generator, String ownerId, int worker, long leaseId, long claimRevision) {
    String gen = generator(generator);
    String owner = Names.processId("owner_id", ownerId);
    if (worker < 0 || worker >= (1 << MAX_WORKER_BITS)) {
      throw ShardmapException.invalid("worker_id", "must be within [0, 2^" + MAX_WORKER_BITS + "); got " + worker);
    }
    if (leaseId == 0) {
      throw ShardmapException.invalid("lease_id", "is required (AcquireWorkerResponse.lease_id)");
    }
    if (claimRevision <= 0) {
      throw ShardmapException.invalid("claim_revision", "must be positive (AcquireWorkerResponse.claim_revision); got "
          + claimRevision);
    }
    return new Token(gen, owner, worker, leaseId, claimRevision);
  }

  private KeyValue readClaim(Token tok) {
    KeyValue kv = get(paths.workerClaim(tok.gen, tok.worker));
    return kv == null || kv.createRevision() != tok.claimRevision ? null : kv;
  }

  /** Refuses (NOT_FOUND) unless the claim of the token exists and names this owner and lease. */
  private WorkerClaim checkClaim(Token tok) {
    KeyValue kv = readClaim(tok);
    if (kv == null) {
      throw lost(tok, "no claim made at revision " + tok.claimRevision + " exists any more (expired, released, "
          + "or the id was claimed again)");
    }
    String why = mismatch(tok, kv);
    if (why != null) {
      throw lost(tok, why);
    }
    return claim(kv);
  }

  private String mismatch(Token tok, KeyValue kv) {
    WorkerClaim c = claim(kv);
    if (kv.lease() != tok.leaseId || c.getLeaseId() != tok.leaseId) {
      return "the claim is held under lease " + Long.toHexString(c.getLeaseId()) + ", not lease_id "
          + Long.toHexString(tok.leaseId);
    }
    if (!c.getOwnerId().equals(tok.owner)) {
      return "the claim belongs to owner '" + c.getOwnerId() + "', not owner_id '" + tok.owner + "'";
    }
    return null;
  }

  /**
   * Raises the high-water mark to max(recorded, wanted) in a transaction that also requires the claim of
   * {@code tok} to exist (and deletes it if {@code release}). Returns the mark after it, or -1 if the claim
   * is gone. A transaction with nothing to write still runs: it is the check that the claim exists.
   *
   * @param exact if not negative (a clean release only), the mark is set to exactly this instead, up or
   *     down: the caller computed it as max(what the holder issued, the claim's start_after, wanted)
   */
  private long raise(Token tok, long wanted, boolean release, long exact) {
    String claimKey = paths.workerClaim(tok.gen, tok.worker);
    String markKey = paths.workerHighWater(tok.gen, tok.worker);
    Backoff.Attempts pauses = BACKOFF.start();
    for (int attempt = 1; ; attempt++) {
      KeyValue mark = get(markKey);
      long old = mark == null ? 0 : highWater(mark);
      long recorded = exact >= 0 ? exact : Math.max(old, wanted);
      Txn.Builder t = Txn.builder()
          .compare(new Compare(claimKey, Compare.Target.CREATE_REVISION, Compare.Op.EQUAL, tok.claimRevision))
          .compare(Compare.modRevision(markKey, mark == null ? 0 : mark.modRevision()));
      if (recorded != old) {
        t.put(markKey, mark(recorded, tok.owner));
      }
      if (release) {
        t.delete(claimKey);
      }
      if (await(store.as(release ? "worker_release" : "worker_renew").commit(t.build())).succeeded()) {
        return recorded;
      }
      if (readClaim(tok) == null) {
        return -1;
      }
      if (attempt >= MAX_ATTEMPTS) {
        throw new ShardmapException(ErrorCode.ABORTED, "generator '" + tok.gen + "' worker " + tok.worker
            + ": the high-water mark changed under " + attempt + " concurrent renewals of the same claim; retry");
      }
      LockSupport.parkNanos(pauses.nextPauseNanos());
    }
  }

  private static ShardmapException lost(Token tok, String why) {
    return ShardmapException.notFound("generator '" + tok.gen + "' worker " + tok.worker + " is no longer held by "
        + "owner '" + tok.owner + "': " + why + "; stop issuing ids with this worker id and acquire a worker again");
  }

  private static String generator(String g) {
    return io.shardmap.core.Names.idGenerator("generator", g);
  }

  private static long ttl(long ms) {
    if (ms == 0) {
      return DEFAULT_TTL_MS;
    }
    if (ms < MIN_TTL_MS || ms > MAX_TTL_MS) {
      throw ShardmapException.invalid("ttl_ms", "must be 0 (default " + DEFAULT_TTL_MS + ") or within ["
          + MIN_TTL_MS + ", " + MAX_TTL_MS + "]; got " + ms);
    }
    return ms;
  }

  private long issueUntil(long ms) {
    return issueUntil("issue_until_ms", ms);
  }

  private long issueUntil(String field, long ms) {
    if (ms < 0) {
      throw ShardmapException.invalid(field, "must be 0 (record nothing) or a time in ms since the Unix "
          + "epoch; got " + ms);
    }
    long limit = wallClockMillis.getAsLong() + MAX_AHEAD_MS;
    if (ms > limit) {
      throw ShardmapException.invalid(field, "must be at most " + MAX_AHEAD_MS + " ms ahead of the "
          + "directory server's clock (" + (limit - MAX_AHEAD_MS) + "); got " + ms + ", " + (ms - limit + MAX_AHEAD_MS)
          + " ms ahead: is the caller's clock fast?");
    }
    return ms;
  }

  private static int workerOf(String key, String prefix) {
    try {
      return Integer.parseInt(key.substring(prefix.length()));
    } catch (NumberFormatException e) {
      throw new ShardmapException(ErrorCode.INTERNAL, "etcd key " + key + " is no worker key ("
          + "expected a decimal worker id after " + prefix + "); was it written by hand?");
    }
  }

  private static long highWater(KeyValue kv) {
    try {
      return WorkerHighWater.parseFrom(kv.value()).getIssueUntilMs();
    } catch (InvalidProtocolBufferException e) {
      throw new ShardmapException(ErrorCode.INTERNAL, "etcd key " + kv.key() + " holds no WorkerHighWater record", e);
    }
  }

  private static WorkerClaim claim(KeyValue kv) {
    try {
      return WorkerClaim.parseFrom(kv.value());
    } catch (InvalidProtocolBufferException e) {
      throw new ShardmapException(ErrorCode.INTERNAL, "etcd key " + kv.key() + " holds no WorkerClaim record", e);
    }
  }

  private static byte[] mark(long ms, String owner) {
    return WorkerHighWater.newBuilder().setIssueUntilMs(ms).setOwnerId(owner).build().toByteArray();
  }

  private KeyValue get(String key) {
    List<KeyValue> kvs = await(store.as("worker_read").get(key)).kvs();
    return kvs.isEmpty() ? null : kvs.get(0);
  }

  private void revokeQuietly(long leaseId) {
    try {
      await(store.as("worker_lease_revoke").revokeLease(leaseId));
    } catch (RuntimeException e) {
      log.warning("revoking worker lease " + Long.toHexString(leaseId) + " failed (" + e.getMessage()
          + "); it holds no claim and expires by itself");
    }
  }

  private static StoreException.Kind kind(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof StoreException s) {
        return s.kind();
      }
    }
    return null;
  }

  /** Waits for an etcd answer; failures surface as unchecked exceptions that {@link Errors} maps. */
  private <T> T await(CompletableFuture<T> f) {
    try {
      return f.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "interrupted while waiting for etcd");
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      throw c instanceof RuntimeException re ? re : new java.util.concurrent.CompletionException(c);
    } catch (TimeoutException e) {
      f.cancel(true);
      throw new java.util.concurrent.CompletionException(e);
    }
  }
}
