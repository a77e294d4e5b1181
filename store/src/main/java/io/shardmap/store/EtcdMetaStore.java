package io.shardmap.store;

import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.common.exception.ClosedClientException;
import io.etcd.jetcd.common.exception.CompactedException;
import io.etcd.jetcd.common.exception.EtcdException;
import io.etcd.jetcd.kv.GetResponse;
import io.etcd.jetcd.op.Cmp;
import io.etcd.jetcd.op.CmpTarget;
import io.etcd.jetcd.op.Op;
import io.etcd.jetcd.options.CompactOption;
import io.etcd.jetcd.options.DeleteOption;
import io.etcd.jetcd.options.GetOption;
import io.etcd.jetcd.options.PutOption;
import io.etcd.jetcd.options.WatchOption;
import io.etcd.jetcd.watch.WatchResponse;
import io.shardmap.core.Backoff;
import io.grpc.Status;
import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link MetaStore} on etcd (v3 API, 3.4 or later) through jetcd.
 *
 * <p>Reads are linearizable. Every call is bounded by the request timeout: unary RPCs carry it as a
 * gRPC deadline and the returned future fails at the latest when it elapses. Errors are translated
 * once, here: deadline, no leader, lost connection, overload → {@link StoreException.Kind#UNAVAILABLE};
 * too many txn operations or too many bytes → {@link StoreException.Kind#TOO_LARGE}; compacted
 * revision → {@link StoreException.Kind#COMPACTED}; unknown lease → {@link StoreException.Kind#NOT_FOUND}
 * (except on revoke, where it is success); anything else → {@link StoreException.Kind#INTERNAL}.
 * Futures complete on this store's own threads, never on jetcd's I/O threads.
 *
 * <p>Each member has its own connection, and the store uses one member at a time ({@link EtcdMembers}):
 * every quarter of the member timeout (default 1 s) each member gets a liveness check, and a member
 * that leaves one unanswered for the member timeout while another member answers, or fails it, is
 * down. Then requests and watches
 * move to a member that answers: reads, lease keep-alives and revokes in flight are sent again there at
 * once; a txn in flight fails at once with UNAVAILABLE (its outcome is unknown: the caller reads back)
 * instead of hanging until its deadline; watches resume there from the last delivered revision. So a
 * hung member (SIGSTOP, frozen VM: sockets open, nothing answers) costs about a second, where gRPC
 * keep-alive alone, never more often than every 10 s in grpc-java, cost 10 to 15 s. A request
 * unanswered a member timeout after its member saw a new raft term is treated the same way: a
 * follower forwards writes to the leader, and what it forwarded to a leader that hung is lost.
 *
 * <p>Watches do not rely on jetcd's own reconnect: jetcd 0.8.7 resumes a broken watch from the
 * header revision of its "created" response, which skips the history a watch was still replaying when
 * the stream broke. Instead each failure ends the jetcd watcher (closing it inside jetcd's error
 * callback cancels jetcd's scheduled resume) and a new one starts after the last delivered revision.
 */
public final class EtcdMetaStore implements MetaStore {

  private static final Logger LOG = LoggerFactory.getLogger(EtcdMetaStore.class);

  /** Any key works for a count-only read whose only purpose is its header revision. */
  private static final ByteSequence REVISION_PROBE_KEY = ByteSequence.from(new byte[] {0});
  /** The smallest key; as a range end it means "to the end of the keyspace". */
  private static final ByteSequence ALL_KEYS = ByteSequence.from(new byte[] {0});

  /**
   * Pauses before resending a contract call that failed transiently to the member still current: 50 ms
   * doubling to 500 ms, jittered down by up to half. No pause when another member has become current.
   */
  static final Backoff SEND_RETRY = Backoff.exponential(Duration.ofMillis(50), Duration.ofMillis(500));
  /** Pauses before reopening a watch after consecutive failures: 100 ms doubling to 3 s, jittered. */
  static final Backoff WATCH_RETRY = Backoff.exponential(Duration.ofMillis(100), Duration.ofSeconds(3));
  /**
   * How long after a watch stream was created a progress answer is taken at face value even without
   * proof that the server finished replaying history to it. etcd replays to lagging watchers every
   * 100 ms; see {@link EtcdWatch} for why this matters on etcd before 3.4.25 / 3.5.8.
   */
  private static final long SYNC_GRACE_NANOS = TimeUnit.MILLISECONDS.toNanos(1_000);
  private static final AtomicInteger STORE_COUNTER = new AtomicInteger();

  private final List<String> endpoints;
  private final Duration requestTimeout;
  private final EtcdMembers members;
  private final ExecutorService callbackExecutor;
  private final ScheduledExecutorService timer;
  private final Set<CompletableFuture<?>> pending = ConcurrentHashMap.newKeySet();
  private final Set<EtcdWatch> watches = ConcurrentHashMap.newKeySet();
  private volatile boolean closed;

  /** Largest etcd response accepted (gRPC's own limit is 2 GiB). */
  static final int MAX_RESPONSE_BYTES = 1 << 30;

  private EtcdMetaStore(Builder b) {
    this.endpoints = List.copyOf(b.endpoints);
    this.requestTimeout = b.requestTimeout;
    int id = STORE_COUNTER.incrementAndGet();
    this.callbackExecutor = Executors.newCachedThreadPool(daemonThreads("etcd-metastore-" + id + "-callback-"));
    this.timer = Executors.newSingleThreadScheduledExecutor(daemonThreads("etcd-metastore-" + id + "-timer-"));
    try {
      this.members = new EtcdMembers(endpoints, endpoint -> Client.builder()
          .endpoints(URI.create(endpoint))
          .connectTimeout(b.connectTimeout)
          // Retries and the move to another member are this store's (call()): jetcd would retry on the
          // one member its client knows, and with wait-for-ready a call to a crashed member would wait
          // for its restart instead of failing at once.
          .retryMaxAttempts(0)
          .waitForReady(false)
          // Hung members are found by EtcdMembers' liveness checks within memberTimeout; pings only
          // close connections that died silently. grpc-java pings no more often than every 10 s whatever
          // is asked, and only while a call is open: etcd answers pings more often than its
          // --grpc-keepalive-min-time (default 5 s), or any ping without an open stream, with GOAWAY
          // "too_many_pings". So etcd needs that flag at 10 s or less, which its default is.
          .keepaliveTime(Duration.ofSeconds(10))
          .keepaliveTimeout(Duration.ofSeconds(2))
          .keepaliveWithoutCalls(false)
          // The initial load reads a whole prefix in one response: 100,000 ranges are ~11 MB, a few million
          // directory entries some hundreds. gRPC's default 4 MiB would make such a server retry forever.
          .maxInboundMessageSize(MAX_RESPONSE_BYTES)
          .interceptor(new UnaryDeadlineInterceptor(requestTimeout.toNanos()))
          .build(), b.memberTimeout.toNanos(), requestTimeout.toNanos(), timer, this::translate);
    } catch (RuntimeException e) {
      timer.shutdownNow();
      callbackExecutor.shutdownNow();
      throw e;
    }
    members.start();
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Validating builder; each setter rejects a bad value at once with an exception naming the option. */
  public static final class Builder {
    private List<String> endpoints;
    private Duration requestTimeout = Duration.ofSeconds(5);
    private Duration connectTimeout = Duration.ofSeconds(3);
    private Duration memberTimeout = Duration.ofSeconds(1);

    private Builder() {}

    /** etcd client URLs, e.g. {@code http://127.0.0.1:2379}; at least one; plain http only (no TLS support yet). */
    public Builder endpoints(List<String> endpoints) {
      if (endpoints == null || endpoints.isEmpty()) {
        throw new IllegalArgumentException("endpoints: at least one etcd client URL is required");
      }
      List<String> checked = new ArrayList<>();
      for (String e : endpoints) {
        checked.add(checkEndpoint(e));
      }
      this.endpoints = List.copyOf(checked);
      return this;
    }

    /** Upper bound of every call, including connection setup and jetcd's retries. Default 5 s. */
    public Builder requestTimeout(Duration requestTimeout) {
      this.requestTimeout = checkDuration("requestTimeout", requestTimeout);
      return this;
    }

    /** TCP connect timeout per member. Default 3 s. */
    public Builder connectTimeout(Duration connectTimeout) {
      this.connectTimeout = checkDuration("connectTimeout", connectTimeout);
      return this;
    }

    /**
     * How long a member may leave a liveness check (a serializable read, sent every quarter of this)
     * unanswered before it counts as down and requests and watches move to another member; also how
     * long a request may stay unanswered after its member saw a new raft leader. Default 1 s; at
     * least 100 ms. Too short on a loaded machine only moves clients more often (calls in flight are
     * re-sent, watches resumed, writes reported as of unknown outcome); too long is how long a hung
     * member stalls everything.
     */
    public Builder memberTimeout(Duration memberTimeout) {
      Duration d = checkDuration("memberTimeout", memberTimeout);
      if (d.compareTo(Duration.ofMillis(100)) < 0) {
        throw new IllegalArgumentException("memberTimeout must be at least 100 ms, got " + d);
      }
      this.memberTimeout = d;
      return this;
    }

    /** Builds the store. No connection is made yet: an unreachable cluster shows up as UNAVAILABLE calls. */
    public EtcdMetaStore build() {
      if (endpoints == null) {
        throw new IllegalArgumentException("endpoints: not set; at least one etcd client URL is required");
      }
      return new EtcdMetaStore(this);
    }

    private static String checkEndpoint(String endpoint) {
      if (endpoint == null || endpoint.isBlank()) {
        throw new IllegalArgumentException("endpoints: an endpoint is null or blank");
      }
      URI uri;
      try {
        uri = new URI(endpoint.trim());
      } catch (URISyntaxException e) {
        throw new IllegalArgumentException("endpoints: '" + endpoint + "' is not a URL: " + e.getMessage(), e);
      }
      if (!"http".equals(uri.getScheme())) {
        throw new IllegalArgumentException("endpoints: '" + endpoint
            + "' must start with http:// (TLS is not configured by this builder)");
      }
      if (uri.getHost() == null || uri.getPort() < 1 || uri.getPort() > 65_535) {
        throw new IllegalArgumentException("endpoints: '" + endpoint + "' must name a host and a port, like http://127.0.0.1:2379");
      }
      if ((uri.getRawPath() != null && !uri.getRawPath().isEmpty() && !uri.getRawPath().equals("/"))
          || uri.getRawQuery() != null || uri.getRawFragment() != null || uri.getRawUserInfo() != null) {
        throw new IllegalArgumentException("endpoints: '" + endpoint + "' must be just http://host:port");
      }
      return "http://" + uri.getHost() + ":" + uri.getPort();
    }

    private static Duration checkDuration(String name, Duration d) {
      if (d == null || d.isNegative() || d.isZero()) {
        throw new IllegalArgumentException(name + " must be positive, got " + d);
      }
      if (d.compareTo(Duration.ofMillis(Integer.MAX_VALUE)) > 0) {
        throw new IllegalArgumentException(name + " must be at most " + Duration.ofMillis(Integer.MAX_VALUE) + ", got " + d);
      }
      return d;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // MetaStore
  // ---------------------------------------------------------------------------------------------

  @Override
  public CompletableFuture<RangeResult> get(String key) {
    Objects.requireNonNull(key, "key");
    return call("get " + describe(key), true, m -> m.kv.get(bytes(key)), EtcdMetaStore::toRangeResult);
  }

  @Override
  public CompletableFuture<RangeResult> getPrefix(String prefix) {
    Objects.requireNonNull(prefix, "prefix");
    GetOption option = prefix.isEmpty()
        ? GetOption.builder().withRange(ALL_KEYS).build()
        : GetOption.builder().isPrefix(true).build();
    ByteSequence key = prefix.isEmpty() ? ALL_KEYS : bytes(prefix);
    return call("get prefix " + describe(prefix), true, m -> m.kv.get(key, option), EtcdMetaStore::toRangeResult);
  }

  @Override
  public CompletableFuture<TxnResult> commit(Txn txn) {
    Objects.requireNonNull(txn, "txn");
    Cmp[] cmps = txn.compares().stream().map(EtcdMetaStore::toCmp).toArray(Cmp[]::new);
    Op[] ops = txn.writes().stream().map(EtcdMetaStore::toOp).toArray(Op[]::new);
    String what = "commit of txn (" + cmps.length + " compares, " + ops.length + " writes)";
    return call(what, false, m -> m.kv.txn().If(cmps).Then(ops).commit(),
        r -> new TxnResult(r.isSucceeded(), r.getHeader().getRevision()));
  }

  @Override
  public CompletableFuture<Long> currentRevision() {
    GetOption countOnly = GetOption.builder().withCountOnly(true).build();
    return call("currentRevision (linearizable read)", true, m -> m.kv.get(REVISION_PROBE_KEY, countOnly),
        r -> r.getHeader().getRevision());
  }

  @Override
  public Watch watch(String prefix, long afterRevision, WatchListener listener) {
    Objects.requireNonNull(prefix, "prefix");
    Objects.requireNonNull(listener, "listener");
    if (afterRevision < 0) {
      throw new IllegalArgumentException("afterRevision must not be negative: " + afterRevision);
    }
    if (closed) {
      throw new StoreException(StoreException.Kind.CLOSED, "etcd store is closed; cannot watch " + describe(prefix), null);
    }
    EtcdWatch watch = new EtcdWatch(prefix, afterRevision, listener);
    watches.add(watch);
    watch.start();
    return watch;
  }

  @Override
  public CompletableFuture<Long> grantLease(Duration ttl) {
    long seconds = LeaseTtl.wholeSeconds(ttl);
    // Not re-sent: a grant whose answer was lost leaves a lease nobody uses, which only expires.
    return call("grant of a " + seconds + " s lease", false, m -> m.leases.grant(seconds), r -> r.getID());
  }

  @Override
  public CompletableFuture<Void> keepAliveOnce(long leaseId) {
    return call("keep-alive of lease " + Long.toHexString(leaseId), true, m -> m.leases.keepAliveOnce(leaseId),
        r -> null);
  }

  @Override
  public CompletableFuture<Void> revokeLease(long leaseId) {
    String what = "revoke of lease " + Long.toHexString(leaseId);
    return call(what, true, m -> m.leases.revoke(leaseId).handle((r, t) -> {
      if (t != null && translate(what, t).kind() != StoreException.Kind.NOT_FOUND) {
        throw new CompletionException(t);
      }
      // Already gone (expired or revoked): the contract makes that a success.
      return null;
    }), r -> null);
  }

  /**
   * Compacts etcd's history at {@code revision} and waits until the compaction is physically applied,
   * so watches started afterwards see it. Fails with {@link StoreException.Kind#COMPACTED} if that
   * revision is already compacted.
   */
  public CompletableFuture<Void> compact(long revision) {
    CompactOption physical = CompactOption.builder().withCompactPhysical(true).build();
    return call("compaction at revision " + revision, false, m -> m.kv.compact(revision, physical), r -> null);
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    for (EtcdWatch w : List.copyOf(watches)) {
      w.close();
    }
    for (CompletableFuture<?> f : List.copyOf(pending)) {
      f.completeExceptionally(new StoreException(StoreException.Kind.CLOSED,
          "etcd store closed while the call was in flight", null));
    }
    try {
      members.close();
    } finally {
      timer.shutdownNow();
      callbackExecutor.shutdown();
    }
  }

  /**
   * The endpoint of the member new requests and watches go to now: the first endpoint until it stops
   * answering liveness checks, then another one (see the class comment). For diagnostics and tests.
   */
  public String currentEndpoint() {
    return members.current().endpoint;
  }

  @Override
  public String toString() {
    return "EtcdMetaStore" + endpoints;
  }

  // ---------------------------------------------------------------------------------------------
  // Calls and errors
  // ---------------------------------------------------------------------------------------------

  /**
   * Starts one jetcd call on the current member and returns a future that completes on this store's
   * callback threads with the converted result or a translated {@link StoreException}, at the latest
   * after the request timeout (then the jetcd future is cancelled).
   *
   * <p>Within that budget: an {@code idempotent} call that fails with {@link StoreException.Kind#UNAVAILABLE}
   * is sent again (after a short backoff, or at once if the current member changed), and one whose member
   * is declared down ({@link EtcdMembers}) is sent again at once to the new current member. A
   * non-idempotent call (a txn) is sent again only when it provably never left this process (the
   * connection could not be made); if its member is declared down, or its member saw a new leader and
   * it is still unanswered a member timeout later, it fails at once with UNAVAILABLE, its outcome
   * unknown, instead of waiting out the deadline (the caller reads back: a retry of it then goes to a
   * member that answers).
   */
  private <R, T> CompletableFuture<T> call(String what, boolean idempotent,
      Function<EtcdMembers.Member, CompletableFuture<R>> start, Function<R, T> convert) {
    if (closed) {
      return CompletableFuture.failedFuture(new StoreException(StoreException.Kind.CLOSED,
          "etcd store is closed; " + what + " not sent", null));
    }
    Call<R, T> call = new Call<>(what, idempotent, start, convert);
    pending.add(call.result);
    call.result.whenComplete((r, t) -> pending.remove(call.result));
    try {
      ScheduledFuture<?> deadline = timer.schedule(() -> runOnCallbackThread(call::timedOut),
          requestTimeout.toNanos(), TimeUnit.NANOSECONDS);
      call.result.whenComplete((r, t) -> deadline.cancel(false));
    } catch (RejectedExecutionException closing) {
      call.result.completeExceptionally(new StoreException(StoreException.Kind.CLOSED,
          "etcd store is closed; " + what + " not sent", closing));
      return call.result;
    }
    call.send();
    return call.result;
  }

  /** One contract call: a sequence of jetcd calls ("sends"), at most one outstanding. */
  private final class Call<R, T> {
    final String what;
    final boolean idempotent;
    final Function<EtcdMembers.Member, CompletableFuture<R>> start;
    final Function<R, T> convert;
    final CompletableFuture<T> result = new CompletableFuture<>();
    final long deadlineNanos = System.nanoTime() + requestTimeout.toNanos();
    private Send current; // guarded by this
    private int sends; // guarded by this

    Call(String what, boolean idempotent, Function<EtcdMembers.Member, CompletableFuture<R>> start,
        Function<R, T> convert) {
      this.what = what;
      this.idempotent = idempotent;
      this.start = start;
      this.convert = convert;
    }

    /** One jetcd call to one member. */
    final class Send implements EtcdMembers.Occupant {
      final EtcdMembers.Member member;
      final long term;
      volatile CompletableFuture<R> source;

      Send(EtcdMembers.Member member) {
        this.member = member;
        this.term = member.term();
      }

      @Override
      public long startTerm() {
        return term;
      }

      @Override
      public void memberLost(EtcdMembers.Member m, EtcdMembers.Member replacement, String why) {
        runOnCallbackThread(() -> abandon(this, m + " stopped answering (" + why + ") with the " + what
            + " in flight; requests now go to " + replacement.endpoint));
      }

      @Override
      public void leaderChanged(EtcdMembers.Member m, long newTerm) {
        runOnCallbackThread(() -> abandon(this, "the etcd leader changed (raft term " + term + " -> " + newTerm
            + " at " + m.endpoint + ") with the " + what + " unanswered; a request forwarded to the old leader"
            + " is lost with it"));
      }
    }

    void send() {
      EtcdMembers.Member m = members.current();
      Send s = new Send(m);
      synchronized (this) {
        if (result.isDone()) {
          return;
        }
        current = s;
        sends++;
      }
      m.occupy(s);
      CompletableFuture<R> source;
      try {
        source = start.apply(m);
      } catch (RuntimeException e) {
        m.leave(s);
        runOnCallbackThread(() -> failed(s, e));
        return;
      }
      s.source = source;
      if (isCurrent(s)) {
        source.whenComplete((r, t) -> runOnCallbackThread(() -> finished(s, r, t)));
      } else {
        source.cancel(true); // abandoned before it was even started
      }
    }

    private synchronized boolean isCurrent(Send s) {
      return current == s && !result.isDone();
    }

    private void finished(Send s, R r, Throwable t) {
      s.member.leave(s);
      if (!isCurrent(s)) {
        return;
      }
      if (t != null) {
        failed(s, t);
        return;
      }
      try {
        result.complete(convert.apply(r));
      } catch (RuntimeException e) {
        result.completeExceptionally(new StoreException(StoreException.Kind.INTERNAL,
            "etcd " + what + ": unexpected answer: " + e, e));
      }
    }

    private void failed(Send s, Throwable t) {
      if (!isCurrent(s)) {
        return;
      }
      StoreException e = translate(what, t);
      // A connection that could not be made carried nothing: even a txn may go elsewhere.
      boolean resend = e.kind() == StoreException.Kind.UNAVAILABLE && (idempotent || hasCause(t, java.net.ConnectException.class));
      long left = deadlineNanos - System.nanoTime();
      if (!resend || left <= 0 || closed) {
        result.completeExceptionally(e);
        return;
      }
      // The step is the number of sends so far, those abandoned without an answer included, so a call
      // whose sends keep timing out also waits longer between them.
      int retry;
      synchronized (this) {
        retry = sends - 1;
      }
      long waitNanos = members.current() != s.member ? 0
          : SEND_RETRY.pauseNanos(retry, ThreadLocalRandom.current());
      if (waitNanos >= left) {
        result.completeExceptionally(e);
        return;
      }
      try {
        timer.schedule(() -> runOnCallbackThread(() -> {
          if (isCurrent(s)) {
            send();
          }
        }), waitNanos, TimeUnit.NANOSECONDS);
      } catch (RejectedExecutionException closing) {
        result.completeExceptionally(e);
      }
    }

    /** Leaves a send that will not be answered in time: sends again if that is safe, else fails now. */
    private void abandon(Send s, String why) {
      synchronized (this) {
        if (current != s || result.isDone()) {
          return;
        }
        current = null; // so the cancellation below is not taken for the answer
      }
      CompletableFuture<R> source = s.source;
      if (source != null) {
        source.cancel(true);
      }
      if (idempotent && System.nanoTime() < deadlineNanos && !closed) {
        send();
        return;
      }
      result.completeExceptionally(new StoreException(StoreException.Kind.UNAVAILABLE, "etcd " + what
          + " failed: " + why + (idempotent ? "" : "; whether it was applied is unknown") + " (endpoints "
          + endpoints + ")", null));
    }

    void timedOut() {
      Send s;
      synchronized (this) {
        s = current;
      }
      boolean mine = result.completeExceptionally(new StoreException(StoreException.Kind.UNAVAILABLE,
          "etcd " + what + " timed out after " + requestTimeout + " (endpoints " + endpoints + ")", null));
      if (mine && s != null) {
        s.member.leave(s);
        CompletableFuture<R> source = s.source;
        if (source != null) {
          source.cancel(true);
        }
      }
    }
  }

  private void runOnCallbackThread(Runnable r) {
    try {
      callbackExecutor.execute(r);
    } catch (RejectedExecutionException closing) {
      // Closing: the store's threads are gone; completing here is the only way to not leave it hanging.
      r.run();
    }
  }

  /** Translates anything jetcd, gRPC or the JDK throws into the one failure type of the contract. */
  StoreException translate(String what, Throwable failure) {
    Throwable t = unwrap(failure);
    if (t instanceof StoreException se) {
      return se;
    }
    String where = " (endpoints " + endpoints + ")";
    if (t instanceof CompactedException ce) {
      return new StoreException(StoreException.Kind.COMPACTED, "etcd " + what + ": revision compacted; oldest available is "
          + ce.getCompactedRevision() + where, t, ce.getCompactedRevision());
    }
    if (closed || t instanceof ClosedClientException) {
      return new StoreException(StoreException.Kind.CLOSED, "etcd " + what + ": store closed" + where, t);
    }
    if (t instanceof CancellationException) {
      return new StoreException(StoreException.Kind.UNAVAILABLE, "etcd " + what + " was cancelled" + where, t);
    }
    String code;
    String description;
    if (t instanceof EtcdException ee) {
      code = ee.getErrorCode().name();
      description = ee.getMessage();
    } else {
      Status status = Status.fromThrowable(t);
      code = status.getCode().name();
      description = status.getDescription() != null ? status.getDescription() : String.valueOf(t);
    }
    String text = description == null ? "" : description.toLowerCase(java.util.Locale.ROOT);
    String message = "etcd " + what + " failed: " + code + " " + description + where;
    StoreException.Kind kind;
    if (text.contains("too many operations in txn request") || text.contains("request is too large")) {
      kind = StoreException.Kind.TOO_LARGE;
    } else if (code.equals("RESOURCE_EXHAUSTED")) {
      // etcd's "too many requests" is overload (retry later); a gRPC size limit is a too-large message.
      kind = text.contains("too many requests") ? StoreException.Kind.UNAVAILABLE : StoreException.Kind.TOO_LARGE;
    } else if (text.contains("required revision has been compacted")) {
      kind = StoreException.Kind.COMPACTED;
    } else if (code.equals("NOT_FOUND") || text.contains("lease not found")) {
      kind = StoreException.Kind.NOT_FOUND;
    } else if (code.equals("UNAVAILABLE") || code.equals("DEADLINE_EXCEEDED") || code.equals("CANCELLED")
        || code.equals("ABORTED")) {
      kind = StoreException.Kind.UNAVAILABLE;
    } else if (code.equals("UNKNOWN") && hasCause(t, IOException.class)) {
      kind = StoreException.Kind.UNAVAILABLE;
    } else {
      kind = StoreException.Kind.INTERNAL;
    }
    return new StoreException(kind, message, t);
  }

  private static Throwable unwrap(Throwable t) {
    Throwable current = t;
    for (int depth = 0; depth < 10 && current.getCause() != null; depth++) {
      boolean wrapper = current instanceof CompletionException || current instanceof ExecutionException
          || current.getClass().getName().startsWith("dev.failsafe.");
      if (!wrapper) {
        break;
      }
      current = current.getCause();
    }
    return current;
  }

  private static boolean hasCause(Throwable t, Class<? extends Throwable> type) {
    Throwable current = t;
    for (int depth = 0; depth < 10 && current != null; depth++) {
      if (type.isInstance(current)) {
        return true;
      }
      current = current.getCause();
    }
    return false;
  }

  // ---------------------------------------------------------------------------------------------
  // Conversions
  // ---------------------------------------------------------------------------------------------

  private static ByteSequence bytes(String s) {
    return ByteSequence.from(s, StandardCharsets.UTF_8);
  }

  private static String describe(String key) {
    return "'" + (key.length() > 120 ? key.substring(0, 120) + "…" : key) + "'";
  }

  private static RangeResult toRangeResult(GetResponse r) {
    List<KeyValue> kvs = new ArrayList<>(r.getKvs().size());
    for (io.etcd.jetcd.KeyValue kv : r.getKvs()) {
      kvs.add(toKeyValue(kv));
    }
    return new RangeResult(r.getHeader().getRevision(), kvs);
  }

  private static KeyValue toKeyValue(io.etcd.jetcd.KeyValue kv) {
    return new KeyValue(kv.getKey().toString(StandardCharsets.UTF_8), kv.getValue().getBytes(),
        kv.getCreateRevision(), kv.getModRevision(), kv.getVersion(), kv.getLease());
  }

  private static Cmp toCmp(Compare c) {
    Cmp.Op op = switch (c.op()) {
      case EQUAL -> Cmp.Op.EQUAL;
      case NOT_EQUAL -> Cmp.Op.NOT_EQUAL;
      case GREATER -> Cmp.Op.GREATER;
      case LESS -> Cmp.Op.LESS;
    };
    CmpTarget<?> target = switch (c.target()) {
      case VERSION -> CmpTarget.version(c.number());
      case CREATE_REVISION -> CmpTarget.createRevision(c.number());
      case MOD_REVISION -> CmpTarget.modRevision(c.number());
    };
    return new Cmp(bytes(c.key()), op, target);
  }

  private static Op toOp(Txn.Write w) {
    if (w instanceof Txn.Put put) {
      PutOption option = put.lease() == 0 ? PutOption.DEFAULT : PutOption.builder().withLeaseId(put.lease()).build();
      return Op.put(bytes(put.key()), ByteSequence.from(put.value()), option);
    }
    if (w instanceof Txn.Delete del) {
      return Op.delete(bytes(del.key()), DeleteOption.DEFAULT);
    }
    Txn.DeletePrefix dp = (Txn.DeletePrefix) w;
    return Op.delete(bytes(dp.prefix()), DeleteOption.builder().isPrefix(true).build());
  }

  private static WatchEvent toWatchEvent(io.etcd.jetcd.watch.WatchEvent e) {
    WatchEvent.Type type = switch (e.getEventType()) {
      case PUT -> WatchEvent.Type.PUT;
      case DELETE -> WatchEvent.Type.DELETE;
      default -> throw new StoreException(StoreException.Kind.INTERNAL,
          "etcd sent a watch event of unknown type " + e.getEventType(), null);
    };
    return new WatchEvent(type, toKeyValue(e.getKeyValue()));
  }

  private static java.util.concurrent.ThreadFactory daemonThreads(String prefix) {
    AtomicInteger n = new AtomicInteger();
    return runnable -> {
      Thread t = new Thread(runnable, prefix + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Watch
  // ---------------------------------------------------------------------------------------------

  /**
   * One contract watch, made of a sequence of jetcd watchers ("attempts"). All state lives on the
   * watch's serial executor: jetcd callbacks only enqueue, so listener calls never overlap, keep
   * jetcd's order, and never run on jetcd's I/O threads.
   *
   * <p>{@code delivered} is the revision of the last event batch that reached the listener, and the
   * resume point: batches at or below it are duplicates and dropped (a resumed stream may repeat); a
   * new attempt starts at {@code delivered + 1}, so nothing is skipped. etcd never splits one revision
   * across responses (the watch does not ask for fragmentation), so a response's events grouped by mod
   * revision are whole batches.
   *
   * <p>Progress answers never move {@code delivered}. etcd before 3.4.25 / 3.5.8 (etcd issue 15220)
   * sends a requested progress answer around the watcher's event queue: it carries the store's
   * revision and can overtake events of that revision still queued for the watcher, even on a watcher
   * that is in sync. Taking such an answer as the duplicate mark dropped those events for good (a
   * directory server lost one revision of a split under concurrent admin calls;
   * {@code MetaStoreContract#progressRequestsRacingWritesLoseNoEvent}). The price: a watch that was
   * quiet while etcd compacted past its last event resumes into compacted history after a stream
   * failure and reports {@link WatchListener#onCompacted}, so its owner re-reads; that is rare and
   * always correct, where resuming from a progress answer could silently skip a revision.
   *
   * <p>Progress answers are still passed on, for freshness. To keep the answer meaningful on those
   * etcd versions, an attempt's answers are trusted only once the watcher is known to be in sync: it
   * started after the revision of its "created" response, or it delivered a batch at or past that
   * revision, or {@link #SYNC_GRACE_NANOS} passed since creation (etcd's replay loop runs every
   * 100 ms). An untrusted answer is dropped and the request repeated when trust is reached. A trusted
   * answer can still precede queued events of its revision by a moment; they are then delivered after
   * it (and counted in a log line), never dropped.
   */
  private final class EtcdWatch implements Watch {
    private final String prefix;
    private final WatchListener listener;
    private final SerialExecutor serial;
    private volatile boolean closed;
    private volatile Attempt attempt;

    // Confined to the serial executor.
    private long delivered;
    private long progressed;
    private long lateBatches;
    /** The etcd cluster id of the first stream that reported "created"; 0 before. */
    private long clusterId;
    private boolean ended;
    private boolean progressWanted;
    private int consecutiveFailures;

    EtcdWatch(String prefix, long afterRevision, WatchListener listener) {
      this.prefix = prefix;
      this.listener = listener;
      this.serial = new SerialExecutor(callbackExecutor);
      this.delivered = afterRevision;
    }

    void start() {
      serial.execute(this::openAttempt);
    }

    @Override
    public void requestProgress() {
      serial.execute(() -> {
        if (closed || ended) {
          return;
        }
        progressWanted = true;
        Attempt a = attempt;
        if (a != null && a.createdAtNanos != 0) {
          askProgressWhenTrusted(a);
        }
        // Otherwise the request goes out once the current or next stream reports "created".
      });
    }

    @Override
    public void close() {
      closed = true;
      watches.remove(this);
      Attempt a = attempt;
      if (a != null) {
        a.member.leave(a);
        a.abandon();
      }
    }

    private void openAttempt() {
      if (closed || ended) {
        return;
      }
      long start = delivered + 1;
      EtcdMembers.Member member = members.current();
      Attempt a = new Attempt(start, member);
      attempt = a;
      WatchOption.Builder option = WatchOption.builder()
          .withRevision(start)
          .withProgressNotify(true)
          .withCreateNotify(true)
          // An isolated member cancels the stream instead of silently serving nothing.
          .withRequireLeader(true);
      ByteSequence key;
      if (prefix.isEmpty()) {
        key = ALL_KEYS;
        option.withRange(ALL_KEYS);
      } else {
        key = bytes(prefix);
        option.isPrefix(true);
      }
      member.occupy(a);
      try {
        a.setWatcher(member.watch.watch(key, option.build(), a));
      } catch (RuntimeException e) {
        member.leave(a);
        onFailure(a, e);
        return;
      }
      if (closed) {
        a.abandon();
        return;
      }
      // jetcd waits for a ready connection without any deadline on streams, so with every member
      // unreachable a new watcher would wait silently forever. Not "created" in time is a failure.
      schedule(() -> {
        if (a == attempt && a.createdAtNanos == 0 && !a.failed) {
          a.abandon();
          onFailure(a, new StoreException(StoreException.Kind.UNAVAILABLE, "etcd watch of prefix "
              + describe(prefix) + " was not established within " + requestTimeout + " (endpoints " + endpoints + ")",
              null));
        }
      }, requestTimeout.toNanos());
    }

    private void onResponse(Attempt a, WatchResponse response) {
      if (closed || ended || a != attempt) {
        return;
      }
      long headerRevision = response.getHeader().getRevision();
      if (response.isCreatedNotify()) {
        long cluster = response.getHeader().getClusterId();
        if (clusterId != 0 && cluster != 0 && cluster != clusterId) {
          // A restore from a backup (with a new cluster token) or another cluster behind the same
          // endpoints: its revisions after `delivered` are not the ones this watch missed.
          ended = true;
          watches.remove(this);
          a.abandon();
          String reason = "etcd's cluster id changed from " + Long.toHexString(clusterId) + " to "
              + Long.toHexString(cluster) + " (at revision " + headerRevision + "; this watch had delivered up to "
              + delivered + ")";
          deliver(() -> listener.onHistoryReset(headerRevision, reason));
          return;
        }
        if (clusterId == 0) {
          clusterId = cluster;
        }
        a.createdRevision = headerRevision;
        a.createdAtNanos = System.nanoTime();
        a.inSync = a.startRevision > headerRevision;
        if (progressWanted) {
          askProgressWhenTrusted(a);
        }
        return;
      }
      if (response.isProgressNotify()) {
        if (!a.trusted()) {
          if (progressWanted) {
            askProgressWhenTrusted(a);
          }
          return;
        }
        consecutiveFailures = 0;
        progressed = Math.max(progressed, headerRevision);
        progressWanted = false;
        deliver(() -> listener.onProgress(headerRevision));
        return;
      }
      List<io.etcd.jetcd.watch.WatchEvent> events = response.getEvents();
      int i = 0;
      while (i < events.size()) {
        long revision = events.get(i).getKeyValue().getModRevision();
        List<WatchEvent> batch = new ArrayList<>();
        while (i < events.size() && events.get(i).getKeyValue().getModRevision() == revision) {
          batch.add(toWatchEvent(events.get(i)));
          i++;
        }
        if (revision <= delivered) {
          continue;
        }
        if (revision <= progressed) {
          lateBatches++;
          if (Long.bitCount(lateBatches) == 1) {
            LOG.warn("etcd sent the events of revision {} after a progress answer for revision {} on the "
                + "watch of prefix {} ({} such batches so far); they are delivered now. etcd before 3.4.25 "
                + "and 3.5.8 has this bug (etcd issue 15220)", revision, progressed, describe(prefix),
                lateBatches);
          }
        }
        delivered = revision;
        consecutiveFailures = 0;
        List<WatchEvent> frozen = List.copyOf(batch);
        deliver(() -> listener.onBatch(revision, frozen));
      }
      if (!a.inSync && a.createdRevision != 0 && delivered >= a.createdRevision) {
        a.inSync = true;
        if (progressWanted) {
          askProgressWhenTrusted(a);
        }
      }
    }

    private void askProgressWhenTrusted(Attempt a) {
      if (a.trusted()) {
        a.requestProgress();
        return;
      }
      if (a.progressRetryScheduled) {
        return;
      }
      a.progressRetryScheduled = true;
      long wait = Math.max(0, a.createdAtNanos + SYNC_GRACE_NANOS - System.nanoTime());
      schedule(() -> {
        a.progressRetryScheduled = false;
        if (!closed && !ended && a == attempt && progressWanted) {
          askProgressWhenTrusted(a);
        }
      }, wait);
    }

    private void onFailure(Attempt a, Throwable failure) {
      onFailure(a, failure, false);
    }

    /** {@code now}: the stream's member was declared down; the next one (another member) starts at once. */
    private void onFailure(Attempt a, Throwable failure, boolean now) {
      a.member.leave(a);
      if (closed || ended || a != attempt) {
        return;
      }
      attempt = null;
      Throwable t = unwrap(failure);
      if (t instanceof CompactedException ce) {
        ended = true;
        watches.remove(this);
        long compactRevision = ce.getCompactedRevision();
        deliver(() -> listener.onCompacted(compactRevision));
        return;
      }
      StoreException error = translate("watch of prefix " + describe(prefix) + " after revision " + delivered, t);
      if (error.kind() == StoreException.Kind.CLOSED) {
        ended = true;
        return;
      }
      deliver(() -> listener.onTransientError(error));
      if (now) {
        openAttempt();
        return;
      }
      consecutiveFailures++;
      schedule(this::openAttempt, WATCH_RETRY.pauseNanos(consecutiveFailures - 1, ThreadLocalRandom.current()));
    }

    private void onStreamCompleted(Attempt a) {
      if (closed || ended || a != attempt || a.failed) {
        return;
      }
      onFailure(a, new StoreException(StoreException.Kind.UNAVAILABLE,
          "etcd ended the watch stream of prefix " + describe(prefix) + " without an error", null));
    }

    /** Runs {@code task} on this watch's serial executor after {@code delayNanos}. */
    private void schedule(Runnable task, long delayNanos) {
      try {
        timer.schedule(() -> serial.execute(task), delayNanos, TimeUnit.NANOSECONDS);
      } catch (RejectedExecutionException storeClosing) {
        ended = true;
      }
    }

    private void deliver(Runnable listenerCall) {
      if (closed) {
        return;
      }
      try {
        listenerCall.run();
      } catch (RuntimeException e) {
        LOG.warn("watch listener for prefix {} threw; the watch continues", describe(prefix), e);
      }
    }

    /** One jetcd watcher. Its callbacks run on jetcd threads and only hand work to the serial executor. */
    private final class Attempt implements io.etcd.jetcd.Watch.Listener, EtcdMembers.Occupant {
      final long startRevision;
      final EtcdMembers.Member member;
      // Serial-executor state.
      long createdRevision;
      long createdAtNanos;
      boolean inSync;
      boolean progressRetryScheduled;
      // Shared with jetcd threads.
      volatile boolean failed;
      private io.etcd.jetcd.Watch.Watcher watcher;
      private boolean abandoned;

      Attempt(long startRevision, EtcdMembers.Member member) {
        this.startRevision = startRevision;
        this.member = member;
      }

      /** 0: a leader change does not concern a watch (its member serves it from its own store). */
      @Override
      public long startTerm() {
        return 0;
      }

      @Override
      public void memberLost(EtcdMembers.Member m, EtcdMembers.Member replacement, String why) {
        serial.execute(() -> {
          if (closed || this != attempt || failed) {
            return;
          }
          abandon();
          onFailure(this, new StoreException(StoreException.Kind.UNAVAILABLE, m + " stopped answering (" + why
              + "); the watch of prefix " + describe(prefix) + " resumes on " + replacement.endpoint, null), true);
        });
      }

      @Override
      public void leaderChanged(EtcdMembers.Member m, long newTerm) {
        // Never called: startTerm() is 0.
      }

      boolean trusted() {
        return inSync || (createdAtNanos != 0 && System.nanoTime() - createdAtNanos >= SYNC_GRACE_NANOS);
      }

      void setWatcher(io.etcd.jetcd.Watch.Watcher w) {
        boolean closeNow;
        synchronized (this) {
          watcher = w;
          closeNow = failed || abandoned;
        }
        if (closeNow) {
          w.close();
        }
      }

      void requestProgress() {
        io.etcd.jetcd.Watch.Watcher w;
        synchronized (this) {
          w = abandoned || failed ? null : watcher;
        }
        if (w != null) {
          w.requestProgress();
        }
      }

      void abandon() {
        io.etcd.jetcd.Watch.Watcher w;
        synchronized (this) {
          abandoned = true;
          w = watcher;
        }
        if (w != null) {
          w.close();
        }
      }

      @Override
      public void onNext(WatchResponse response) {
        if (!failed) {
          serial.execute(() -> onResponse(this, response));
        }
      }

      @Override
      public void onError(Throwable t) {
        io.etcd.jetcd.Watch.Watcher w;
        synchronized (this) {
          if (failed) {
            return;
          }
          failed = true;
          w = watcher;
        }
        serial.execute(() -> onFailure(this, t));
        // Closing inside jetcd's error callback makes jetcd's own scheduled resume a no-op: the
        // replacement stream is ours, started from the last delivered revision.
        if (w != null) {
          w.close();
        }
      }

      @Override
      public void onCompleted() {
        serial.execute(() -> onStreamCompleted(this));
      }
    }
  }
}
